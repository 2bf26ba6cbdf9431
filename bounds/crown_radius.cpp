// The CROWN certified radius, a standard certified reference beside the
// gradient-norm bounds: the largest epsilon for which CROWN's linear
// relaxation proves f_c - f_j > 0 on B_p(x, epsilon) ∩ D for every j != c.
// Found by growing epsilon from the linearised distance R0 while it is
// proven (up to 4 doublings), then bisection on log epsilon; every sample
// takes the same steps. Only proven radii count: certified.
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/preactivation.h"
#include "bounds/sources.h"
#include "core/error.h"

namespace bb {
namespace {

class CrownRadius : public Bound {
 public:
  CrownRadius(Norm p, const BoundOptions& options) : Bound(p), options_(options) {}

  std::string name() const override {
    return fmt::format(
        "crown-radius-{}({})", norm_name(norm()),
        describe_options(options_, {"local_ball.octaves", "crown_radius.bisection_steps"}));
  }
  bool certified() const override { return true; }
  void check(const Model& model) const override { require_layers(model, "crown-radius"); }

 protected:
  BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const override {
    const LayerList& layers = require_layers(model, "crown-radius");
    const Norm p = norm();
    const Box box = model.classifier.spec().domain;
    const int64_t n = x.size(0);
    const Linearised at_x = linearise(model.classifier, x, c, p);
    const auto& targets = at_x.targets;
    const auto& g = at_x.g;
    const auto& r0 = at_x.r0;
    const int64_t m = targets.size(1);

    auto best = torch::zeros({n}, g.options());
    auto best_target = targets.select(1, 0).clone();
    // Whether CROWN proves every margin positive on B_p(x, eps) ∩ D.
    auto proven = [&](const torch::Tensor& eps) {
      Region region = Region::ball(x, eps.to(x.scalar_type()), p, box);
      PreActivationBounds bounds = crown_bounds(layers, region);
      auto lower = crown_margin_lower(layers, region, bounds, c, targets);  // [N, m]
      auto [worst, at] = lower.min(1);
      auto safe = worst > 0;
      auto better = safe & (eps > best);
      best = torch::where(better, eps, best);
      best_target = torch::where(better, targets.gather(1, at.unsqueeze(1)).squeeze(1), best_target);
      return safe;
    };
    auto hi = r0.log();
    auto lo = hi - options_.local_ball.octaves * std::log(2.0);
    // Grow while proven: the crossing may lie above R0.
    for (int k = 0; k < 4; ++k) {
      auto safe = proven(hi.exp());
      lo = torch::where(safe, hi, lo);
      hi = torch::where(safe, hi + std::log(2.0), hi);
    }
    for (int step = 0; step < options_.crown_radius.bisection_steps; ++step) {
      auto mid = (lo + hi) / 2;
      auto safe = proven(mid.exp());
      lo = torch::where(safe, mid, lo);
      hi = torch::where(safe, hi, mid);
    }
    BoundResult result;
    result.value = best;
    result.target = best_target;
    // No gradient norm: the smallest CROWN margin lower bound at that radius.
    result.grad_norm = torch::full({n}, std::numeric_limits<double>::quiet_NaN(), g.options());
    result.radius = best;
    result.gradients = torch::full({n}, m, c.options().dtype(torch::kInt64));
    (void)context;
    return result;
  }

 private:
  BoundOptions options_;
};

}  // namespace

std::unique_ptr<Bound> make_crown_radius(Norm p, const BoundOptions& options) {
  return std::make_unique<CrownRadius>(p, options);
}

}  // namespace bb
