#include "attacks/deepfool.h"

#include <torch/torch.h>

#include "attacks/pgd.h"
#include "core/error.h"

namespace bb {
namespace {

// Added to each linearised distance so that a step crosses the boundary
// instead of landing on it (as in the reference implementation).
constexpr double kPastBoundary = 1e-4;
// Guards the division by a zero gradient norm.
constexpr double kTiny = 1e-12;

}  // namespace

DeepFool::DeepFool(Norm p, DeepFoolOptions options, RefineOptions refine)
    : MinimalAttack(p, refine), options_(options) {
  BB_CHECK(options_.overshoot >= 0, "deepfool: overshoot must be >= 0, got {}", options_.overshoot);
  BB_CHECK(options_.max_iterations >= 1, "deepfool: max_iterations must be >= 1");
  BB_CHECK(options_.candidates == 0 || options_.candidates >= 2, "deepfool: candidates must be 0 (all) or >= 2");
}

std::string DeepFool::name() const {
  return fmt::format(
      "deepfool-{}(overshoot={:g},max_iter={},candidates={}){}",
      norm_name(norm()),
      options_.overshoot,
      options_.max_iterations,
      options_.candidates == 0 ? std::string("all") : std::to_string(options_.candidates),
      refine_suffix());
}

torch::Tensor DeepFool::search(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    RandomStreams& /*streams*/,
    torch::Tensor& gradients) const {
  const Box box = model.spec().domain;
  const Norm p = norm();
  const int64_t k = model.num_classes();
  // Candidate classes j != c: all of them, or those with the largest logits at x.
  const int64_t m = options_.candidates == 0 ? k - 1 : std::min<int64_t>(options_.candidates, k) - 1;
  auto column = c.view({-1, 1});
  auto logits = model.logits(x);  // ranks the candidates and is the first activity check
  auto ranked = logits.scatter(1, column, -std::numeric_limits<float>::infinity());
  auto targets = std::get<1>(ranked.topk(m, /*dim=*/1));  // [N, m]

  auto total = torch::zeros_like(x);  // accumulated perturbation
  auto z = x.detach().clone();
  for (int it = 0; it < options_.max_iterations; ++it) {
    // One host sync per iteration: work only on samples still classified c.
    auto done = it == 0 ? misclassified_logits(logits, c) : model.misclassified(z, c);
    auto active = (~done).nonzero().squeeze(1);
    if (active.numel() == 0) {
      break;
    }
    auto za = z.index_select(0, active);
    auto ca = c.index_select(0, active);
    auto mg = model.margin_gradients(za, ca, targets.index_select(0, active));
    gradients.index_add_(0, active, torch::full({active.size(0)}, m, gradients.options()));
    // Only directions that can move inside D count (descent on g_j).
    const int64_t na = active.size(0);
    auto w_norm = feasible_descent_norms(mg.grads, za, dual(p), box);  // [na, m]
    auto distance = (mg.values.abs() + kPastBoundary) / (w_norm + kTiny);
    auto nearest = distance.argmin(1);  // [na]
    auto w = feasible_descent(mg.grads.index({torch::arange(na, nearest.options()), nearest}), za, box);
    auto step_length = distance.gather(1, nearest.view({-1, 1})).squeeze(1);
    auto delta = -per_sample(step_length, w) * steepest_direction(w, p);
    total.index_add_(0, active, delta.to(total.scalar_type()));
    auto moved = (x.index_select(0, active) + (1 + options_.overshoot) * total.index_select(0, active))
                     .clamp(box.lo, box.hi);
    z.index_copy_(0, active, moved);
  }
  return z;
}

}  // namespace bb
