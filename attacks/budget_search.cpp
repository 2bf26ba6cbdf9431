#include "attacks/budget_search.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

double default_initial_epsilon(Norm p) {
  switch (p) {
    case Norm::Linf:
      return 0.03;
    case Norm::L2:
      return 0.5;
    case Norm::L1:
      return 5.0;
  }
  BB_ASSERT(false, "unhandled norm");
}

namespace {

// The largest distance between two points of D = [lo, hi]^d in the norm.
double diameter(Box box, int64_t d, Norm p) {
  const double side = box.hi - box.lo;
  switch (p) {
    case Norm::Linf:
      return side;
    case Norm::L2:
      return side * std::sqrt(static_cast<double>(d));
    case Norm::L1:
      return side * static_cast<double>(d);
  }
  BB_ASSERT(false, "unhandled norm");
}

}  // namespace

BudgetSearch::BudgetSearch(
    std::unique_ptr<FixedBudgetAttack> attack,
    SearchOptions search,
    RefineOptions refine)
    : MinimalAttack(attack->norm(), refine), attack_(std::move(attack)), options_(search) {
  if (options_.initial_epsilon <= 0) {
    options_.initial_epsilon = default_initial_epsilon(norm());
  }
  BB_CHECK(
      std::isfinite(options_.initial_epsilon),
      "search: initial epsilon must be finite");
  BB_CHECK(options_.max_doublings >= 0, "search: max_doublings must be >= 0");
  BB_CHECK(options_.bisection_steps >= 0, "search: bisection_steps must be >= 0");
}

std::string BudgetSearch::name() const {
  return fmt::format(
      "{}+search(eps0={:g},doublings={},bisect={}){}",
      attack_->name(),
      options_.initial_epsilon,
      options_.max_doublings,
      options_.bisection_steps,
      refine_suffix());
}

torch::Tensor BudgetSearch::search(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    RandomStreams& streams,
    torch::Tensor& gradients) const {
  const int64_t n = x.size(0);
  const double cap = diameter(model.spec().domain, x[0].numel(), norm());
  auto options = torch::TensorOptions().dtype(torch::kFloat64).device(x.device());
  // Per sample: the largest failing budget lo, the smallest succeeding hi
  // (inf until one succeeds), the next budget to try, and the best example.
  auto lo = torch::zeros({n}, options);
  auto hi = torch::full({n}, kInf, options);
  auto eps = torch::full({n}, std::min(options_.initial_epsilon, cap), options);
  auto bisections = torch::zeros({n}, options.dtype(torch::kInt64));
  auto exhausted = torch::zeros({n}, options.dtype(torch::kBool));
  auto best = x.detach().clone();
  auto best_distance = torch::full({n}, kInf, options);
  const int rounds = options_.max_doublings + 1 + options_.bisection_steps;
  // A sample that has bisected enough or failed at the largest budget is
  // finished: later rounds (run for the others) change nothing of it, so
  // its result and cost do not depend on the batch it shares.
  auto finished = torch::zeros({n}, options.dtype(torch::kBool));
  for (int round = 0; round < rounds; ++round) {
    AttackResult r = attack_->run_validated(model, x, c, eps.to(x.scalar_type()), streams);
    auto live = ~finished;
    gradients += torch::where(live, r.gradients, torch::zeros_like(r.gradients));
    auto success = r.success & live;
    auto failure = ~r.success & live;
    auto closer = success & (r.distance < best_distance);
    best = torch::where(per_sample(closer, x), r.x_adv, best);
    best_distance = torch::where(closer, r.distance, best_distance);
    auto searching = torch::isinf(hi);  // still doubling
    bisections += (~searching & live).to(torch::kInt64);
    hi = torch::where(success, torch::minimum(hi, eps), hi);
    lo = torch::where(failure, torch::maximum(lo, eps), lo);
    exhausted = exhausted | (failure & torch::isinf(hi) & (eps >= cap));
    auto doubled = torch::clamp_max(eps * 2, cap);
    eps = torch::where(live, torch::where(torch::isinf(hi), doubled, (lo + hi) / 2), eps);
    finished = (bisections >= options_.bisection_steps) | exhausted;
    // One host sync per round (a whole attack run): stop when every sample
    // is finished.
    if (finished.all().item<bool>()) {
      break;
    }
  }
  return best;
}

}  // namespace bb
