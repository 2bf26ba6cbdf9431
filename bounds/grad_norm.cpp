#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "bounds/sources.h"

namespace bb {
namespace {

// Input elements of one margin_gradients call (rows x classes x coordinates):
// 2^22 keeps the gradients at 16 MB in float32 and the CIFAR-10 network's
// activations of one call under about 600 MB.
constexpr int64_t kMaxGradientElements = int64_t{1} << 22;

}  // namespace

torch::Tensor gradient_norms(
    const Classifier& model,
    const torch::Tensor& points,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    Norm q) {
  const int64_t n = points.size(0);
  const int64_t per_sample = points.size(1);
  const int64_t m = targets.size(1);
  std::vector<int64_t> flat_shape{n * per_sample};
  flat_shape.insert(flat_shape.end(), points.sizes().begin() + 2, points.sizes().end());
  auto rows = points.reshape(flat_shape);
  auto row_c = c.repeat_interleave(per_sample);
  auto row_targets = targets.repeat_interleave(per_sample, 0);
  const int64_t d = std::max<int64_t>(1, rows.numel() / std::max<int64_t>(1, rows.size(0)));
  const int64_t chunk = std::max<int64_t>(1, kMaxGradientElements / (m * d));
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < rows.size(0); start += chunk) {
    const int64_t end = std::min(rows.size(0), start + chunk);
    auto grads = model.margin_gradients(
                          rows.slice(0, start, end), row_c.slice(0, start, end),
                          row_targets.slice(0, start, end))
                     .grads;  // [rows, m, ...]
    const int64_t r = end - start;
    parts.push_back(lp_norm(grads.reshape({r * m, -1}).to(torch::kFloat64), q).view({r, m}));
  }
  return torch::cat(parts).view({n, per_sample, m});
}

bool piecewise_linear(const Model& model) {
  if (!model.layers) {
    return false;
  }
  bool any_smooth = false;
  for (const auto& layer : *model.layers) {
    any_smooth = any_smooth || layer.kind == LayerKind::Softplus || layer.kind == LayerKind::Tanh;
  }
  return !any_smooth;
}

torch::Tensor other_classes(const torch::Tensor& c, int64_t num_classes) {
  auto all = torch::arange(num_classes - 1, c.options()).unsqueeze(0).expand({c.size(0), num_classes - 1});
  // j for j < c, j + 1 from c on: every class but c, in order.
  return all + (all >= c.unsqueeze(1)).to(c.scalar_type());
}

double domain_diameter(Box box, Norm p, int64_t d) {
  const double width = box.hi - box.lo;
  switch (p) {
    case Norm::L1:
      return width * static_cast<double>(d);
    case Norm::L2:
      return width * std::sqrt(static_cast<double>(d));
    case Norm::Linf:
      return width;
  }
  return width;
}

}  // namespace bb
