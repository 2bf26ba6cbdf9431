// Local ball by shell integration (RecurJac's integral form), on a grid of
// radii that every round refines. For radii 0 < r_1 < ... < r_L with
// G_j(r_l) a bound on ||grad g_j|| over B_p(x, r_l) ∩ D, any point of a
// segment from x at distance t <= r_l from x lies in B_p(x, r_l), so the
// rate at which g_j can fall there is at most
//   env_j(t) = min_{l : r_l >= t} G_j(r_l)
// (the bounds need not grow with the radius; every larger ball's bound holds),
// and for ||delta||_p = R <= r_L
//   g_j(x + delta) >= g_j(x) - I_j(R),   I_j(R) = int_0^R env_j(t) dt,
// a piecewise-linear, increasing integral. Every R with g_j(x) - I_j(R) > 0
// for all j is shown safe: rho_p(x) >= R* = min_j sup { R <= r_L : I_j(R) <
// g_j(x) }, found in closed form on the grid (shell_integral).
//
// The grid: round 1 takes `shells.shells` equal steps up to R0 (the
// linearised distance; the crossing lies at or below it, as for the local
// ball), each later round as many again up to T, the first grid radius
// where some class's budget has run out, shifted by van der Corput offsets
// (1/2, 1/4, 3/4, ...) so that the rounds interleave. Every estimator call
// adds a shell, unlike a bisection on R, where each trial radius needs its
// own shells. It is never looser than the local ball on the grid's radii:
// at r_l, I_j(r_l) <= G_j(r_l) r_l.
//
// Room (p = inf, shells.room): from round 2 on, the sources may weigh each
// coordinate's two directions by its room toward D's faces at the room
// radius rho = the last round's R* (bounds/interval_jacobian.h): for
// ||delta||_inf = R they then give g_j(x + delta) >= g_j(x) - max(R, rho)/R
// I_j(R) (every bound of an earlier round, with more room, holds with rho's
// weights too). For R >= rho that is the integral above; for R < rho, env
// grows with t, so I_j(R) / R <= I_j(rho) / rho and the loss is at most
// I_j(rho). So every R <= R* is safe as long as rho <= R*, and it is: the
// new radii only lower the envelope, so R* does not fall below the last
// round's (where rounding would make it, the last round's R* stands).
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/sources.h"
#include "core/error.h"

namespace bb {

ShellIntegral shell_integral(const torch::Tensor& radii, const torch::Tensor& grad_norm, const torch::Tensor& g) {
  BB_CHECK(
      radii.dim() == 2 && grad_norm.dim() == 3 && g.dim() == 2 && grad_norm.size(0) == radii.size(0) &&
          grad_norm.size(1) == radii.size(1) && grad_norm.size(2) == g.size(1) && g.size(0) == radii.size(0),
      "shell integral: radii [N, L], bounds [N, L, m] and margins [N, m] expected, got {}, {} and {}",
      radii.sizes(), grad_norm.sizes(), g.sizes());
  const int64_t m = g.size(1);
  auto sorted = radii.to(torch::kFloat64).sort(1);
  auto r = std::get<0>(sorted);                                    // [N, L]
  auto order = std::get<1>(sorted).unsqueeze(2).expand({-1, -1, m});
  auto bound = grad_norm.to(torch::kFloat64).gather(1, order);    // [N, L, m]
  // env over (r_{l-1}, r_l]: the smallest bound of a ball at least that large.
  auto env = std::get<0>(bound.flip(1).cummin(1)).flip(1);
  auto width = (r - torch::cat({torch::zeros_like(r.narrow(1, 0, 1)), r.narrow(1, 0, r.size(1) - 1)}, 1))
                   .unsqueeze(2);                                  // [N, L, 1]
  auto spent = (env * width).cumsum(1);                            // I_j(r_l)
  auto left = g.to(torch::kFloat64).unsqueeze(1) - (spent - env * width);  // budget at r_{l-1}
  auto start = (r.unsqueeze(2) - width).expand_as(left);          // r_{l-1}
  // Within (r_{l-1}, r_l] the budget falls at rate env: it reaches 0 at
  // r_{l-1} + left / env (width where env is 0). Where it is already spent
  // at r_{l-1} nothing of the interval counts.
  auto reach = torch::minimum(left / env, width.expand_as(left));
  auto candidate = torch::where(left > 0, start + reach, torch::zeros_like(left));
  auto per_class = std::get<0>(candidate.max(1));                  // [N, m]
  auto limiting = per_class.min(1);
  ShellIntegral out;
  out.radius = std::get<0>(limiting);
  out.index = std::get<1>(limiting);
  // The bound in force where the limiting class's budget runs out.
  auto crossing = (r < out.radius.unsqueeze(1)).sum(1, true).clamp_max(r.size(1) - 1);  // [N, 1]
  auto in_force = env.gather(1, crossing.unsqueeze(2).expand({-1, 1, m})).squeeze(1);    // [N, m]
  out.grad_norm = in_force.gather(1, out.index.unsqueeze(1)).squeeze(1);
  // The first grid radius where some class has run out; the largest if none.
  auto spent_out = (g.to(torch::kFloat64).unsqueeze(1) - spent <= 0).any(2);  // [N, L]
  auto first = spent_out.to(torch::kInt64).argmax(1, true);
  out.exhausted = torch::where(spent_out.any(1), r.gather(1, first).squeeze(1), r.select(1, r.size(1) - 1));
  return out;
}

namespace {

// The van der Corput sequence in base 2: 0, 1/2, 1/4, 3/4, 1/8, ...
double van_der_corput(int k) {
  double value = 0;
  double digit = 0.5;
  for (; k > 0; k >>= 1, digit /= 2) {
    value += (k & 1) * digit;
  }
  return value;
}

class LocalBallShells : public SourcedBound {
 public:
  LocalBallShells(const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options)
      : SourcedBound(label, p, std::move(source), options) {}

  std::string name() const override {
    return room() ? describe({"shells.shells", "shells.rounds", "shells.room"})
                  : describe({"shells.shells", "shells.rounds"});
  }

 protected:
  bool room() const { return norm() == Norm::Linf && options_.shells.room && source_->weighs_room(); }

  BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const override {
    const Box box = model.classifier.spec().domain;
    const Linearised at_x = linearise(model.classifier, x, c, norm());
    auto random = RandomStreams::derive(context.seed, name(), context.index, c.device());
    auto gradients = torch::full({x.size(0)}, at_x.targets.size(1), c.options().dtype(torch::kInt64));
    const int shells = options_.shells.shells;
    std::vector<torch::Tensor> radii;
    std::vector<torch::Tensor> bounds;
    ShellIntegral integral;
    auto top = at_x.r0;
    // The room radius: none in round 1 (faces only), then the last round's R*.
    torch::Tensor room_radius;
    for (int round = 0; round < options_.shells.rounds; ++round) {
      const double offset = van_der_corput(round);
      for (int i = 1; i <= shells; ++i) {
        auto radius = top * ((i - offset) / shells);
        Region region = Region::ball(x, radius.to(x.scalar_type()), norm(), box);
        auto found = estimate(model, region, c, at_x.targets, &random, {}, room_radius);
        gradients += found.gradients;
        radii.push_back(radius);
        bounds.push_back(found.value);
      }
      const ShellIntegral last = integral;
      integral = shell_integral(torch::stack(radii, 1), torch::stack(bounds, 1), at_x.g);
      if (room_radius.defined()) {
        // Adding radii only lowers the envelope, so R* cannot fall below the
        // room radius but by rounding; the last round's R* stands then.
        auto fell = integral.radius < last.radius;
        integral.radius = torch::where(fell, last.radius, integral.radius);
        integral.index = torch::where(fell, last.index, integral.index);
        integral.grad_norm = torch::where(fell, last.grad_norm, integral.grad_norm);
      }
      top = integral.exhausted;
      if (room()) {
        room_radius = integral.radius.to(torch::kFloat64);
      }
    }
    BoundResult result;
    result.value = integral.radius;
    result.radius = integral.radius;
    result.target = at_x.targets.gather(1, integral.index.unsqueeze(1)).squeeze(1);
    result.grad_norm = integral.grad_norm;
    result.gradients = gradients;
    return result;
  }
};

}  // namespace

std::unique_ptr<Bound> make_local_ball_shells(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options) {
  return std::make_unique<LocalBallShells>(label, p, std::move(source), options);
}

}  // namespace bb
