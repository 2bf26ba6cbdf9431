// Lipschitz bound (Weng et al. 2018, CLEVER's formula): with L_j the largest
// ||grad g_j||_q over B_p(x, R) ∩ D, rho_p(x) >= min(min_j g_j(x) / L_j, R).
// Untargeted takes every class j != c; the paper's targeted variants bound
// one class: the runner-up (top2), a random one, or the least likely.
#include <limits>

#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/sources.h"
#include "core/error.h"

namespace bb {
namespace {

class Lipschitz : public SourcedBound {
 public:
  Lipschitz(const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options)
      : SourcedBound(label, p, std::move(source), options) {
    if (options_.lipschitz.radius <= 0) {
      options_.lipschitz.radius = default_radius(p);
    }
  }

  std::string name() const override { return describe({"lipschitz.radius", "lipschitz.targets"}); }

 protected:
  BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const override {
    const Classifier& classifier = model.classifier;
    const int64_t n = x.size(0);
    const double radius = options_.lipschitz.radius;
    auto random = RandomStreams::derive(context.seed, name(), context.index, c.device());
    auto targets = choose_targets(classifier, x, c, random);
    auto g = target_margins(classifier, x, c, targets);
    Region region = Region::ball(
        x, torch::full({n}, radius, x.options()), norm(), classifier.spec().domain);
    auto found = estimate(model, region, c, targets, &random);
    auto best = min_ratio(g, found.value, targets);
    BoundResult result;
    auto r = torch::full_like(best.value, radius);
    result.value = torch::minimum(best.value, r);
    result.target = best.target;
    result.grad_norm = best.grad_norm;
    result.radius = r;
    result.gradients = found.gradients;
    if (found.fit_rejected.defined()) {
      // The class that gave the minimum: where its fit was rejected.
      auto column = (targets == best.target.unsqueeze(1)).to(torch::kLong).argmax(1, true);
      result.fit_rejected = found.fit_rejected.gather(1, column).squeeze(1);
    }
    return result;
  }

 private:
  torch::Tensor choose_targets(
      const Classifier& classifier,
      const torch::Tensor& x,
      const torch::Tensor& c,
      RandomStreams& random) const {
    const int64_t k = classifier.num_classes();
    const std::string& which = options_.lipschitz.targets;
    if (which == "all") {
      return other_classes(c, k);
    }
    if (which == "random") {
      auto others = other_classes(c, k);
      auto pick = (random.uniform({1}) * static_cast<double>(k - 1)).floor().to(torch::kLong).clamp_max(k - 2);
      return others.gather(1, pick.to(c.device()));
    }
    auto logits = classifier.logits(x);
    if (which == "top2") {
      auto masked = logits.scatter(1, c.view({-1, 1}), -std::numeric_limits<double>::infinity());
      return masked.argmax(1, /*keepdim=*/true);
    }
    BB_ASSERT(which == "least", "unknown targets '{}'", which);
    return logits.argmin(1, /*keepdim=*/true);
  }

};

}  // namespace

std::unique_ptr<Bound> make_lipschitz(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options) {
  return std::make_unique<Lipschitz>(label, p, std::move(source), options);
}

}  // namespace bb
