#include "core/classifier.h"

#include <limits>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

std::string non_finite_message(
    const std::string& what,
    const std::string& model,
    int64_t sample,
    const std::string& where) {
  return fmt::format(
      "{}: model '{}' returned NaN or infinite logits for sample {}{}", what, model, sample, where);
}

}  // namespace

NonFiniteLogits::NonFiniteLogits(std::string what, std::string model, int64_t sample, std::string where)
    : Error(non_finite_message(what, model, sample, where)),
      what_(std::move(what)),
      model_(std::move(model)),
      sample_(sample),
      where_(std::move(where)) {}

NonFiniteLogits NonFiniteLogits::renumbered(int64_t first, const std::string& what) const {
  return NonFiniteLogits(what, model_, first + sample_, where_);
}

Classifier::Classifier(
    Forward forward,
    InputSpec spec,
    torch::Device device,
    std::string name)
    : forward_(std::move(forward)),
      spec_(std::move(spec)),
      device_(device),
      name_(std::move(name)) {
  BB_ASSERT(spec_.num_classes >= 2, "a classifier needs at least two classes");
  BB_ASSERT(!spec_.shape.empty(), "a classifier needs an input shape");
}

void Classifier::check_input(const torch::Tensor& x, const std::string& what) const {
  std::vector<int64_t> expected{-1};
  expected.insert(expected.end(), spec_.shape.begin(), spec_.shape.end());
  bool fits = x.defined() && x.dim() == static_cast<int64_t>(expected.size());
  for (size_t i = 1; fits && i < expected.size(); ++i) {
    fits = x.size(static_cast<int64_t>(i)) == expected[i];
  }
  BB_CHECK(
      fits,
      "{}: input shape {} does not fit model '{}', which expects [N, {}]",
      what,
      x.defined() ? fmt::format("{}", x.sizes()) : std::string("(none)"),
      name_,
      fmt::join(spec_.shape, ", "));
  BB_CHECK(
      x.is_floating_point(),
      "{}: inputs must be floating point, found {}",
      what,
      std::string(c10::toString(x.scalar_type())));
}

void Classifier::check_logits_shape(
    const torch::Tensor& logits,
    int64_t n,
    const std::string& what) const {
  BB_CHECK(
      logits.dim() == 2 && logits.size(0) == n && logits.size(1) == spec_.num_classes,
      "{}: model '{}' returned logits of shape {}, expected [{}, {}]",
      what,
      name_,
      logits.sizes(),
      n,
      spec_.num_classes);
}

void Classifier::check_finite(
    const torch::Tensor& logits,
    const std::string& what,
    int64_t first_index,
    const std::string& where) const {
  BB_ASSERT(logits.dim() == 2, "check_finite takes logits [N, k]");
  auto bad = ~torch::isfinite(logits.detach()).all(1);
  if (bad.any().item<bool>()) {
    const int64_t first_bad = bad.nonzero()[0][0].item<int64_t>();
    throw NonFiniteLogits(what, name_, first_index + first_bad, where);
  }
}

torch::Tensor Classifier::checked_logits(
    const torch::Tensor& x,
    const std::string& what,
    int64_t first_index) const {
  auto out = logits(x);
  check_logits_shape(out, x.size(0), what);
  check_finite(out, what, first_index);
  return out;
}

void Classifier::check_logits(const torch::Tensor& x, const std::string& what) const {
  checked_logits(x, what);
}

torch::Tensor Classifier::logits(const torch::Tensor& x) const {
  torch::NoGradGuard no_grad;
  return forward_(x);
}

torch::Tensor Classifier::logits_with_grad(const torch::Tensor& x) const {
  auto out = forward_(x);
  BB_CHECK(
      out.requires_grad() || !x.requires_grad() || !torch::GradMode::is_enabled(),
      "model '{}': its logits carry no gradient (detached, or computed under no_grad); "
      "attacks need the gradient with respect to the input",
      name_);
  return out;
}

torch::Tensor Classifier::predict(const torch::Tensor& x) const {
  return logits(x).argmax(1);
}

torch::Tensor misclassified_logits(const torch::Tensor& logits, const torch::Tensor& c) {
  auto column = c.view({-1, 1});
  auto own = logits.gather(1, column).squeeze(1);
  auto others = logits.scatter(1, column, -std::numeric_limits<double>::infinity());
  return others.amax(1) > own;
}

torch::Tensor Classifier::misclassified(const torch::Tensor& x, const torch::Tensor& c) const {
  return misclassified_logits(logits(x), c);
}

torch::Tensor Classifier::margins(const torch::Tensor& x, const torch::Tensor& c) const {
  auto out = logits(x);
  return out.gather(1, c.view({-1, 1})) - out;
}

MarginGradients Classifier::margin_gradients(
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    bool create_graph) const {
  torch::AutoGradMode grad_mode(/*enabled=*/true);
  const int64_t n = x.size(0);
  auto classes = targets.defined()
      ? targets
      : torch::arange(spec_.num_classes, c.options()).expand({n, spec_.num_classes});
  const int64_t m = classes.size(1);
  BB_ASSERT(classes.size(0) == n, "targets must have one row per sample");

  // m replicas of the batch, replica i differentiated for its class. With
  // create_graph the replicas stay a function of x, and the gradients, taken
  // with respect to the replicas, stay differentiable in x.
  std::vector<int64_t> expanded{m};
  expanded.insert(expanded.end(), x.sizes().begin(), x.sizes().end());
  std::vector<int64_t> replicated{m * n};
  replicated.insert(replicated.end(), x.sizes().begin() + 1, x.sizes().end());
  auto xr = (create_graph ? x : x.detach()).unsqueeze(0).expand(expanded).reshape(replicated);
  if (!xr.requires_grad()) {
    xr = xr.clone().requires_grad_(true);
  }
  auto out = logits_with_grad(xr).view({m, n, -1});
  auto fc = out.gather(2, c.view({1, n, 1}).expand({m, n, 1}));
  auto fj = out.gather(2, classes.t().reshape({m, n, 1}));
  auto g = (fc - fj).squeeze(2);  // [m, n]
  auto grad = torch::autograd::grad(
      {g.sum()}, {xr}, {}, /*retain_graph=*/create_graph,
      /*create_graph=*/create_graph)[0];
  MarginGradients result;
  result.values = (create_graph ? g : g.detach()).t();
  std::vector<int64_t> per_class{m, n};
  per_class.insert(per_class.end(), x.sizes().begin() + 1, x.sizes().end());
  result.grads = grad.view(per_class).transpose(0, 1);
  return result;
}

}  // namespace bb
