#include "attacks/fmn.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "attacks/budget_search.h"
#include "attacks/pgd.h"
#include "core/error.h"
#include "core/row_kernels.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Guards the division by a zero gradient norm in the boundary estimate.
constexpr double kTiny = 1e-12;
// How far beyond its closest adversarial point (relative to its distance
// from x) FMN returns its example.
constexpr double kBeyond = 1e-3;

// The cosine schedule from `first` (step 0) to `last` (step `steps`).
double annealed(double first, double last, int step, int steps) {
  const double cosine = (1 + std::cos(M_PI * step / steps)) / 2;
  return last + (first - last) * cosine;
}

// What the projections onto B_p(x, epsilon) ∩ D need of x besides x: on
// the CPU under L1, its room in D, l = lo - x and u = hi - x, flattened
// (the same at every step).
struct Room {
  torch::Tensor lower;
  torch::Tensor upper;
  static Room of(const torch::Tensor& x, Box box, Norm p) {
    if (p != Norm::L1 || !detail::use_row_kernels(x)) {
      return {};
    }
    auto flat = x.detach().flatten(1);
    return {box.lo - flat, box.hi - flat};
  }
};

// project_ball_box(x, z, epsilon, p, box) for z already in D, in fewer
// passes over the rows: under Linf the offset z - x clamped to
// [-epsilon, epsilon] (the result lies between x and z, so in D, up to
// rounding); under L1 on the CPU the row solver with D's room computed once.
// Elsewhere project_ball_box itself.
torch::Tensor project(
    const torch::Tensor& x,
    const torch::Tensor& z,
    const torch::Tensor& epsilon,
    Norm p,
    Box box,
    const Room& room) {
  if (p == Norm::Linf) {
    auto radius = per_sample(epsilon.to(x.scalar_type()), x);
    return (x + torch::clamp(z - x, -radius, radius)).clamp_(box.lo, box.hi);
  }
  if (p == Norm::L1 && room.lower.defined()) {
    auto w = (z - x).flatten(1);
    auto radius = epsilon.to(w.scalar_type()).view({-1, 1});
    auto offset = detail::project_offset_cpu(w, room.lower, room.upper, radius, Norm::L1);
    return (x + offset.view_as(x)).clamp_(box.lo, box.hi);
  }
  return project_ball_box(x, z, epsilon, p, box);
}

}  // namespace

int64_t fmn_targeted_runs(const std::string& targets, int64_t k) {
  if (targets == "untargeted") {
    return 0;
  }
  if (targets == "all") {
    return k - 1;
  }
  size_t used = 0;
  int m = 0;
  try {
    m = std::stoi(targets, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  BB_CHECK(
      used > 0 && used == targets.size() && m >= 1,
      "--fmn.targets: expected untargeted, all or a number of classes >= 1, got '{}'",
      targets);
  return std::min<int64_t>(m, k - 1);
}

double fmn_start_radius(const FmnOptions& options, Norm p) {
  if (options.start_radius >= 0) {
    return options.start_radius;
  }
  return default_initial_epsilon(p);
}

void validate(const FmnOptions& o) {
  BB_CHECK(o.steps >= 1, "--fmn.steps: must be at least 1, got {}", o.steps);
  BB_CHECK(std::isfinite(o.alpha) && o.alpha > 0, "--fmn.alpha: must be positive and finite, got {}", o.alpha);
  BB_CHECK(
      std::isfinite(o.alpha_final) && o.alpha_final > 0,
      "--fmn.alpha_final: must be positive and finite, got {}",
      o.alpha_final);
  BB_CHECK(o.gamma > 0 && o.gamma < 1, "--fmn.gamma: must lie in (0, 1), got {}", o.gamma);
  BB_CHECK(o.gamma_final > 0 && o.gamma_final < 1, "--fmn.gamma_final: must lie in (0, 1), got {}", o.gamma_final);
  BB_CHECK(std::isfinite(o.start_radius), "--fmn.start_radius: must be finite, got {}", o.start_radius);
  BB_CHECK(o.restarts >= 1, "--fmn.restarts: must be at least 1, got {}", o.restarts);
  fmn_targeted_runs(o.targets, 2);
}

Fmn::Run Fmn::descend(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    const torch::Tensor& start) const {
  const Box box = model.spec().domain;
  const Norm p = norm();
  const int64_t n = x.size(0);
  auto options = torch::TensorOptions().dtype(torch::kFloat64).device(x.device());
  auto unbounded = torch::full({n}, kInf, options);
  // The farthest point of D from x: epsilon never needs to exceed it.
  auto farthest = lp_norm(torch::maximum(x - box.lo, box.hi - x).to(torch::kFloat64), p);
  auto epsilon = unbounded;
  auto best = x.detach();
  auto best_norm = unbounded;
  auto found = torch::zeros({n}, options.dtype(torch::kBool));
  auto z = start.detach();
  const Room room = Room::of(x, box, p);
  for (int k = 0; k < options_.steps; ++k) {
    const double alpha = annealed(options_.alpha, options_.alpha_final, k, options_.steps) * (box.hi - box.lo);
    const double gamma = annealed(options_.gamma, options_.gamma_final, k, options_.steps);
    const auto at = targets.defined() ? target_margin_gradient(model, z, c, targets) : margin_loss_gradient(model, z, c);
    const auto& adversarial = at.misclassified;
    auto distance = lp_norm(z - x, p).to(torch::kFloat64);
    auto closer = adversarial & (distance < best_norm);
    best = torch::where(per_sample(closer, z), z, best);
    best_norm = torch::where(closer, distance, best_norm);
    found = found | adversarial;
    // Where no adversarial point is known yet: the boundary of the margin
    // linearised at z, grown by (1 + gamma): an exact estimate (a linear
    // model) would otherwise put z on the boundary itself, a tie, again and
    // again.
    auto slope = lp_norm(at.grad, dual(p)).to(torch::kFloat64).clamp_min(kTiny);
    auto boundary = (distance + at.value.to(torch::kFloat64).abs() / slope) * (1 + gamma);
    epsilon = torch::where(
        adversarial,
        torch::minimum(epsilon * (1 - gamma), best_norm),
        torch::where(found, epsilon * (1 + gamma), boundary));
    epsilon = torch::minimum(epsilon, farthest);
    auto step = torch::full({n}, alpha, options);
    if (p == Norm::L2) {
      // Step and projection onto the ball ∩ D in one fused pass.
      z = ascent_step(x, z, at.grad, epsilon, step, Norm::L2, box);
    } else {
      // The step inside D (one fused pass), then onto the ball ∩ D.
      z = project(x, ascent_step(x, z, at.grad, unbounded, step, Norm::L2, box), epsilon, p, box, room);
    }
  }
  Run run;
  run.example = torch::where(per_sample(found, x), best, z);
  run.distance = best_norm;
  return run;
}

Fmn::Fmn(Norm p, FmnOptions options, RefineOptions refine) : MinimalAttack(p, refine), options_(options) {
  validate(options_);
  options_.start_radius = fmn_start_radius(options_, p);
}

std::string Fmn::name() const {
  return fmt::format(
      "fmn-{}(steps={},alpha={:g},alpha_final={:g},gamma={:g},gamma_final={:g},targets={},start={:g},restarts={}){}",
      norm_name(norm()),
      options_.steps,
      options_.alpha,
      options_.alpha_final,
      options_.gamma,
      options_.gamma_final,
      options_.targets,
      options_.start_radius,
      options_.restarts,
      refine_suffix());
}

torch::Tensor Fmn::search(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    RandomStreams& streams,
    torch::Tensor& gradients) const {
  const int64_t n = x.size(0);
  const int64_t m = fmn_targeted_runs(options_.targets, model.num_classes());
  const Box box = model.spec().domain;
  const int64_t per_restart = std::max<int64_t>(m, 1);  // runs per start: one per target
  torch::Tensor ranked;  // [n, m]: the targets, highest logit first
  if (m > 0) {
    torch::NoGradGuard no_grad;
    auto logits = model.logits(x).scatter(1, c.view({-1, 1}), -std::numeric_limits<float>::infinity());
    ranked = std::get<1>(logits.topk(m, /*dim=*/1));
  }
  // Every run from starts [n, k, ...] batched (the batch replicated: row
  // i k + s is sample i from its start s, against target s mod m), then the
  // closest example per sample (the first run where none was found).
  auto closest_of = [&](const torch::Tensor& starts, int64_t k) {
    torch::Tensor targets;
    if (m > 0) {
      targets = ranked.repeat({1, k / per_restart}).reshape({n * k});
    }
    Run all = descend(model, x.repeat_interleave(k, 0), c.repeat_interleave(k), targets, starts.flatten(0, 1));
    gradients += options_.steps * k;
    auto closest = all.distance.view({n, k}).argmin(1);
    auto rows = torch::arange(n, closest.options()) * k + closest;
    return Run{all.example.index_select(0, rows), all.distance.index_select(0, rows)};
  };
  // The first runs start at x, or (fmn.start_radius > 0) at draws 0 ... m' - 1
  // of the sample's stream in B_p(x, start_radius) ∩ D.
  torch::Tensor first;
  if (options_.start_radius > 0) {
    auto radius = torch::full({n}, options_.start_radius, x.options());
    first = sample_ball(x, radius, norm(), per_restart, streams).clamp(box.lo, box.hi);
  } else {
    auto shape = x.sizes().vec();
    shape.insert(shape.begin() + 1, per_restart);
    first = x.unsqueeze(1).expand(shape);
  }
  Run run = closest_of(first, per_restart);
  if (options_.restarts > 1) {
    // The restarts start at the next draws, uniform in B_p(x, d) ∩ D with d
    // the distance the first runs found (the norm's first budget where they
    // found none): a scale that fits each sample in every norm.
    auto found = torch::isfinite(run.distance);
    auto radius = torch::where(found, run.distance, torch::full_like(run.distance, default_initial_epsilon(norm())))
                      .to(x.scalar_type());
    const int64_t k = per_restart * (options_.restarts - 1);
    Run more = closest_of(sample_ball(x, radius, norm(), k, streams).clamp(box.lo, box.hi), k);
    auto better = more.distance < run.distance;
    run.example = torch::where(per_sample(better, x), more.example, run.example);
    run.distance = torch::where(better, more.distance, run.distance);
  }
  // FMN ends within float rounding of the boundary, where the logits of the
  // same point in another batch (the re-check, the refinement) can fall on
  // the other side. The example goes a little further along its segment
  // from x (kBeyond of its length) where that is still misclassified; the
  // refinement then bisects that segment back to the boundary. One forward pass.
  auto found = torch::isfinite(run.distance);
  auto beyond = (x + (1 + kBeyond) * (run.example - x)).clamp(box.lo, box.hi);
  auto use = found & model.misclassified(beyond, c);
  return torch::where(per_sample(use, x), beyond, run.example);
}

}  // namespace bb
