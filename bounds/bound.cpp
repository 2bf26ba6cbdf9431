#include "bounds/bound.h"

#include <limits>

#include <torch/torch.h>

#include "bounds/formulas.h"
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

torch::Tensor target_margins(
    const Classifier& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& targets) {
  return model.margins(x, c).gather(1, targets).to(torch::kFloat64);
}

}  // namespace bb
