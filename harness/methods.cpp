#include "harness/methods.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "attacks/fmn.h"
#include "attacks/pgd.h"
#include "core/error.h"

namespace bb {

std::vector<OptionField> option_fields(MethodOptions& o) {
  std::vector<OptionField> fields{
      {"pgd.steps", "PGD (and its budget search): steps per budget", &o.attack.pgd.steps},
      {"pgd.rel_step", "PGD: step size relative to the budget (0: Linf 0.01/0.3, L1 and L2 0.025)",
       &o.attack.pgd.rel_stepsize},
      {"pgd.random_start", "PGD: start from a uniform point of the ball", &o.attack.pgd.random_start},
      {"pgd.loss", "PGD: the loss it ascends, ce (cross-entropy), margin or dlr (difference-of-logits ratio)",
       &o.attack.pgd.loss},
      {"pgd.restarts", "PGD: runs per budget, each further one from a fresh random point", &o.attack.pgd.restarts},
      {"deepfool.overshoot", "DeepFool: overshoot factor of each step", &o.attack.deepfool.overshoot},
      {"deepfool.max_iter", "DeepFool: iterations at most", &o.attack.deepfool.max_iterations},
      {"deepfool.candidates", "DeepFool: classes considered (0: all, else the top-k logits)",
       &o.attack.deepfool.candidates},
      {"fmn.steps", "FMN: steps (one gradient evaluation each)", &o.attack.fmn.steps},
      {"fmn.alpha", "FMN: first step, L2 length in units of the side of D", &o.attack.fmn.alpha},
      {"fmn.alpha_final", "FMN: last step (cosine annealing from fmn.alpha)", &o.attack.fmn.alpha_final},
      {"fmn.gamma", "FMN: first relative change of the norm budget per step", &o.attack.fmn.gamma},
      {"fmn.gamma_final", "FMN: last relative change of the norm budget (cosine annealing)", &o.attack.fmn.gamma_final},
      {"fmn.targets", "FMN: untargeted (one run), all (one run per class != c) or m (the m highest classes)",
       &o.attack.fmn.targets},
      {"fmn.start_radius", "FMN: radius of the uniform random start in the attack's norm (0: from x; < 0: Linf 0.03, L2 0.5, "
       "L1 5)", &o.attack.fmn.start_radius},
      {"fmn.restarts", "FMN: runs per target, the first as fmn.start_radius says, the others from random points of "
       "the ball of the distance the first found; the closest kept", &o.attack.fmn.restarts},
      {"search.eps0", "budget search: first budget (0: Linf 0.03, L2 0.5, L1 5)", &o.attack.search.initial_epsilon},
      {"search.doublings", "budget search: doublings at most (capped at the diameter of D)",
       &o.attack.search.max_doublings},
      {"search.bisect", "budget search: bisection steps", &o.attack.search.bisection_steps},
      {"refine.steps", "boundary refinement: halvings of the segment to x", &o.attack.refine.steps},
  };
  for (auto& field : option_fields(o.bound)) {
    fields.push_back(field);
  }
  for (auto& field : option_fields(o.milp)) {
    fields.push_back(field);
  }
  return fields;
}

namespace {

bool is_attack_key(const std::string& key) {
  for (const char* prefix : {"pgd.", "deepfool.", "fmn.", "search.", "refine."}) {
    if (key.rfind(prefix, 0) == 0) {
      return true;
    }
  }
  return false;
}

// Keys that are not bound keys: they parse through the whole table.
bool is_harness_key(const std::string& key) {
  return is_attack_key(key) || key.rfind("milp.", 0) == 0;
}

}  // namespace

void set_option(MethodOptions& options, const std::string& key, const std::string& text) {
  std::vector<std::string> keys;
  for (auto& field : option_fields(options)) {
    keys.push_back(field.key);
  }
  if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
    throw Error(fmt::format("unknown method option '{}' (valid: {})", key, fmt::join(keys, ", ")));
  }
  if (!is_harness_key(key)) {
    set_option(options.bound, key, text);
    return;
  }
  // The attack and MILP keys parse like the bound keys: one parser for all.
  set_field(option_fields(options), key, text);
}

std::string option_text(const MethodOptions& options, const std::string& key) {
  if (!is_harness_key(key)) {
    return option_text(options.bound, key);
  }
  MethodOptions copy = options;
  return field_text(option_fields(copy), key);
}

void validate(const MethodOptions& o) {
  const auto& a = o.attack;
  BB_CHECK(a.pgd.steps >= 1, "--pgd.steps: must be at least 1, got {}", a.pgd.steps);
  BB_CHECK(
      std::isfinite(a.pgd.rel_stepsize) && a.pgd.rel_stepsize >= 0,
      "--pgd.rel_step: must be >= 0 and finite (0: the norm's default), got {}",
      a.pgd.rel_stepsize);
  parse_pgd_loss(a.pgd.loss, "--pgd.loss");
  BB_CHECK(a.pgd.restarts >= 1, "--pgd.restarts: must be at least 1, got {}", a.pgd.restarts);
  validate(a.fmn);
  BB_CHECK(
      std::isfinite(a.deepfool.overshoot) && a.deepfool.overshoot >= 0,
      "--deepfool.overshoot: must be >= 0 and finite, got {}",
      a.deepfool.overshoot);
  BB_CHECK(a.deepfool.max_iterations >= 1, "--deepfool.max_iter: must be at least 1, got {}",
           a.deepfool.max_iterations);
  BB_CHECK(
      a.deepfool.candidates == 0 || a.deepfool.candidates >= 2,
      "--deepfool.candidates: must be 0 (all) or at least 2, got {}",
      a.deepfool.candidates);
  BB_CHECK(
      std::isfinite(a.search.initial_epsilon) && a.search.initial_epsilon >= 0,
      "--search.eps0: must be >= 0 and finite (0: the norm's default), got {}",
      a.search.initial_epsilon);
  BB_CHECK(a.search.max_doublings >= 0, "--search.doublings: must not be negative, got {}", a.search.max_doublings);
  BB_CHECK(a.search.bisection_steps >= 0, "--search.bisect: must not be negative, got {}", a.search.bisection_steps);
  BB_CHECK(a.refine.steps >= 0, "--refine.steps: must not be negative, got {}", a.refine.steps);
  validate(o.bound);
  validate(o.milp);
}

const char* kind_name(MethodKind kind) {
  return kind == MethodKind::Attack ? "attack" : kind == MethodKind::Bound ? "bound" : "exact";
}

namespace {

nlohmann::json finite_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

// An attack: the minimal-distortion form, or (fixed_budget_ set) a
// fixed-budget attack at one budget, whose value is the distortion of the
// example it found (<= epsilon). NaN where it failed.
class AttackMethod : public Method {
 public:
  AttackMethod(const std::string& key, std::unique_ptr<MinimalAttack> attack)
      : Method(key), minimal_(std::move(attack)) {}
  AttackMethod(const std::string& key, std::unique_ptr<FixedBudgetAttack> attack, double epsilon)
      : Method(key), fixed_budget_(std::move(attack)), epsilon_(epsilon) {}
  std::string name() const override { return fixed_budget_ ? fixed_budget_->name() : minimal_->name(); }
  MethodKind kind() const override { return MethodKind::Attack; }
  bool certified() const override { return false; }
  MethodBatch run(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const MethodContext& context) const override {
    const AttackContext attack_context{context.seed, context.index};
    const AttackResult r = fixed_budget_
        ? fixed_budget_->run(model.classifier, x, c, torch::tensor(epsilon_, torch::kFloat64), attack_context)
        : minimal_->run(model.classifier, x, c, attack_context);
    MethodBatch batch;
    batch.success = r.success.cpu();
    batch.value = r.distance.cpu();
    batch.gradients = r.gradients.cpu();
    batch.seconds = r.seconds;
    batch.extra.assign(
        x.size(0), fixed_budget_ ? nlohmann::json{{"epsilon", epsilon_}} : nlohmann::json::object());
    return batch;
  }

 private:
  std::unique_ptr<MinimalAttack> minimal_;
  std::unique_ptr<FixedBudgetAttack> fixed_budget_;
  double epsilon_ = 0;
};

class BoundMethod : public Method {
 public:
  BoundMethod(const std::string& key, std::unique_ptr<Bound> bound, bool wants_starts)
      : Method(key), bound_(std::move(bound)), wants_starts_(wants_starts) {}
  std::string name() const override { return bound_->name(); }
  MethodKind kind() const override { return MethodKind::Bound; }
  bool certified() const override { return bound_->certified(); }
  void check(const Model& model) const override { bound_->check(model); }
  bool wants_starts() const override { return wants_starts_; }
  MethodBatch run(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const MethodContext& context) const override {
    BoundContext bound_context{context.seed, context.index, context.starts};
    BoundResult r = bound_->run(model, x, c, bound_context);
    MethodBatch batch;
    batch.value = r.value.cpu().to(torch::kFloat64);
    batch.success = torch::isfinite(batch.value);
    batch.gradients = r.gradients.cpu();
    batch.seconds = r.seconds;
    auto target = r.target.cpu();
    auto grad_norm = r.grad_norm.cpu();
    auto radius = r.radius.cpu();
    auto rejected = r.fit_rejected.defined() ? r.fit_rejected.cpu() : torch::Tensor();
    for (int64_t i = 0; i < x.size(0); ++i) {
      nlohmann::json extra{
          {"target", target[i].item<int64_t>()},
          {"grad_norm", finite_or_null(grad_norm[i].item<double>())},
          {"radius", finite_or_null(radius[i].item<double>())},
      };
      if (rejected.defined()) {
        extra["fit_rejected"] = rejected[i].item<bool>();
      }
      batch.extra.push_back(std::move(extra));
    }
    return batch;
  }

 private:
  std::unique_ptr<Bound> bound_;
  bool wants_starts_;
};

// The exact minimal distortion (bounds/exact_milp.h): a value where proven
// (success), and the bracket, the minimiser's class and the solver's figures
// for every sample. Its incumbent attacks use the attacks' random streams.
class ExactMethod : public Method {
 public:
  ExactMethod(const std::string& key, std::unique_ptr<ExactMilp> exact) : Method(key), exact_(std::move(exact)) {}
  std::string name() const override { return exact_->name(); }
  MethodKind kind() const override { return MethodKind::Exact; }
  bool certified() const override { return true; }
  void check(const Model& model) const override { exact_->check(model); }
  MethodBatch run(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const MethodContext& context) const override {
    const ExactResult r = exact_->run(model, x, c, AttackContext{context.seed, context.index});
    MethodBatch batch;
    batch.value = r.value.cpu().to(torch::kFloat64);
    batch.success = r.proven.cpu() & torch::isfinite(batch.value);
    batch.gradients = r.gradients.cpu();
    batch.seconds = r.seconds;
    for (int64_t i = 0; i < x.size(0); ++i) {
      nlohmann::json extra{
          {"proven", r.proven[i].item<bool>()},
          {"lower", finite_or_null(r.lower[i].item<double>())},
          {"upper", finite_or_null(r.upper[i].item<double>())},
          {"target", r.target[i].item<int64_t>()},
      };
      extra.update(r.details.at(i));
      batch.extra.push_back(std::move(extra));
    }
    return batch;
  }

 private:
  std::unique_ptr<ExactMilp> exact_;
};

}  // namespace

std::vector<std::string> method_names() {
  auto names = attack_names();
  for (const auto& name : bound_names()) {
    names.push_back(name);
  }
  names.push_back("exact-milp");
  return names;
}

bool is_attack(const std::string& name) {
  const auto attacks = attack_names();
  return std::find(attacks.begin(), attacks.end(), name) != attacks.end();
}

std::unique_ptr<Method> make_method(
    const std::string& name,
    Norm p,
    const MethodOptions& options,
    double fixed_epsilon) {
  const auto names = method_names();
  BB_CHECK(
      std::find(names.begin(), names.end(), name) != names.end(),
      "unknown method '{}' (valid: {})",
      name,
      fmt::join(names, ", "));
  validate(options);
  if (is_attack(name) && fixed_epsilon > 0) {
    return std::make_unique<AttackMethod>(name, make_fixed_budget_attack(name, p, options.attack), fixed_epsilon);
  }
  if (is_attack(name)) {
    return std::make_unique<AttackMethod>(name, make_attack(name, p, options.attack));
  }
  if (name == "exact-milp") {
    return std::make_unique<ExactMethod>(name, std::make_unique<ExactMilp>(p, options.milp, options.attack));
  }
  const bool starts = name == "theorem1-sampled" && options.bound.sampled.domain_starts > 0;
  return std::make_unique<BoundMethod>(name, make_bound(name, p, options.bound), starts);
}

}  // namespace bb
