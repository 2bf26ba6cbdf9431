// Local ball (Hein & Andriushchenko 2017, Theorem 2.1):
//   rho_p(x) >= max_{R > 0} min( min_j g_j(x) / G_j(B_p(x, R) ∩ D), R ).
// The first term falls as R grows and the second rises, so the maximum sits
// at their crossing R*. Every R gives a bound (with a certified source), so
// the search keeps the best value met. It starts at
// R0 = min_j g_j(x) / ||grad g_j(x)||_q, the linearised distance: G_j(R) is at
// least the gradient norm at x, so the crossing lies at or below R0 (R0 is
// capped at the diameter of D). Then bisection on log R between
// R0 2^-octaves and R0, every sample taking the same number of steps (a
// sample's random draws depend on nothing else).
//
// Room (p = inf, local_ball.room): the source may weigh each pixel's two
// directions by its room toward D's faces at the trial radius R
// (bounds/interval_jacobian.h). Its figure G then gives g_j(x + delta) >=
// g_j(x) - max(||delta||, R) G for ||delta|| <= R, so the whole ball of radius
// R is safe when min_j g_j / G_j >= R, but the ratio at a larger R proves
// nothing about a smaller ball: only radii shown whole count.
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/sources.h"
#include "core/error.h"

namespace bb {
namespace {

class LocalBall : public SourcedBound {
 public:
  LocalBall(const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options)
      : SourcedBound(label, p, std::move(source), options) {}

  std::string name() const override {
    return room() ? describe({"local_ball.octaves", "local_ball.bisection_steps", "local_ball.room"})
                  : describe({"local_ball.octaves", "local_ball.bisection_steps"});
  }

 protected:
  bool room() const { return norm() == Norm::Linf && options_.local_ball.room && source_->weighs_room(); }

  BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const override {
    const Box box = model.classifier.spec().domain;
    const Linearised at_x = linearise(model.classifier, x, c, norm());
    auto random = RandomStreams::derive(context.seed, name(), context.index, c.device());
    auto gradients = torch::full({x.size(0)}, at_x.targets.size(1), c.options().dtype(torch::kInt64));
    BestSoFar best;
    // min(min_j g_j / G_j(R), R) at radii R [N]; R is feasible when the
    // first term is at least R (the crossing lies above).
    search_log_radius(
        at_x.r0, options_.local_ball.octaves, options_.local_ball.bisection_steps,
        [&](const torch::Tensor& radius) {
          Region region = Region::ball(x, radius.to(x.scalar_type()), norm(), box);
          auto found = estimate(
              model, region, c, at_x.targets, &random, {},
              room() ? radius.to(torch::kFloat64) : torch::Tensor());
          gradients += found.gradients;
          auto ratio = min_ratio(at_x.g, found.value, at_x.targets);
          auto shown = ratio.value >= radius;
          // With the room at R the figure holds only for the whole ball of
          // radius R: a radius that is not shown gives nothing.
          auto value = room() ? torch::where(shown, radius, torch::zeros_like(radius))
                              : torch::minimum(ratio.value, radius);
          best.offer(value, ratio.target, ratio.grad_norm, radius);
          return shown;
        });
    best.result.gradients = gradients;
    return best.result;
  }
};

}  // namespace

std::unique_ptr<Bound> make_local_ball(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options) {
  return std::make_unique<LocalBall>(label, p, std::move(source), options);
}

}  // namespace bb
