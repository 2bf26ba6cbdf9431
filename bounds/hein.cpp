#include "bounds/hein.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

namespace F = torch::nn::functional;

// Outward factor for the largest eigenvalue (backward error of eigvalsh).
constexpr double kSpectralSlack = 1e-9;
// Pair matrices per eigvalsh call (memory: pairs * width^2 doubles).
constexpr int64_t kPairChunk = 16;

// Index of the first Linear layer when the chain has the form, else -1.
int64_t hidden_linear(const LayerList& layers) {
  size_t i = 0;
  while (i < layers.size() &&
         (layers[i].kind == LayerKind::ChannelAffine || layers[i].kind == LayerKind::Flatten)) {
    ++i;
  }
  if (layers.size() != i + 3 || layers[i].kind != LayerKind::Linear ||
      (layers[i + 1].kind != LayerKind::Softplus && layers[i + 1].kind != LayerKind::Tanh) ||
      layers[i + 2].kind != LayerKind::Linear) {
    return -1;
  }
  return static_cast<int64_t>(i);
}

std::string describe_all(const LayerList& layers) {
  std::vector<std::string> names;
  for (const auto& layer : layers) {
    names.push_back(layer.describe());
  }
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

bool is_one_hidden_layer_smooth(const LayerList& layers) {
  return hidden_linear(layers) >= 0;
}

HeinTerms hein_terms(
    const LayerList& layers,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    Norm p) {
  const int64_t first = hidden_linear(layers);
  BB_CHECK(
      first >= 0,
      "Hein's closed form needs a one-hidden-layer smooth network ([ChannelAffine | Flatten]*, "
      "Linear, Softplus or Tanh, Linear); got: {}",
      layers.empty() ? std::string("no layers") : describe_all(layers));
  BB_CHECK(
      c.dim() == 1 && targets.dim() == 2 && targets.size(0) == c.size(0) && x.size(0) == c.size(0),
      "Hein: x [N, ...], c [N] and targets [N, m] disagree: {}, {}, {}",
      x.sizes(), c.sizes(), targets.sizes());
  const Layer& hidden = layers[first];
  const Layer& activation = layers[first + 1];
  const Layer& output = layers[first + 2];
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(hidden.weight.device());
  const int64_t n = x.size(0);
  const Norm q = dual(p);

  // Fold the leading diagonal maps: preamble(y) = scale o y + shift.
  torch::NoGradGuard no_grad;
  std::vector<int64_t> one{1};
  one.insert(one.end(), x.sizes().begin() + 1, x.sizes().end());
  auto scale = torch::ones(one, f64);
  auto shift = torch::zeros(one, f64);
  for (int64_t i = 0; i < first; ++i) {
    Layer layer = layers[i];
    if (layer.kind == LayerKind::ChannelAffine) {
      layer.weight = layer.weight.to(f64);
      layer.bias = layer.bias.to(f64);
      shift = layer.forward(shift);
      layer.bias = torch::zeros_like(layer.bias);
      scale = layer.forward(scale);
    } else {
      shift = layer.forward(shift);
      scale = layer.forward(scale);
    }
  }
  scale = scale.flatten();
  shift = shift.flatten();
  auto w0 = hidden.weight.to(f64);
  BB_CHECK(
      w0.size(1) == scale.numel(),
      "Hein: {} takes {} features, the input gives {}",
      hidden.describe(), w0.size(1), scale.numel());
  auto w = w0 * scale.unsqueeze(0);  // [h, d]
  auto bias = hidden.bias.defined() ? hidden.bias.to(f64) : torch::zeros({w.size(0)}, f64);
  bias = bias + w0.matmul(shift);
  auto u = output.weight.to(f64);  // [k, h]
  auto d_out = output.bias.defined() ? output.bias.to(f64) : torch::zeros({u.size(0)}, f64);

  // Activation, its derivative and rho = sup |s''|.
  auto z = x.to(f64).reshape({n, -1}).matmul(w.t()) + bias;  // [N, h]
  torch::Tensor value;
  torch::Tensor slope;
  double rho = 0;
  double jump = 0;
  if (activation.kind == LayerKind::Softplus) {
    const double beta = activation.beta;
    value = F::softplus(z, F::SoftplusFuncOptions().beta(beta).threshold(20.0));
    slope = torch::where(beta * z > 20.0, torch::ones_like(z), torch::sigmoid(beta * z));
    rho = beta / 4;
    jump = 1.0 / (1.0 + std::exp(20.0));  // 1 - sigmoid(20)
  } else {
    value = torch::tanh(z);
    slope = 1 - value.square();
    rho = 4.0 / (3.0 * std::sqrt(3.0));
  }

  auto cls = c.to(f64.device()).to(torch::kLong);
  auto tgt = targets.to(f64.device()).to(torch::kLong);
  auto logits = value.matmul(u.t()) + d_out;  // [N, k]
  HeinTerms terms;
  terms.g = logits.gather(1, cls.unsqueeze(1)) - logits.gather(1, tgt);  // [N, m]
  const int64_t m = tgt.size(1);
  auto du = u.index_select(0, cls).unsqueeze(1) -
      u.index_select(0, tgt.reshape({-1})).view({n, m, -1});  // [N, m, h]
  auto grad = (du * slope.unsqueeze(1)).matmul(w);  // [N, m, d]
  terms.a = lp_norm(grad.reshape({n * m, -1}), q).view({n, m});
  auto row_norm = lp_norm(w, q);  // ||w_l||_q, [h]
  if (jump > 0) {
    terms.a = terms.a + jump * du.abs().matmul(row_norm);
  }

  if (p == Norm::L2) {
    // lambda_max per distinct (c, j) pair: du depends on the pair only.
    auto pair = (cls.unsqueeze(1) * u.size(0) + tgt).reshape({-1});
    auto distinct = torch::_unique(pair, /*sorted=*/true, /*return_inverse=*/true);
    auto unique = std::get<0>(distinct);
    auto inverse = std::get<1>(distinct);
    auto weights = (u.index_select(0, unique.div(u.size(0), "floor")) -
                    u.index_select(0, unique.remainder(u.size(0))))
                       .abs();  // [P, h]
    const bool hidden_side = w.size(0) <= w.size(1);
    auto gram = hidden_side ? w.matmul(w.t()) : torch::Tensor();  // [h, h]
    std::vector<torch::Tensor> lambdas;
    for (int64_t start = 0; start < weights.size(0); start += kPairChunk) {
      auto chunk = weights.narrow(0, start, std::min(kPairChunk, weights.size(0) - start));
      torch::Tensor matrices;
      if (hidden_side) {
        auto root = chunk.sqrt();
        matrices = gram.unsqueeze(0) * root.unsqueeze(2) * root.unsqueeze(1);
      } else {
        matrices = w.t().unsqueeze(0).matmul(chunk.unsqueeze(2) * w.unsqueeze(0));
      }
      matrices = (matrices + matrices.transpose(1, 2)) * 0.5;
      lambdas.push_back(std::get<0>(torch::linalg::eigvalsh(matrices, "L").max(1)).clamp_min(0));
    }
    auto lambda = torch::cat(lambdas) * (1 + kSpectralSlack);
    terms.b = (rho * lambda.index_select(0, inverse)).view({n, m});
  } else {
    terms.b = rho * du.abs().matmul(row_norm.square());
  }

  auto root = (terms.a.square() + 4 * terms.b * terms.g.clamp_min(0)).sqrt();
  auto radius = 2 * terms.g / (terms.a + root);
  terms.radius = torch::where(terms.g > 0, radius, torch::zeros_like(radius));
  return terms;
}

}  // namespace bb
