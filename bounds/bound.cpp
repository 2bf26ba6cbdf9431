#include "bounds/bound.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/sources.h"
#include "core/error.h"
#include "core/runtime.h"

namespace bb {

BoundResult Bound::run(
    const Model& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const BoundContext& context) const {
  const Classifier& classifier = model.classifier;
  classifier.check_input(x, "bound inputs");
  const Box box = classifier.spec().domain;
  if (x.numel() > 0) {
    const double lowest = x.min().item<double>();
    const double highest = x.max().item<double>();
    BB_CHECK(
        lowest >= box.lo && highest <= box.hi,
        "bound inputs: values in [{}, {}] lie outside the domain D = [{}, {}]",
        lowest, highest, box.lo, box.hi);
  }
  BB_CHECK(
      c.dim() == 1 && c.size(0) == x.size(0),
      "bound inputs: {} predicted classes for {} samples",
      c.numel(),
      x.size(0));
  BoundContext ctx = context;
  if (!ctx.index.defined()) {
    ctx.index = torch::arange(x.size(0), c.options().dtype(torch::kInt64));
  }
  BB_CHECK(
      ctx.index.numel() == x.size(0),
      "bound inputs: {} sample indices for {} samples",
      ctx.index.numel(),
      x.size(0));
  check(model);
  Stopwatch watch(classifier.device());
  BoundResult result = compute(model, x, c, ctx);
  result.certified = certified();
  result.seconds = watch.seconds();
  return result;
}

MinRatio min_ratio(const torch::Tensor& g, const torch::Tensor& grad_norm, const torch::Tensor& targets) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto ratio = torch::where(grad_norm > 0, g / grad_norm, torch::full_like(g, kInf));
  ratio = torch::where(g <= 0, torch::zeros_like(g), ratio);
  auto [value, at] = ratio.min(1);
  MinRatio result;
  result.value = value;
  result.target = targets.gather(1, at.unsqueeze(1)).squeeze(1);
  result.grad_norm = grad_norm.gather(1, at.unsqueeze(1)).squeeze(1);
  return result;
}

std::string SourcedBound::describe(const std::vector<std::string>& keys) const {
  return keys.empty() ? fmt::format("{}-{}+{}", label_, norm_name(norm()), source_->name())
                      : fmt::format("{}-{}({})+{}", label_, norm_name(norm()), describe_options(options_, keys),
                                    source_->name());
}

GradNormResult SourcedBound::estimate(
    const Model& model,
    const Region& region,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    RandomStreams* random,
    const torch::Tensor& starts,
    const torch::Tensor& room_radius) const {
  GradNormRequest request;
  request.model = &model;
  request.region = &region;
  request.c = c;
  request.targets = targets;
  request.random = random;
  request.starts = starts;
  request.room_radius = room_radius;
  return source_->estimate(request);
}

Linearised linearise(const Classifier& model, const torch::Tensor& x, const torch::Tensor& c, Norm p) {
  Linearised l;
  l.targets = other_classes(c, model.num_classes());
  const int64_t n = x.size(0);
  const int64_t m = l.targets.size(1);
  auto at_x = model.margin_gradients(x, c, l.targets);
  l.g = at_x.values.to(torch::kFloat64);
  l.slope = lp_norm(at_x.grads.reshape({n * m, -1}).to(torch::kFloat64), dual(p)).view({n, m});
  const double diameter = domain_diameter(model.spec().domain, p, x[0].numel());
  auto r0 = min_ratio(l.g, l.slope, l.targets).value.clamp_max(diameter);
  l.r0 = torch::where(r0 > 0, r0, torch::full_like(r0, diameter));
  return l;
}

void search_log_radius(
    const torch::Tensor& r0,
    int octaves,
    int steps,
    const std::function<torch::Tensor(const torch::Tensor&)>& feasible) {
  feasible(r0);
  auto hi = r0.log();
  auto lo = hi - octaves * std::log(2.0);
  for (int step = 0; step < steps; ++step) {
    auto mid = (lo + hi) / 2;
    auto shown = feasible(mid.exp());
    lo = torch::where(shown, mid, lo);
    hi = torch::where(shown, hi, mid);
  }
}

void BestSoFar::offer(
    const torch::Tensor& value,
    const torch::Tensor& target,
    const torch::Tensor& grad_norm,
    const torch::Tensor& radius) {
  if (!result.value.defined()) {
    result.value = value;
    result.target = target;
    result.grad_norm = grad_norm;
    result.radius = radius;
    return;
  }
  auto better = value > result.value;
  result.value = torch::where(better, value, result.value);
  result.target = torch::where(better, target, result.target);
  result.grad_norm = torch::where(better, grad_norm, result.grad_norm);
  result.radius = torch::where(better, radius, result.radius);
}

torch::Tensor target_margins(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& targets) {
  return model.margins(x, c).gather(1, targets).to(torch::kFloat64);
}

}  // namespace bb
