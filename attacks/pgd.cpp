#include "attacks/pgd.h"

#include <limits>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

double default_rel_stepsize(Norm p) {
  return p == Norm::Linf ? 0.01 / 0.3 : 0.025;
}

// Added to DLR's denominator (Croce & Hein's constant).
constexpr double kDlrTiny = 1e-12;

// The loss at the logits `values` [N, k] (no graph), its derivative with
// respect to the logits (the seed of the backward pass) and whether each
// sample is misclassified.
struct LossAtLogits {
  torch::Tensor value;          // [N]
  torch::Tensor seed;           // [N, k]
  torch::Tensor misclassified;  // bool [N]
};

LossAtLogits loss_at_logits(const torch::Tensor& values, const torch::Tensor& c, PgdLoss loss) {
  torch::NoGradGuard no_grad;
  if (loss == PgdLoss::Dlr && values.size(1) < 3) {
    loss = PgdLoss::Margin;  // DLR's f_pi3 does not exist
  }
  auto column = c.view({-1, 1});
  auto own = values.gather(1, column);
  auto best = values.scatter(1, column, -std::numeric_limits<float>::infinity()).max(1, /*keepdim=*/true);
  const auto& top = std::get<0>(best);
  const auto& runner_up = std::get<1>(best);  // j*, the highest class other than c
  auto margin = top - own;                     // [N, 1]
  LossAtLogits r;
  r.misclassified = (top > own).squeeze(1);
  switch (loss) {
    case PgdLoss::Margin:
      r.value = margin.squeeze(1);
      r.seed = torch::zeros_like(values).scatter_(1, runner_up, 1.0).scatter_(1, column, -1.0);
      break;
    case PgdLoss::CrossEntropy:
      // d/df (log sum exp f - f_c) = softmax(f) - e_c.
      r.value = (torch::logsumexp(values, 1, /*keepdim=*/true) - own).squeeze(1);
      r.seed = torch::softmax(values, 1).scatter_add_(1, column, -torch::ones_like(own));
      break;
    case PgdLoss::Dlr: {
      // L = m / s with m = f_j* - f_c and s = f_pi1 - f_pi3 + tiny:
      // dL/df = (e_j* - e_c) / s - m / s^2 (e_pi1 - e_pi3).
      auto order = std::get<1>(values.topk(3, 1));
      auto first = order.narrow(1, 0, 1);
      auto third = order.narrow(1, 2, 1);
      auto spread = values.gather(1, first) - values.gather(1, third) + kDlrTiny;
      auto inverse = 1.0 / spread;
      auto shift = margin * inverse * inverse;
      r.value = (margin * inverse).squeeze(1);
      r.seed = torch::zeros_like(values)
                   .scatter_add_(1, runner_up, inverse)
                   .scatter_add_(1, column, -inverse)
                   .scatter_add_(1, first, -shift)
                   .scatter_add_(1, third, shift);
      break;
    }
  }
  return r;
}

}  // namespace

PgdLoss parse_pgd_loss(const std::string& text, const std::string& what) {
  if (text == "ce") {
    return PgdLoss::CrossEntropy;
  }
  if (text == "margin") {
    return PgdLoss::Margin;
  }
  if (text == "dlr") {
    return PgdLoss::Dlr;
  }
  throw Error(fmt::format("{}: unknown loss '{}' (valid: {})", what, text, fmt::join(pgd_loss_names(), ", ")));
}

std::string pgd_loss_name(PgdLoss loss) {
  switch (loss) {
    case PgdLoss::CrossEntropy:
      return "ce";
    case PgdLoss::Margin:
      return "margin";
    case PgdLoss::Dlr:
      return "dlr";
  }
  BB_ASSERT(false, "unhandled loss {}", static_cast<int>(loss));
}

std::vector<std::string> pgd_loss_names() {
  return {"ce", "margin", "dlr"};
}

torch::Tensor pgd_loss_value(const torch::Tensor& logits, const torch::Tensor& c, PgdLoss loss) {
  return loss_at_logits(logits.detach(), c, loss).value;
}

LossGradient loss_gradient(const Classifier& model, const torch::Tensor& z, const torch::Tensor& c, PgdLoss loss) {
  auto zg = z.detach().requires_grad_(true);
  auto logits = model.logits_with_grad(zg);
  auto at = loss_at_logits(logits.detach(), c, loss);
  LossGradient result;
  result.grad = torch::autograd::grad({logits}, {zg}, {at.seed})[0];
  result.value = at.value;
  result.misclassified = at.misclassified;
  return result;
}

MarginLossGradient margin_loss_gradient(const Classifier& model, const torch::Tensor& z, const torch::Tensor& c) {
  return loss_gradient(model, z, c, PgdLoss::Margin);
}

LossGradient target_margin_gradient(
    const Classifier& model,
    const torch::Tensor& z,
    const torch::Tensor& c,
    const torch::Tensor& t) {
  auto zg = z.detach().requires_grad_(true);
  auto logits = model.logits_with_grad(zg);
  LossGradient result;
  torch::Tensor seed;
  {
    torch::NoGradGuard no_grad;
    auto values = logits.detach();
    auto column = c.view({-1, 1});
    auto target = t.view({-1, 1});
    result.value = (values.gather(1, target) - values.gather(1, column)).squeeze(1);
    result.misclassified = misclassified_logits(values, c);
    seed = torch::zeros_like(values).scatter_(1, target, 1.0).scatter_(1, column, -1.0);
  }
  result.grad = torch::autograd::grad({logits}, {zg}, {seed})[0];
  return result;
}

Pgd::Pgd(Norm p, PgdOptions options) : Pgd(p, options, "pgd") {}

Pgd::Pgd(Norm p, PgdOptions options, std::string family)
    : FixedBudgetAttack(p),
      options_(options),
      loss_(parse_pgd_loss(options.loss)),
      family_(std::move(family)) {
  if (options_.rel_stepsize <= 0) {
    options_.rel_stepsize = default_rel_stepsize(p);
  }
  BB_CHECK(options_.steps >= 1, "--pgd.steps: must be at least 1, got {}", options_.steps);
  BB_CHECK(options_.restarts >= 1, "--pgd.restarts: must be at least 1, got {}", options_.restarts);
}

Pgd Pgd::fgsm(Norm p) {
  PgdOptions options;
  options.steps = 1;
  options.rel_stepsize = 1.0;
  options.random_start = false;
  options.loss = "margin";
  return Pgd(p, options, "fgsm");
}

std::string Pgd::name() const {
  if (family_ == "fgsm") {
    return fmt::format("fgsm-{}", norm_name(norm()));
  }
  return fmt::format(
      "pgd-{}(steps={},rel_step={:g},random_start={},loss={},restarts={})",
      norm_name(norm()),
      options_.steps,
      options_.rel_stepsize,
      options_.random_start ? "true" : "false",
      pgd_loss_name(loss_),
      options_.restarts);
}

torch::Tensor Pgd::ascend(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& z0,
    const torch::Tensor& c,
    const torch::Tensor& radius,
    const torch::Tensor& step,
    PgdLoss loss) const {
  const Box box = model.spec().domain;
  // A row that is misclassified keeps its point from then on (its logits,
  // and so its success, stay the same), so each row ends at its first
  // success, or at the last step.
  auto z = z0;
  for (int t = 0; t < options_.steps; ++t) {
    const auto at = loss_gradient(model, z, c, loss);
    z = ascent_step(x, z, at.grad, radius, step, norm(), box, /*keep=*/at.misclassified);
  }
  return z;
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
  auto random_point = [&] {
    return sample_ball(x, epsilon, p, /*draws=*/1, streams).select(1, 0).clamp(box.lo, box.hi);
  };
  auto z = ascend(model, x, options_.random_start ? random_point() : x.detach(), c, radius, step, loss_);
  gradients += options_.steps;
  if (options_.restarts == 1) {
    return z;
  }
  // Restarts, for the rows still correctly classified. Every restart draws
  // its start for every row, so that each stream advances by the same count
  // whichever rows run (a sample's numbers do not depend on its batch); the
  // first start is the one a single run takes. One host sync per restart.
  z = z.clone();
  auto broken = model.misclassified(z, c);
  for (int r = 1; r < options_.restarts; ++r) {
    auto fresh = random_point();
    auto active = (~broken).nonzero().squeeze(1);
    if (active.numel() == 0) {
      continue;
    }
    auto ca = c.index_select(0, active);
    auto za = ascend(
        model,
        x.index_select(0, active),
        fresh.index_select(0, active),
        ca,
        radius.index_select(0, active),
        step.index_select(0, active),
        loss_);
    auto now = model.misclassified(za, ca);
    gradients.index_add_(0, active, torch::full({active.size(0)}, options_.steps, gradients.options()));
    z.index_copy_(0, active, torch::where(per_sample(now, za), za, z.index_select(0, active)));
    broken.index_copy_(0, active, now);
  }
  return z;
}

}  // namespace bb
