#include "bounds/operator_norm.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

namespace F = torch::nn::functional;

// Outward factor for an SVD's largest singular value (see the header).
constexpr double kSpectralSlack = 1e-9;

// Outward factor for a float64 sum of `terms` non-negative numbers: the
// worst-case relative rounding error of recursive summation is below
// terms * 2^-53; one ulp of 1.0 (2^-52) per term covers it.
double sum_slack(int64_t terms) {
  return 1.0 + static_cast<double>(terms + 1) * std::ldexp(1.0, -52);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("{}", fmt::join(shape, "x"));
}

// ||W||_{p->p} of a dense matrix W [out, in] acting on columns.
LayerNormBound dense_norm(const torch::Tensor& weight, Norm p) {
  auto w = weight.to(torch::kFloat64);
  switch (p) {
    case Norm::Linf:
      return {w.abs().sum(1).max().item<double>() * sum_slack(w.size(1)),
              "max absolute row sum (exact)"};
    case Norm::L1:
      return {w.abs().sum(0).max().item<double>() * sum_slack(w.size(0)),
              "max absolute column sum (exact)"};
    case Norm::L2:
      return {torch::linalg::svdvals(w, c10::nullopt).max().item<double>() * (1 + kSpectralSlack),
              "largest singular value (float64 SVD, x(1+1e-9))"};
  }
  BB_ASSERT(false, "unhandled norm");
}

// The output_padding that makes conv_transpose2d return `in` rows when the
// convolution maps `in` rows to `out`.
int64_t output_padding(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return in - ((out - 1) * stride - 2 * padding + kernel);
}

LayerNormBound conv_norm(const Layer& layer, const std::vector<int64_t>& input_shape, Norm p) {
  BB_CHECK(
      input_shape.size() == 3,
      "{}: needs an input of shape [C, H, W], got [{}]",
      layer.describe(),
      fmt::join(input_shape, ", "));
  auto kernel = layer.weight.to(torch::kFloat64);
  const int64_t c_out = kernel.size(0);
  const int64_t c_in = kernel.size(1);
  const int64_t kh = kernel.size(2);
  const int64_t kw = kernel.size(3);
  const int64_t h = input_shape[1];
  const int64_t w = input_shape[2];
  const auto& s = layer.stride;
  const auto& pad = layer.padding;
  auto options = kernel.options();
  if (p == Norm::Linf || p == Norm::L1) {
    // Row sums of |matrix| = |K| applied to ones; column sums = its transpose
    // applied to ones. Both on the actual shape, so borders count exactly.
    auto magnitude = kernel.abs();
    auto ones = torch::ones({1, c_in, h, w}, options);
    auto rows = F::conv2d(ones, magnitude, F::Conv2dFuncOptions().stride(s).padding(pad));
    if (p == Norm::Linf) {
      return {rows.max().item<double>() * sum_slack(c_in * kh * kw),
              fmt::format("max absolute row sum on {}x{}x{} (exact)", c_in, h, w)};
    }
    const int64_t ho = rows.size(2);
    const int64_t wo = rows.size(3);
    auto columns = F::conv_transpose2d(
        torch::ones({1, c_out, ho, wo}, options),
        magnitude,
        F::ConvTranspose2dFuncOptions()
            .stride(s)
            .padding(pad)
            .output_padding({output_padding(h, ho, kh, s[0], pad[0]),
                             output_padding(w, wo, kw, s[1], pad[1])}));
    return {columns.max().item<double>() * sum_slack(c_out * kh * kw),
            fmt::format("max absolute column sum on {}x{}x{} (exact)", c_in, h, w)};
  }
  // Circular grid: reads of the zero-padded convolution reach rows -pad ..
  // H + pad - 1 and it has H + 2 pad - kh + 1 outputs; a grid of M rows holds
  // both without wrap-around onto data when M >= H + pad and M >= that
  // output count. H + kh - 1 does whenever pad <= kh - 1.
  const int64_t mh = h + std::max({kh - 1, pad[0], 2 * pad[0] - kh + 1});
  const int64_t mw = w + std::max({kw - 1, pad[1], 2 * pad[1] - kw + 1});
  // Real kernel: the frequencies -v are the conjugates of v (same singular
  // values), so the half spectrum of rfft2 holds every distinct one.
  auto spectrum = torch::fft::rfft2(kernel, std::vector<int64_t>{mh, mw}, {2, 3});
  auto matrices = spectrum.permute({2, 3, 0, 1}).reshape({-1, c_out, c_in});
  const double sigma = torch::linalg::svdvals(matrices, c10::nullopt).max().item<double>();
  return {sigma * (1 + kSpectralSlack),
          fmt::format(
              "circular-convolution FFT bound, grid {}x{}, {} frequency matrices {}x{} "
              "(float64 SVD, x(1+1e-9))",
              mh, mw, matrices.size(0), c_out, c_in)};
}

}  // namespace

std::vector<std::vector<int64_t>> layer_input_shapes(
    const LayerList& layers,
    const std::vector<int64_t>& input_shape) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> batch_shape{1};
  batch_shape.insert(batch_shape.end(), input_shape.begin(), input_shape.end());
  auto options = torch::TensorOptions().dtype(torch::kFloat32);
  for (const auto& layer : layers) {
    if (layer.weight.defined()) {
      options = layer.weight.options();
      break;
    }
  }
  auto h = torch::zeros(batch_shape, options);
  for (size_t i = 0; i < layers.size(); ++i) {
    shapes.emplace_back(h.sizes().begin() + 1, h.sizes().end());
    try {
      h = layers[i].forward(h);
    } catch (const c10::Error& e) {
      BB_CHECK(
          false,
          "layer {} ({}) cannot take an input of shape [{}]",
          i,
          layers[i].describe(),
          fmt::join(shapes.back(), ", "));
    }
  }
  shapes.emplace_back(h.sizes().begin() + 1, h.sizes().end());
  return shapes;
}

LayerNormBound layer_operator_norm(
    const Layer& layer,
    const std::vector<int64_t>& input_shape,
    Norm p) {
  switch (layer.kind) {
    case LayerKind::Linear:
      return dense_norm(layer.weight, p);
    case LayerKind::Conv2d:
      return conv_norm(layer, input_shape, p);
    case LayerKind::ChannelAffine:
      return {layer.weight.to(torch::kFloat64).abs().max().item<double>(), "max |scale| (exact)"};
    case LayerKind::Flatten:
      return {1.0, "reshape (exact)"};
    case LayerKind::ReLU:
    case LayerKind::Softplus:
    case LayerKind::Tanh:
      return {1.0, "max |derivative|"};
  }
  BB_ASSERT(false, "unhandled layer kind {}", static_cast<int>(layer.kind));
}

torch::Tensor global_lipschitz(
    const LayerList& layers,
    const std::vector<int64_t>& input_shape,
    Norm p,
    std::vector<std::string>* report) {
  BB_CHECK(
      !layers.empty() && layers.back().kind == LayerKind::Linear,
      "global Lipschitz constant: the layer chain must end with a Linear layer (the classes), "
      "it ends with {}",
      layers.empty() ? std::string("nothing") : layers.back().describe());
  const auto shapes = layer_input_shapes(layers, input_shape);
  const Norm q = dual(p);
  double product = 1.0;
  for (size_t i = 0; i + 1 < layers.size(); ++i) {
    const auto bound = layer_operator_norm(layers[i], shapes[i], p);
    product *= bound.value;
    if (report != nullptr) {
      report->push_back(fmt::format(
          "layer {} {} on {}: {} = {:.6g}", i, layers[i].describe(), shape_text(shapes[i]),
          bound.method, bound.value));
    }
  }
  // Each product rounds once: one ulp per factor.
  product *= sum_slack(static_cast<int64_t>(layers.size()));
  // ||w_c - w_j||_q for every pair, from the last layer's rows.
  auto w = layers.back().weight.to(torch::kFloat64);
  const int64_t k = w.size(0);
  auto difference = (w.unsqueeze(1) - w.unsqueeze(0)).reshape({k * k, w.size(1)});
  auto rows = lp_norm(difference, q).view({k, k}) * sum_slack(w.size(1));
  if (report != nullptr) {
    report->push_back(fmt::format(
        "layer {} {}: ||w_c - w_j||_{} of its rows, largest {:.6g}; product of the layers "
        "before: {:.6g}",
        layers.size() - 1, layers.back().describe(), norm_name(q).substr(1),
        rows.max().item<double>(), product));
  }
  return rows * product;
}

}  // namespace bb
