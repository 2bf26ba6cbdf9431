#include "attacks/pgd.h"

#include <limits>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

double default_rel_stepsize(Norm p) {
  return p == Norm::Linf ? 0.01 / 0.3 : 0.025;
}

}  // namespace

MarginLossGradient margin_loss_gradient(const Classifier& model, const torch::Tensor& z, const torch::Tensor& c) {
  auto zg = z.detach().requires_grad_(true);
  auto logits = model.logits_with_grad(zg);
  // The loss's gradient is that of the logits seeded with +1 at j* and -1 at
  // c, so the loss itself needs no graph.
  auto column = c.view({-1, 1});
  MarginLossGradient result;
  torch::Tensor seed;
  {
    torch::NoGradGuard no_grad;
    auto values = logits.detach();
    auto own = values.gather(1, column);
    auto best = values.scatter(1, column, -std::numeric_limits<float>::infinity()).max(1, /*keepdim=*/true);
    result.misclassified = (std::get<0>(best) > own).squeeze(1);
    seed = torch::zeros_like(values).scatter_(1, std::get<1>(best), 1.0).scatter_(1, column, -1.0);
  }
  result.grad = torch::autograd::grad({logits}, {zg}, {seed})[0];
  return result;
}

Pgd::Pgd(Norm p, PgdOptions options) : Pgd(p, options, "pgd") {}

Pgd::Pgd(Norm p, PgdOptions options, std::string family)
    : FixedBudgetAttack(p), options_(options), family_(std::move(family)) {
  if (options_.rel_stepsize <= 0) {
    options_.rel_stepsize = default_rel_stepsize(p);
  }
  BB_CHECK(options_.steps >= 1, "pgd: steps must be >= 1, got {}", options_.steps);
}

Pgd Pgd::fgsm(Norm p) {
  PgdOptions options;
  options.steps = 1;
  options.rel_stepsize = 1.0;
  options.random_start = false;
  return Pgd(p, options, "fgsm");
}

std::string Pgd::name() const {
  if (family_ == "fgsm") {
    return fmt::format("fgsm-{}", norm_name(norm()));
  }
  return fmt::format(
      "pgd-{}(steps={},rel_step={:g},random_start={})",
      norm_name(norm()),
      options_.steps,
      options_.rel_stepsize,
      options_.random_start ? "true" : "false");
}

torch::Tensor Pgd::perturb(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& epsilon,
    RandomStreams& streams,
    torch::Tensor& gradients) const {
  const Box box = model.spec().domain;
  const Norm p = norm();
  // Budgets and steps as the float64 the step kernel reads (converted once).
  auto radius = epsilon.to(torch::kFloat64);
  auto step = radius * options_.rel_stepsize;
  auto z = x.detach();
  if (options_.random_start) {
    z = sample_ball(x, epsilon, p, /*draws=*/1, streams).select(1, 0).clamp(box.lo, box.hi);
  }
  // A row that is misclassified keeps its point from then on (its logits,
  // and so its success, stay the same), so each row ends at its first
  // success, or at the last step.
  for (int t = 0; t < options_.steps; ++t) {
    const auto loss = margin_loss_gradient(model, z, c);
    z = ascent_step(x, z, loss.grad, radius, step, p, box, /*keep=*/loss.misclassified);
  }
  gradients += options_.steps;
  return z;
}

}  // namespace bb
