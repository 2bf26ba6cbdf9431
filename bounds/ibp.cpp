// Interval bound propagation: the region's interval hull pushed forward layer
// by layer in float64 (see bounds/preactivation.h).
#include <cmath>

#include <torch/torch.h>

#include "bounds/preactivation.h"
#include "core/error.h"

namespace bb {
namespace {

// [1, C, 1, ...] (or all ones for a single scale) so that a per-channel
// vector broadcasts against a batch shaped like `x`.
torch::Tensor channel_view(const torch::Tensor& v, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  if (v.numel() > 1) {
    shape[1] = v.numel();
  }
  return v.reshape(shape);
}

// Softplus as the real function log(1 + exp(beta z)) / beta, stable for any z.
torch::Tensor softplus_exact(const torch::Tensor& z, double beta) {
  auto bz = z * beta;
  return (bz.clamp_min(0) + torch::log1p(torch::exp(-bz.abs()))) / beta;
}

}  // namespace

namespace detail {

std::pair<torch::Tensor, torch::Tensor> interval_forward(
    const Layer& layer, const torch::Tensor& lower, const torch::Tensor& upper) {
  namespace F = torch::nn::functional;
  const auto options = lower.options();
  auto as64 = [&](const torch::Tensor& t) { return t.defined() ? t.to(options) : t; };
  switch (layer.kind) {
    case LayerKind::ChannelAffine:
    case LayerKind::Linear:
    case LayerKind::Conv2d: {
      // Centre/radius form: the centre goes through the affine map, the
      // radius through |W| (no bias), so each output is bounded by the
      // exact range of its own affine function over the input box.
      auto mid = (lower + upper) / 2;
      auto rad = (upper - lower) / 2;
      auto weight = as64(layer.weight);
      auto bias = as64(layer.bias);
      if (layer.kind == LayerKind::ChannelAffine) {
        mid = mid * channel_view(weight, mid);
        if (bias.defined()) {
          mid = mid + channel_view(bias, mid);
        }
        rad = rad * channel_view(weight.abs(), rad);
      } else if (layer.kind == LayerKind::Linear) {
        mid = F::linear(mid, weight, bias);
        rad = F::linear(rad, weight.abs());
      } else {
        auto options = F::Conv2dFuncOptions().stride(layer.stride).padding(layer.padding);
        mid = F::conv2d(mid, weight, options.bias(bias));
        rad = F::conv2d(rad, weight.abs(), F::Conv2dFuncOptions().stride(layer.stride).padding(layer.padding));
      }
      return {mid - rad, mid + rad};
    }
    case LayerKind::Flatten:
      return {lower.flatten(1), upper.flatten(1)};
    case LayerKind::ReLU:
      return {torch::relu(lower), torch::relu(upper)};
    case LayerKind::Tanh:
      return {torch::tanh(lower), torch::tanh(upper)};
    case LayerKind::Softplus: {
      // Monotone, so the endpoints map to the endpoints. torch returns z
      // itself where beta z > 20, below the real softplus by at most
      // log1p(exp(-20)) / beta (about 2e-9 / beta): the lower end drops by
      // that where the interval reaches past the threshold, so that the
      // interval holds what the layer really computes.
      const double gap = std::log1p(std::exp(-20.0)) / layer.beta;
      auto low = softplus_exact(lower, layer.beta) - gap * (upper * layer.beta > 20).to(options);
      return {low, softplus_exact(upper, layer.beta)};
    }
  }
  BB_ASSERT(false, "unhandled layer kind {}", static_cast<int>(layer.kind));
}

}  // namespace detail

PreActivationBounds ibp_bounds(const LayerList& layers, const Region& region) {
  torch::NoGradGuard no_grad;
  // The hull in float64 from the float64 centre and radius: computed in a
  // float32 centre's own precision it could round inward.
  auto x = region.center().to(torch::kFloat64);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto r = region.radius().to(x.options()).view(shape);
  auto lower = (x - r).clamp_min(region.box().lo);
  auto upper = (x + r).clamp_max(region.box().hi);
  PreActivationBounds bounds;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (is_activation(layers[i].kind)) {
      bounds.layer.push_back(static_cast<int64_t>(i));
      bounds.lower.push_back(lower);
      bounds.upper.push_back(upper);
    }
    std::tie(lower, upper) = detail::interval_forward(layers[i], lower, upper);
  }
  return bounds;
}

}  // namespace bb
