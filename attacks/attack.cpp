#include "attacks/attack.h"

#include <torch/torch.h>

#include "attacks/budget_search.h"
#include "attacks/deepfool.h"
#include "attacks/fmn.h"
#include "attacks/pgd.h"
#include "core/error.h"
#include "core/runtime.h"

namespace bb {
namespace {

torch::Tensor epsilon_column(const torch::Tensor& epsilon, const torch::Tensor& x) {
  auto eps = epsilon.to(x.options());
  return eps.dim() == 0 ? eps.expand({x.size(0)}) : eps;
}

// Which candidates are misclassified. NaN or infinite logits at a candidate
// are a NonFiniteLogits naming the method, the model and the sample (in this
// batch), never a silent failure. One host sync.
torch::Tensor checked_misclassified(
    const Classifier& model,
    const torch::Tensor& candidates,
    const torch::Tensor& c,
    const std::string& method) {
  auto logits = model.logits(candidates);
  model.check_finite(logits, method, 0, " at a candidate example");
  return misclassified_logits(logits, c);
}

// Clips to D, re-checks misclassification and measures the distance.
AttackResult finish(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& x_adv,
    const torch::Tensor& c,
    Norm p,
    const std::string& method) {
  const Box box = model.spec().domain;
  auto clipped = x_adv.detach().clamp(box.lo, box.hi);
  AttackResult result;
  result.success = checked_misclassified(model, clipped, c, method);
  result.x_adv = torch::where(per_sample(result.success, x), clipped, x);
  auto distance = lp_norm((result.x_adv - x).to(torch::kFloat64), p);
  result.distance = torch::where(
      result.success, distance, torch::full_like(distance, std::numeric_limits<double>::quiet_NaN()));
  return result;
}

}  // namespace

RandomStreams attack_streams(
    const std::string& method,
    const AttackContext& context,
    int64_t n,
    torch::Device device) {
  torch::Tensor index = context.index;
  if (!index.defined()) {
    index = torch::arange(n, torch::kInt64);
  }
  BB_CHECK(
      index.dim() == 1 && index.size(0) == n,
      "{}: expected {} sample indices, got {}",
      method,
      n,
      index.sizes());
  return RandomStreams::derive(context.seed, method, index, device);
}

void check_attack_inputs(const Classifier& model, const torch::Tensor& x) {
  model.check_input(x, "attack inputs");
  const Box box = model.spec().domain;
  if (x.numel() == 0) {
    return;
  }
  const double lowest = x.min().item<double>();
  const double highest = x.max().item<double>();
  BB_CHECK(
      lowest >= box.lo && highest <= box.hi,
      "attack inputs: values in [{}, {}] lie outside the domain D = [{}, {}]",
      lowest,
      highest,
      box.lo,
      box.hi);
}

void check_epsilon(const torch::Tensor& epsilon) {
  BB_CHECK(epsilon.defined() && epsilon.numel() > 0, "epsilon: no budget given");
  auto eps = epsilon.to(torch::kFloat64);
  const double lowest = eps.min().item<double>();
  BB_CHECK(
      torch::isfinite(eps).all().item<bool>() && lowest > 0,
      "epsilon: budgets must be positive and finite, got {}",
      eps.numel() == 1 ? fmt::format("{}", eps.item<double>())
                       : fmt::format("values down to {}", lowest));
}

AttackResult FixedBudgetAttack::run(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& epsilon,
    const AttackContext& context) const {
  check_attack_inputs(model, x);
  check_epsilon(epsilon);
  BB_CHECK(
      epsilon.dim() == 0 || (epsilon.dim() == 1 && epsilon.size(0) == x.size(0)),
      "epsilon: expected one budget or {}, got {}",
      x.size(0),
      epsilon.numel());
  RandomStreams streams = attack_streams(name(), context, x.size(0), x.device());
  return run_validated(model, x, c, epsilon, streams);
}

AttackResult FixedBudgetAttack::run_validated(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& epsilon,
    RandomStreams& streams) const {
  Stopwatch watch(model.device());
  auto eps = epsilon_column(epsilon, x);
  auto gradients = torch::zeros({x.size(0)}, c.options().dtype(torch::kInt64));
  auto candidate = perturb(model, x, c, eps, streams, gradients);
  // Back into the budget (the step may have left it) and into D.
  candidate = project_ball_box(x, candidate.detach(), eps, norm_, model.spec().domain);
  AttackResult result = finish(model, x, candidate, c, norm_, name());
  result.gradients = gradients;
  result.seconds = watch.seconds();
  return result;
}

AttackResult MinimalAttack::run(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const AttackContext& context) const {
  check_attack_inputs(model, x);
  RandomStreams streams = attack_streams(name(), context, x.size(0), x.device());
  Stopwatch watch(model.device());
  auto gradients = torch::zeros({x.size(0)}, c.options().dtype(torch::kInt64));
  auto candidate = search(model, x, c, streams, gradients);
  const Box box = model.spec().domain;
  candidate = candidate.detach().clamp(box.lo, box.hi);
  auto success = checked_misclassified(model, candidate, c, name());
  candidate = refine_to_boundary(model, x, candidate, c, success, refine_.steps);
  AttackResult result = finish(model, x, candidate, c, norm_, name());
  result.gradients = gradients;
  result.seconds = watch.seconds();
  return result;
}

std::string MinimalAttack::refine_suffix() const {
  return fmt::format("+refine(steps={})", refine_.steps);
}

torch::Tensor refine_to_boundary(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& x_adv,
    const torch::Tensor& c,
    const torch::Tensor& success,
    int steps) {
  // Invariant: x + hi (x_adv - x) is misclassified; x + lo (x_adv - x) is the
  // clean side. Samples that failed keep hi = 1 and are returned unchanged.
  auto options = x.options();
  auto lo = torch::zeros({x.size(0)}, options);
  auto hi = torch::ones({x.size(0)}, options);
  auto direction = x_adv - x;
  for (int i = 0; i < steps; ++i) {
    auto mid = (lo + hi) / 2;
    auto probe = x + per_sample(mid, x) * direction;
    auto adversarial = model.misclassified(probe, c) & success;
    hi = torch::where(adversarial, mid, hi);
    lo = torch::where(adversarial | ~success, lo, mid);
  }
  // Where no probe was misclassified, x_adv itself (x + 1 (x_adv - x) need
  // not round back to it); elsewhere the last misclassified probe, computed
  // the same way.
  return torch::where(per_sample(hi == 1, x), x_adv, x + per_sample(hi, x) * direction);
}

std::vector<std::string> attack_names() {
  return {"fgsm", "pgd", "deepfool", "fmn"};
}

std::vector<std::string> fixed_budget_attack_names() {
  return {"fgsm", "pgd"};
}

std::unique_ptr<FixedBudgetAttack> make_fixed_budget_attack(
    const std::string& name,
    Norm p,
    const AttackOptions& options) {
  if (name == "fgsm") {
    return std::make_unique<Pgd>(Pgd::fgsm(p));
  }
  if (name == "pgd") {
    return std::make_unique<Pgd>(p, options.pgd);
  }
  throw Error(fmt::format(
      "--attack: '{}' is not a fixed-budget attack (valid: {})",
      name,
      fmt::join(fixed_budget_attack_names(), ", ")));
}

std::unique_ptr<MinimalAttack> make_attack(
    const std::string& name,
    Norm p,
    const AttackOptions& options) {
  if (name == "deepfool") {
    return std::make_unique<DeepFool>(p, options.deepfool, options.refine);
  }
  if (name == "fmn") {
    return std::make_unique<Fmn>(p, options.fmn, options.refine);
  }
  const auto fixed = fixed_budget_attack_names();
  BB_CHECK(
      std::find(fixed.begin(), fixed.end(), name) != fixed.end(),
      "--attack: unknown attack '{}' (valid: {})",
      name,
      fmt::join(attack_names(), ", "));
  return std::make_unique<BudgetSearch>(
      make_fixed_budget_attack(name, p, options), options.search, options.refine);
}

}  // namespace bb
