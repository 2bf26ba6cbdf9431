// Local ball by shell integration (RecurJac's integral form): with
// R_i = i R / n and G_j(R_i) a bound on ||grad g_j|| over B_p(x, R_i) ∩ D,
//   g_j(x + delta) >= g_j(x) - sum_i G_j(R_i) (R_i - R_{i-1})   for ||delta||_p <= R,
// because the segment from x to x + delta crosses shell i over a length of at
// most R_i - R_{i-1}. If that budget stays positive for every j, no point of
// the ball is misclassified: rho_p(x) >= R. The search keeps the largest R
// shown so (bisection on log R below R0, as the local ball's). A radius also
// counts as shown when the single-shell test g_j - R G_j(R) > 0 passes, so
// the result is never looser than the local ball's on the same radii.
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/sources.h"
#include "core/error.h"

namespace bb {
namespace {

class LocalBallShells : public Bound {
 public:
  LocalBallShells(const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options)
      : Bound(p), label_(label), source_(std::move(source)), options_(options) {}

  std::string name() const override {
    return fmt::format(
        "{}-{}({})+{}", label_, norm_name(norm()),
        describe_options(options_, {"local_ball.octaves", "shells.shells", "shells.bisection_steps"}),
        source_->name());
  }
  bool certified() const override { return source_->certified(); }
  void check(const Model& model) const override { source_->check(model, norm(), label_); }

 protected:
  BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const override {
    const Classifier& classifier = model.classifier;
    const Norm p = norm();
    const Box box = classifier.spec().domain;
    const int64_t n = x.size(0);
    auto targets = other_classes(c, classifier.num_classes());
    const int64_t m = targets.size(1);
    auto at_x = classifier.margin_gradients(x, c, targets);
    auto g = at_x.values.to(torch::kFloat64);
    auto slope = lp_norm(at_x.grads.reshape({n * m, -1}).to(torch::kFloat64), dual(p)).view({n, m});
    const double diameter = domain_diameter(box, p, x[0].numel());
    auto r0 = min_ratio(g, slope, targets).value.clamp_max(diameter);
    r0 = torch::where(r0 > 0, r0, torch::full_like(r0, diameter));
    auto random = RandomStreams::derive(context.seed, name(), context.index, c.device());
    auto gradients = torch::full({n}, m, c.options().dtype(torch::kInt64));
    const int shells = options_.shells.shells;

    // Whether every sample's radius R [N] is shown safe, and the G_j of the
    // outer shell there.
    auto shown = [&](const torch::Tensor& radius) {
      auto spent = torch::zeros_like(g);
      torch::Tensor outer;
      for (int i = 1; i <= shells; ++i) {
        auto r_i = radius * (static_cast<double>(i) / shells);
        Region region = Region::ball(x, r_i.to(x.scalar_type()), p, box);
        GradNormRequest request;
        request.model = &model;
        request.region = &region;
        request.c = c;
        request.targets = targets;
        request.random = &random;
        auto estimate = source_->estimate(request);
        gradients += estimate.gradients;
        spent = spent + estimate.value * (radius / shells).unsqueeze(1);
        outer = estimate.value;
      }
      auto integral = std::get<0>((g - spent).min(1)) > 0;
      auto single = std::get<0>((g - outer * radius.unsqueeze(1)).min(1)) > 0;
      return std::make_pair(integral | single, outer);
    };
    auto best = torch::zeros({n}, g.options());
    auto best_norm = torch::full({n}, std::numeric_limits<double>::quiet_NaN(), g.options());
    auto best_target = std::get<1>(g.min(1));  // column of targets
    auto take = [&](const torch::Tensor& radius, const torch::Tensor& safe, const torch::Tensor& outer) {
      auto better = safe & (radius > best);
      best = torch::where(better, radius, best);
      auto [worst, at] = (outer / g.clamp_min(1e-300)).max(1);  // the class nearest to failing
      best_norm = torch::where(better, outer.gather(1, at.unsqueeze(1)).squeeze(1), best_norm);
      best_target = torch::where(better, at, best_target);
    };
    {
      auto [safe, outer] = shown(r0);
      take(r0, safe, outer);
    }
    auto hi = r0.log();
    auto lo = hi - options_.local_ball.octaves * std::log(2.0);
    for (int step = 0; step < options_.shells.bisection_steps; ++step) {
      auto mid = (lo + hi) / 2;
      auto radius = mid.exp();
      auto [safe, outer] = shown(radius);
      take(radius, safe, outer);
      lo = torch::where(safe, mid, lo);
      hi = torch::where(safe, hi, mid);
    }
    BoundResult result;
    result.value = torch::where(std::get<0>(g.min(1)) > 0, best, torch::zeros_like(best));
    result.target = targets.gather(1, best_target.unsqueeze(1)).squeeze(1);
    result.grad_norm = best_norm;
    result.radius = result.value;
    result.gradients = gradients;
    return result;
  }

 private:
  std::string label_;
  std::unique_ptr<GradNormSource> source_;
  BoundOptions options_;
};

}  // namespace

std::unique_ptr<Bound> make_local_ball_shells(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options) {
  return std::make_unique<LocalBallShells>(label, p, std::move(source), options);
}

}  // namespace bb
