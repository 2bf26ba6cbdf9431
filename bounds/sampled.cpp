// The sampled maximum of ||grad g_j||_q over a region: the centre, uniform
// draws (and, over D, training images), then projected gradient ascent on
// the norm itself from the best points of each class (double backprop),
// for networks with smooth activations. A maximum over points can only fall
// short of the true maximum, so the bound it gives is an estimate.
#include <algorithm>

#include <torch/torch.h>

#include "bounds/sources.h"
#include "core/error.h"
#include "core/runtime.h"

namespace bb {
namespace {

class SampledSource : public GradNormSource {
 public:
  explicit SampledSource(const SampledOptions& options) : options_(options) {}

  std::string name() const override {
    BoundOptions all;
    all.sampled = options_;
    return "sampled(" +
        describe_options(
               all,
               {"sampled.draws", "sampled.chunk", "sampled.ascent_steps", "sampled.ascent_starts",
                "sampled.ascent_rel_step", "sampled.domain_starts"}) +
        ")";
  }
  bool certified() const override { return false; }

  GradNormResult estimate(const GradNormRequest& request) const override {
    const Classifier& model = request.model->classifier;
    const Region& region = *request.region;
    BB_ASSERT(request.random != nullptr, "the sampled source needs random streams");
    Stopwatch watch(model.device());
    const Norm p = region.norm();
    const Norm q = dual(p);
    const auto& center = region.center();
    const int64_t n = center.size(0);
    const int64_t m = request.targets.size(1);
    const bool ascend = options_.ascent_steps > 0 && !piecewise_linear(*request.model);
    const int64_t keep = ascend ? options_.ascent_starts : 0;
    auto c = request.c;
    auto targets = request.targets;
    auto gradients = torch::zeros({n}, c.options().dtype(torch::kInt64));

    // The best points of each (sample, class) pair, where ascent starts.
    auto best = gradient_norms(model, center.unsqueeze(1), c, targets, q).select(1, 0);  // [N, m]
    gradients += m;
    torch::Tensor top_values;  // [N, m, K]
    torch::Tensor top_points;  // [N, m, K, D], D the coordinates of a point
    const int64_t dims = center[0].numel();
    if (keep > 0) {
      top_values = best.unsqueeze(2).expand({n, m, keep}).clone();
      top_points = center.reshape({n, 1, 1, dims}).expand({n, m, keep, dims}).clone();
    }
    // Points [N, P, ...] with their norms [N, P, m]: the running maximum,
    // and the K best points of each class.
    auto consider = [&](const torch::Tensor& points, const torch::Tensor& norms) {
      best = torch::maximum(best, std::get<0>(norms.max(1)));
      if (keep == 0) {
        return;
      }
      const int64_t count = points.size(1);
      auto pooled = torch::cat({top_values, norms.transpose(1, 2)}, 2);  // [N, m, K + P]
      auto chosen = std::get<1>(pooled.topk(keep, 2));                  // [N, m, K]
      top_values = pooled.gather(2, chosen);
      // Old points by their slot, new ones by their index among `points`.
      auto old_points = top_points.gather(
          2, chosen.clamp_max(keep - 1).unsqueeze(3).expand({n, m, keep, dims}));
      auto new_index = (chosen - keep).clamp(0, count - 1).reshape({n, m * keep, 1});
      auto new_points = points.reshape({n, count, dims})
                            .gather(1, new_index.expand({n, m * keep, dims}))
                            .view({n, m, keep, dims});
      top_points = torch::where((chosen < keep).unsqueeze(3), old_points, new_points);
    };

    // Training images, over D only: the same starting points for every sample.
    if (region.is_domain() && request.starts.defined() && options_.domain_starts > 0) {
      auto starts = request.starts.slice(0, 0, options_.domain_starts).to(center.options());
      std::vector<int64_t> shape{n};
      shape.insert(shape.end(), starts.sizes().begin(), starts.sizes().end());
      auto points = starts.unsqueeze(0).expand(shape).contiguous();
      consider(points, gradient_norms(model, points, c, targets, q));
      gradients += starts.size(0) * m;
    }
    for (int64_t done = 0; done < options_.draws; done += options_.chunk) {
      const int64_t count = std::min<int64_t>(options_.chunk, options_.draws - done);
      auto points = region.sample(count, *request.random);
      consider(points, gradient_norms(model, points, c, targets, q));
      gradients += count * m;
    }
    if (keep > 0) {
      best = torch::maximum(best, ascend_from(model, region, c, targets, top_points, gradients));
    }
    GradNormResult result;
    result.value = best;
    result.gradients = gradients;
    result.seconds = watch.seconds();
    return result;
  }

 private:
  // Projected steepest ascent on ||grad g_j(z)||_q in B_p(x, R) ∩ D from
  // points [N, m, K, D]; returns the largest norm met, [N, m]. Each step is
  // a double backward pass: two gradient evaluations per point.
  torch::Tensor ascend_from(
      const Classifier& model,
      const Region& region,
      const torch::Tensor& c,
      const torch::Tensor& targets,
      const torch::Tensor& starts,
      torch::Tensor& gradients) const {
    const Norm p = region.norm();
    const Norm q = dual(p);
    const int64_t n = starts.size(0);
    const int64_t m = starts.size(1);
    const int64_t k = starts.size(2);
    const int64_t rows = n * m * k;
    std::vector<int64_t> flat{rows};
    flat.insert(flat.end(), region.center().sizes().begin() + 1, region.center().sizes().end());
    auto z = starts.reshape(flat);
    auto row_c = c.repeat_interleave(m * k);
    auto row_j = targets.repeat_interleave(k, 1).reshape({rows, 1});
    auto center = region.center().repeat_interleave(m * k, 0);
    auto radius = region.radius().repeat_interleave(m * k);
    const double diameter = domain_diameter(region.box(), p, z[0].numel());
    auto step = radius.clamp_max(diameter) * options_.ascent_rel_step;
    auto highest = torch::zeros({rows}, torch::TensorOptions().dtype(torch::kFloat64).device(z.device()));
    for (int s = 0; s <= options_.ascent_steps; ++s) {
      torch::AutoGradMode grad_mode(true);
      auto zz = z.detach().requires_grad_(true);
      auto grads = model.margin_gradients(zz, row_c, row_j, /*create_graph=*/s < options_.ascent_steps).grads;
      auto norm = lp_norm(grads.reshape({rows, -1}), q);
      highest = torch::maximum(highest, norm.detach().to(torch::kFloat64));
      if (s == options_.ascent_steps || !norm.requires_grad()) {
        break;  // the last point, or a gradient that does not depend on z (a linear model)
      }
      auto direction = torch::autograd::grad({norm.sum()}, {zz}, {}, false, false, /*allow_unused=*/true)[0];
      if (!direction.defined()) {
        break;
      }
      z = ascent_step(center, zz.detach(), direction.detach(), radius, step, p, region.box());
    }
    gradients += m * k * (2 * options_.ascent_steps + 1);
    return std::get<0>(highest.view({n, m, k}).max(2));
  }

  SampledOptions options_;
};

}  // namespace

std::unique_ptr<GradNormSource> make_sampled_source(const SampledOptions& options) {
  return std::make_unique<SampledSource>(options);
}

}  // namespace bb
