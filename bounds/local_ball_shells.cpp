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

class LocalBallShells : public SourcedBound {
 public:
  LocalBallShells(const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options)
      : SourcedBound(label, p, std::move(source), options) {}

  std::string name() const override {
    return describe({"local_ball.octaves", "shells.shells", "shells.bisection_steps"});
  }

 protected:
  BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const override {
    const Box box = model.classifier.spec().domain;
    const int64_t n = x.size(0);
    const Linearised at_x = linearise(model.classifier, x, c, norm());
    const auto& g = at_x.g;
    auto random = RandomStreams::derive(context.seed, name(), context.index, c.device());
    auto gradients = torch::full({n}, at_x.targets.size(1), c.options().dtype(torch::kInt64));
    const int shells = options_.shells.shells;
    BestSoFar best;
    best.offer(
        torch::zeros({n}, g.options()), at_x.targets.select(1, 0),
        torch::full({n}, std::numeric_limits<double>::quiet_NaN(), g.options()), torch::zeros({n}, g.options()));
    // Whether each sample's radius R [N] is shown safe.
    auto shown = [&](const torch::Tensor& radius) {
      auto spent = torch::zeros_like(g);
      torch::Tensor outer;
      for (int i = 1; i <= shells; ++i) {
        auto r_i = radius * (static_cast<double>(i) / shells);
        Region region = Region::ball(x, r_i.to(x.scalar_type()), norm(), box);
        auto found = estimate(model, region, c, at_x.targets, &random);
        gradients += found.gradients;
        spent = spent + found.value * (radius / shells).unsqueeze(1);
        outer = found.value;
      }
      auto integral = std::get<0>((g - spent).min(1)) > 0;
      auto single = std::get<0>((g - outer * radius.unsqueeze(1)).min(1)) > 0;
      auto safe = integral | single;
      // The class nearest to failing, and its outer-shell figure.
      auto at = std::get<1>((outer / g.clamp_min(1e-300)).max(1)).unsqueeze(1);
      best.offer(
          torch::where(safe, radius, torch::zeros_like(radius)), at_x.targets.gather(1, at).squeeze(1),
          outer.gather(1, at).squeeze(1), radius);
      return safe;
    };
    search_log_radius(at_x.r0, options_.local_ball.octaves, options_.shells.bisection_steps, shown);
    best.result.radius = best.result.value;
    best.result.gradients = gradients;
    return best.result;
  }
};

}  // namespace

std::unique_ptr<Bound> make_local_ball_shells(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options) {
  return std::make_unique<LocalBallShells>(label, p, std::move(source), options);
}

}  // namespace bb
