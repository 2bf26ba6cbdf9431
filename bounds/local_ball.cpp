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
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/sources.h"
#include "core/error.h"

namespace bb {
namespace {

class LocalBall : public Bound {
 public:
  LocalBall(const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options)
      : Bound(p), label_(label), source_(std::move(source)), options_(options) {}

  std::string name() const override {
    return fmt::format(
        "{}-{}({})+{}", label_, norm_name(norm()),
        describe_options(options_, {"local_ball.octaves", "local_ball.bisection_steps"}),
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
    const int64_t k = classifier.num_classes();
    auto targets = other_classes(c, k);
    const int64_t m = targets.size(1);
    auto at_x = classifier.margin_gradients(x, c, targets);
    auto g = at_x.values.to(torch::kFloat64);
    auto slope = lp_norm(at_x.grads.reshape({x.size(0) * m, -1}).to(torch::kFloat64), dual(p))
                     .view({x.size(0), m});
    const double diameter = domain_diameter(box, p, x[0].numel());
    auto r0 = min_ratio(g, slope, targets).value.clamp_max(diameter);
    // A zero margin (a tie at x) gives the bound 0 at once; keep R positive.
    r0 = torch::where(r0 > 0, r0, torch::full_like(r0, diameter));
    auto random = RandomStreams::derive(context.seed, name(), context.index, c.device());
    auto gradients = torch::full({x.size(0)}, m, c.options().dtype(torch::kInt64));

    // min(min_j g_j / G_j(R), R) for radii R [N].
    auto evaluate = [&](const torch::Tensor& radius) {
      Region region = Region::ball(x, radius.to(x.scalar_type()), p, box);
      GradNormRequest request;
      request.model = &model;
      request.region = &region;
      request.c = c;
      request.targets = targets;
      request.random = &random;
      auto estimate = source_->estimate(request);
      gradients += estimate.gradients;
      return std::make_pair(min_ratio(g, estimate.value, targets), radius);
    };
    BoundResult result;
    auto take = [&](const MinRatio& ratio, const torch::Tensor& radius, bool first) {
      auto value = torch::minimum(ratio.value, radius);
      if (first) {
        result.value = value;
        result.target = ratio.target;
        result.grad_norm = ratio.grad_norm;
        result.radius = radius;
        return;
      }
      auto better = value > result.value;
      result.value = torch::where(better, value, result.value);
      result.target = torch::where(better, ratio.target, result.target);
      result.grad_norm = torch::where(better, ratio.grad_norm, result.grad_norm);
      result.radius = torch::where(better, radius, result.radius);
    };
    {
      auto [ratio, radius] = evaluate(r0);
      take(ratio, radius, true);
    }
    auto hi = r0.log();
    auto lo = hi - options_.local_ball.octaves * std::log(2.0);
    for (int step = 0; step < options_.local_ball.bisection_steps; ++step) {
      auto mid = (lo + hi) / 2;
      auto [ratio, radius] = evaluate(mid.exp());
      take(ratio, radius, false);
      auto feasible = ratio.value >= radius;  // the crossing lies above
      lo = torch::where(feasible, mid, lo);
      hi = torch::where(feasible, hi, mid);
    }
    result.gradients = gradients;
    return result;
  }

 private:
  std::string label_;
  std::unique_ptr<GradNormSource> source_;
  BoundOptions options_;
};

}  // namespace

std::unique_ptr<Bound> make_local_ball(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options) {
  return std::make_unique<LocalBall>(label, p, std::move(source), options);
}

}  // namespace bb
