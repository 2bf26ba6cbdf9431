// Certified gradient-norm sources against the mathematics: the product of
// layer operator norms (every layer's bound against the layer's dense
// matrix, the whole constant against sampled gradients), the interval
// Jacobian (against gradients sampled in the region, with pre-activation
// bounds from a small IBP written here), exact answers on linear models, and
// Hein's closed form (its gradient bound, its radius, its refusals).
#include <chrono>
#include <iostream>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "bounds/hein.h"
#include "bounds/interval_jacobian.h"
#include "bounds/operator_norm.h"
#include "bounds/preactivation.h"
#include "core/norm.h"
#include "core/region.h"
#include "datasets/dataset.h"
#include "models/zoo.h"
#include "tests/helpers.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
const JacobianRelaxation kRelaxations[] = {
    JacobianRelaxation::Interval, JacobianRelaxation::SignAware, JacobianRelaxation::Linear};

// ---------------------------------------------------------------------------
// Networks

Layer linear(int64_t in, int64_t out, double gain = 1.5) {
  auto w = torch::randn({out, in}) * (gain / std::sqrt(static_cast<double>(in)));
  return {LayerKind::Linear, w, torch::randn({out}) * 0.3};
}

Layer conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding) {
  auto w = torch::randn({out, in, k, k}) * (1.5 / std::sqrt(static_cast<double>(in * k * k)));
  Layer layer{LayerKind::Conv2d, w, torch::randn({out}) * 0.3};
  layer.stride = {stride, stride};
  layer.padding = {padding, padding};
  return layer;
}

// Zero-centred input normalisation: (x - 0.5) * scale per channel.
Layer centring(int64_t channels) {
  auto scale = 1.0 + 2.0 * torch::rand({channels});
  return {LayerKind::ChannelAffine, scale, -0.5 * scale};
}

Layer activation(LayerKind kind, double beta = 2.0) {
  Layer layer{kind, {}, {}};
  layer.beta = beta;
  return layer;
}

Layer flatten() { return {LayerKind::Flatten, {}, {}}; }

struct Net {
  std::string name;
  LayerList layers;
  std::vector<int64_t> shape;  // one input
};

Net dense_net(LayerKind act, uint64_t seed) {
  torch::manual_seed(seed);
  return {fmt::format("dense_{}_{}", layer_kind_name(act), seed),
          {centring(1), flatten(), linear(16, 12), activation(act), linear(12, 10),
           activation(act), linear(10, 4)},
          {1, 4, 4}};
}

Net conv_net(LayerKind act, uint64_t seed) {
  torch::manual_seed(seed);
  return {fmt::format("conv_{}_{}", layer_kind_name(act), seed),
          {centring(2), conv(2, 3, 3, 1, 1), activation(act), conv(3, 4, 3, 2, 1),
           activation(act), flatten(), linear(4 * 3 * 3, 8), activation(act), linear(8, 4)},
          {2, 6, 6}};
}

std::vector<Net> small_nets() {
  std::vector<Net> nets;
  for (auto act : {LayerKind::ReLU, LayerKind::Softplus, LayerKind::Tanh}) {
    for (uint64_t seed : {0, 1, 2}) {
      nets.push_back(dense_net(act, seed));
      nets.push_back(conv_net(act, seed + 10));
    }
  }
  return nets;
}

LayerList to_f64(const LayerList& layers) {
  LayerList copy = layers;
  for (auto& layer : copy) {
    if (layer.weight.defined()) {
      layer.weight = layer.weight.to(torch::kFloat64);
    }
    if (layer.bias.defined()) {
      layer.bias = layer.bias.to(torch::kFloat64);
    }
  }
  return copy;
}

std::vector<int64_t> batch_shape(int64_t n, const std::vector<int64_t>& shape) {
  std::vector<int64_t> out{n};
  out.insert(out.end(), shape.begin(), shape.end());
  return out;
}

// The input Jacobian of the logits at every point, float64 [P, k, d].
torch::Tensor logit_jacobian(const LayerList& layers64, const torch::Tensor& z) {
  auto x = z.to(torch::kFloat64).detach().requires_grad_(true);
  auto logits = run_layers(layers64, x);
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < logits.size(1); ++i) {
    auto grad = torch::autograd::grad(
        {logits.select(1, i).sum()}, {x}, {}, /*retain_graph=*/true)[0];
    rows.push_back(grad.flatten(1));
  }
  return torch::stack(rows, 1);
}

// ||grad g_j(z)||_q for every point and ordered class pair: [P, k, k].
torch::Tensor pair_gradient_norms(const LayerList& layers64, const torch::Tensor& z, Norm q) {
  auto jac = logit_jacobian(layers64, z);
  const int64_t p = jac.size(0);
  const int64_t k = jac.size(1);
  auto diff = jac.unsqueeze(2) - jac.unsqueeze(1);  // [P, c, j, d]
  return lp_norm(diff.reshape({p * k * k, -1}), q).view({p, k, k});
}

// grad g_j(z) with c = c[n], j = targets[n][i] at points z [N, P, ...]: [N, P, m, d].
torch::Tensor margin_gradients(
    const LayerList& layers64,
    const torch::Tensor& z,
    const torch::Tensor& c,
    const torch::Tensor& targets) {
  const int64_t n = z.size(0);
  const int64_t p = z.size(1);
  const int64_t m = targets.size(1);
  auto jac = logit_jacobian(layers64, z.flatten(0, 1)).view({n, p, -1, z[0][0].numel()});
  auto gc = jac.gather(2, c.view({n, 1, 1, 1}).expand({n, p, 1, jac.size(3)}));
  auto gj = jac.gather(2, targets.view({n, 1, m, 1}).expand({n, p, m, jac.size(3)}));
  return gc - gj;
}

// Their norms ||grad g_j(z)||_q: [N, P, m].
torch::Tensor margin_gradient_norms(
    const LayerList& layers64,
    const torch::Tensor& z,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    Norm q) {
  auto grads = margin_gradients(layers64, z, c, targets);
  return lp_norm(grads.flatten(0, 2), q).view({grads.size(0), grads.size(1), grads.size(2)});
}

// Every class but c: int64 [N, k - 1].
torch::Tensor other_classes(const torch::Tensor& c, int64_t k) {
  auto all = torch::arange(k).unsqueeze(0).expand({c.size(0), k});
  auto keep = all != c.unsqueeze(1);
  return all.masked_select(keep).view({c.size(0), k - 1});
}

// ---------------------------------------------------------------------------
// A small interval bound propagation, independent of bounds/ibp.cpp: the
// box [lo, hi] through every layer in centre/radius form, float64, widened
// by 1e-10 at each activation so that rounding never narrows it.
PreActivationBounds local_ibp(const LayerList& layers, torch::Tensor lo, torch::Tensor hi) {
  PreActivationBounds bounds;
  lo = lo.to(torch::kFloat64);
  hi = hi.to(torch::kFloat64);
  auto layers64 = to_f64(layers);
  for (size_t i = 0; i < layers64.size(); ++i) {
    const Layer& layer = layers64[i];
    if (is_activation(layer.kind)) {
      lo = lo - 1e-10 * (1 + lo.abs());
      hi = hi + 1e-10 * (1 + hi.abs());
      bounds.layer.push_back(static_cast<int64_t>(i));
      bounds.lower.push_back(lo);
      bounds.upper.push_back(hi);
      lo = layer.forward(lo);  // every activation here is increasing
      hi = layer.forward(hi);
      continue;
    }
    if (layer.kind == LayerKind::Flatten) {
      lo = lo.flatten(1);
      hi = hi.flatten(1);
      continue;
    }
    Layer magnitude = layer;
    magnitude.weight = layer.weight.abs();
    magnitude.bias = layer.bias.defined() ? torch::zeros_like(layer.bias) : layer.bias;
    auto mid = layer.forward((lo + hi) * 0.5);
    auto rad = magnitude.forward((hi - lo) * 0.5);
    lo = mid - rad;
    hi = mid + rad;
  }
  return bounds;
}

// Points of the box [lo, hi] ([N, ...]): its centre, uniform draws and
// random vertices, [N, draws, ...].
torch::Tensor box_points(const torch::Tensor& lo, const torch::Tensor& hi, int64_t draws) {
  auto l = lo.unsqueeze(1);
  auto h = hi.unsqueeze(1);
  std::vector<int64_t> shape{lo.size(0), draws};
  shape.insert(shape.end(), lo.sizes().begin() + 1, lo.sizes().end());
  auto u = torch::rand(shape, kF64);
  auto half = draws / 2;
  u.narrow(1, half, draws - half).copy_((u.narrow(1, half, draws - half) > 0.5).to(torch::kFloat64));
  u.select(1, 0).fill_(0.5);
  return l + (h - l) * u;
}

// The box B_inf(x, eps) ∩ [0, 1]^d of each input: IBP's bounds over it and
// 400 of its points (box_points).
struct SampledBox {
  PreActivationBounds bounds;
  torch::Tensor points;
};
SampledBox sampled_box(const LayerList& layers, const torch::Tensor& x, double eps) {
  auto lo = (x - eps).clamp(0, 1);
  auto hi = (x + eps).clamp(0, 1);
  SampledBox box;
  box.bounds = local_ibp(layers, lo, hi);
  box.points = box_points(lo, hi, 400);
  return box;
}

// ---------------------------------------------------------------------------
// Dense matrices of linear layers, by autograd: row i of J is the gradient
// of output i, all rows in one backward over a batch of `out` copies.
torch::Tensor dense_matrix(const Layer& layer, const std::vector<int64_t>& shape) {
  auto layer64 = to_f64({layer})[0];
  if (layer64.bias.defined()) {
    layer64.bias = torch::zeros_like(layer64.bias);
  }
  auto probe = run_layers({layer64}, torch::zeros(batch_shape(1, shape), kF64));
  const int64_t out = probe[0].numel();
  auto x = torch::zeros(batch_shape(out, shape), kF64).requires_grad_(true);
  auto y = run_layers({layer64}, x).reshape({out, out});
  auto picked = (y * torch::eye(out, kF64)).sum();
  return torch::autograd::grad({picked}, {x})[0].reshape({out, -1});
}

// Power iteration on J^T J: a lower estimate of ||J||_2.
double power_iteration(const torch::Tensor& j, int steps) {
  auto v = torch::randn({j.size(1)}, kF64);
  for (int i = 0; i < steps; ++i) {
    v = j.t().mv(j.mv(v));
    v = v / v.norm();
  }
  return j.mv(v).norm().item<double>();
}

// ---------------------------------------------------------------------------
// Operator norms

struct ConvCase {
  int64_t in, out, k, stride, padding, size;
};

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases{
      {2, 3, 3, 1, 1, 7}, {3, 2, 3, 1, 0, 6}, {2, 4, 5, 2, 2, 9}, {2, 3, 4, 2, 1, 8},
      {1, 2, 3, 2, 2, 6}, {3, 3, 3, 1, 2, 5}, {4, 3, 1, 1, 0, 5}};
  return cases;
}

TEST(OperatorNorm, ConvolutionRowAndColumnSumsAreExact) {
  torch::manual_seed(5);
  for (const auto& row : conv_cases()) {
    const auto layer = conv(row.in, row.out, row.k, row.stride, row.padding);
    const std::vector<int64_t> shape{row.in, row.size, row.size};
    const auto j = dense_matrix(layer, shape);
    const double rows = j.abs().sum(1).max().item<double>();
    const double columns = j.abs().sum(0).max().item<double>();
    EXPECT_NEAR(layer_operator_norm(layer, shape, Norm::Linf).value, rows, 1e-12 * rows)
        << layer.describe() << " on " << row.size;
    EXPECT_NEAR(layer_operator_norm(layer, shape, Norm::L1).value, columns, 1e-12 * columns)
        << layer.describe() << " on " << row.size;
  }
}

TEST(OperatorNorm, ConvolutionSpectralBoundIsSandwiched) {
  torch::manual_seed(6);
  for (const auto& row : conv_cases()) {
    const auto layer = conv(row.in, row.out, row.k, row.stride, row.padding);
    const std::vector<int64_t> shape{row.in, row.size, row.size};
    const auto j = dense_matrix(layer, shape);
    const double exact = torch::linalg::svdvals(j, c10::nullopt).max().item<double>();
    const double estimate = power_iteration(j, 200);
    const double bound = layer_operator_norm(layer, shape, Norm::L2).value;
    // The circular embedding: sigma(K^(w)) <= sum_t ||K_t||_2 <= sqrt(kh kw) ||K||_F.
    const double loose = std::sqrt(static_cast<double>(row.k * row.k)) *
        layer.weight.to(torch::kFloat64).norm().item<double>();
    EXPECT_LE(estimate, exact * (1 + 1e-9)) << layer.describe();
    EXPECT_GE(bound, exact) << layer.describe() << " on " << row.size;
    EXPECT_LE(bound, loose) << layer.describe();
    if (row.k == 1) {
      // A 1x1 convolution is the c_out x c_in matrix at every pixel.
      EXPECT_NEAR(bound, exact, 1e-8 * exact) << layer.describe();
    }
  }
}

// A kernel wider than the input, with taps 1 and -1 two columns apart, on a
// 2x2 input: the zero-padded convolution has norm 1 (y0 = -x1, y1 = x0 in
// each row), while on a grid as small as the input the two taps would share
// one phase and cancel. The grid must be H + kh - 1 by W + kw - 1.
TEST(OperatorNorm, ConvolutionSpectralBoundSurvivesAliasing) {
  auto kernel = torch::zeros({1, 1, 3, 3});
  kernel[0][0][1][0] = 1.0;
  kernel[0][0][1][2] = -1.0;
  Layer layer{LayerKind::Conv2d, kernel, torch::zeros({1})};
  layer.padding = {1, 1};
  const std::vector<int64_t> shape{1, 2, 2};
  const double exact = torch::linalg::svdvals(dense_matrix(layer, shape), c10::nullopt).max().item<double>();
  EXPECT_NEAR(exact, 1.0, 1e-12);
  EXPECT_GE(layer_operator_norm(layer, shape, Norm::L2).value, exact);
}

TEST(OperatorNorm, DenseAndDiagonalLayersAreExact) {
  torch::manual_seed(7);
  const auto layer = linear(9, 6);
  const auto j = layer.weight.to(torch::kFloat64);
  EXPECT_NEAR(layer_operator_norm(layer, {9}, Norm::Linf).value, j.abs().sum(1).max().item<double>(), 1e-12);
  EXPECT_NEAR(layer_operator_norm(layer, {9}, Norm::L1).value, j.abs().sum(0).max().item<double>(), 1e-12);
  const double sigma = torch::linalg::svdvals(j, c10::nullopt).max().item<double>();
  EXPECT_GE(layer_operator_norm(layer, {9}, Norm::L2).value, sigma);
  EXPECT_NEAR(layer_operator_norm(layer, {9}, Norm::L2).value, sigma, 1e-8 * sigma);
  Layer affine{LayerKind::ChannelAffine, torch::tensor({0.5, -3.0, 2.0}), torch::zeros({3})};
  for (Norm p : all_norms()) {
    EXPECT_EQ(layer_operator_norm(affine, {3, 2, 2}, p).value, 3.0);
  }
}

TEST(OperatorNorm, GlobalLipschitzBoundsEverySampledGradient) {
  for (const auto& net : small_nets()) {
    torch::manual_seed(11);
    // Beyond D: the constant holds on the whole space.
    auto z = -1.0 + 3.0 * torch::rand(batch_shape(2000, net.shape), kF64);
    auto layers64 = to_f64(net.layers);
    for (Norm p : all_norms()) {
      std::vector<std::string> report;
      auto lipschitz = global_lipschitz(net.layers, net.shape, p, &report);
      ASSERT_EQ(lipschitz.sizes(), (std::vector<int64_t>{4, 4}));
      EXPECT_EQ(report.size(), net.layers.size()) << net.name;
      EXPECT_TRUE((lipschitz.diagonal() == 0).all().item<bool>()) << net.name;
      auto sampled = std::get<0>(pair_gradient_norms(layers64, z, dual(p)).max(0));
      EXPECT_TRUE((lipschitz >= sampled * (1 - 1e-12)).all().item<bool>())
          << net.name << " " << norm_name(p) << "\nbound\n" << lipschitz << "\nsampled\n" << sampled;
    }
  }
}

// A chain whose product is attained: a scaled identity, ReLU, a last layer.
TEST(OperatorNorm, GlobalLipschitzIsExactWhenTheProductIsAttained) {
  torch::manual_seed(12);
  LayerList layers{
      {LayerKind::Linear, 2.5 * torch::eye(6), torch::ones({6})},
      activation(LayerKind::ReLU),
      linear(6, 3)};
  auto layers64 = to_f64(layers);
  auto z = torch::rand({10, 6}, kF64);  // every unit active
  for (Norm p : all_norms()) {
    auto lipschitz = global_lipschitz(layers, {6}, p);
    auto at_z = pair_gradient_norms(layers64, z, dual(p)).select(0, 0);
    // L2: the SVD's outward factor 1 + 1e-9.
    EXPECT_TRUE(torch::allclose(lipschitz, at_z, p == Norm::L2 ? 2e-9 : 1e-12, 0)) << norm_name(p);
    EXPECT_TRUE((lipschitz >= at_z).all().item<bool>()) << norm_name(p);
  }
}

TEST(OperatorNorm, ChainsThatDoNotEndWithLinearAreRefused) {
  LayerList layers{linear(4, 3), activation(LayerKind::ReLU)};
  testing::expect_error([&] { global_lipschitz(layers, {4}, Norm::L2); }, {"Linear", "ReLU"});
}

// ---------------------------------------------------------------------------
// Interval Jacobian

struct RegionCase {
  double eps;  // B_inf(x, eps) ∩ [0, 1]; inf: all of [0, 1]
};

TEST(IntervalJacobian, DerivativeIntervalsHoldEverySampledDerivative) {
  torch::manual_seed(13);
  auto a = torch::randn({4000}, kF64) * 8;
  auto b = a + torch::rand({4000}, kF64) * torch::tensor({0.0, 1e-3, 1.0, 30.0}, kF64).repeat(1000);
  auto lower = torch::min(a, b);
  auto upper = torch::max(a, b);
  for (auto layer : {activation(LayerKind::ReLU), activation(LayerKind::Softplus, 3.0),
                     activation(LayerKind::Tanh)}) {
    auto [dl, du] = derivative_interval(layer, lower, upper);
    EXPECT_TRUE((dl >= 0).all().item<bool>() && (dl <= du).all().item<bool>() &&
                (du <= 1).all().item<bool>());
    for (int s = 0; s < 20; ++s) {
      auto t = torch::rand({4000}, kF64);
      t.narrow(0, 0, 100).fill_(s % 2);  // endpoints too
      auto z = (lower + t * (upper - lower)).requires_grad_(true);
      auto y = layer.forward(z);
      // Autograd's tanh' is 1 - tanh^2: up to 2^-53 off in absolute terms.
      auto slope = torch::autograd::grad({y.sum()}, {z})[0];
      EXPECT_TRUE(((slope >= dl - 1e-15) & (slope <= du + 1e-15)).all().item<bool>())
          << layer.describe();
      if (layer.kind == LayerKind::Tanh) {
        // The exact slope, 4 e^-2|z| / (1 + e^-2|z|)^2, to the relative ulp.
        auto e = torch::exp(-2 * z.detach().abs());
        auto exact = 4 * e / (1 + e).square();
        EXPECT_TRUE(((exact >= dl) & (exact <= du)).all().item<bool>());
      }
    }
  }
  // Tight where the interval is a point (away from ReLU's kink).
  auto point = torch::tensor({-2.0, 0.3, 25.0}, kF64);
  auto [dl, du] = derivative_interval(activation(LayerKind::Tanh), point, point);
  EXPECT_TRUE(torch::allclose(dl, du, 1e-11, 1e-300));
}

TEST(IntervalJacobian, BoundsEveryGradientSampledInTheRegion) {
  int improved = 0;
  int improved_linear = 0;
  int compared = 0;
  for (const auto& net : small_nets()) {
    torch::manual_seed(17);
    auto layers64 = to_f64(net.layers);
    auto x = torch::rand(batch_shape(3, net.shape), kF64);
    auto c = run_layers(layers64, x).argmax(1);
    auto targets = other_classes(c, 4);
    for (double eps : {0.003, 0.03, 0.3, kInf}) {
      const auto [bounds, z] = sampled_box(net.layers, x, eps);
      for (Norm q : all_norms()) {
        auto sampled = std::get<0>(margin_gradient_norms(layers64, z, c, targets, q).max(1));
        auto plain = interval_jacobian_norm(net.layers, bounds, c, targets, q, JacobianRelaxation::Interval, net.shape);
        auto aware = interval_jacobian_norm(net.layers, bounds, c, targets, q, JacobianRelaxation::SignAware, net.shape);
        auto linear = interval_jacobian_norm(net.layers, bounds, c, targets, q, JacobianRelaxation::Linear, net.shape);
        ASSERT_EQ(plain.sizes(), (std::vector<int64_t>{3, 3}));
        const auto what = fmt::format("{} eps {} q {}", net.name, eps, norm_name(q));
        EXPECT_TRUE((plain >= sampled * (1 - 1e-9)).all().item<bool>())
            << what << "\nbound\n" << plain << "\nsampled\n" << sampled;
        EXPECT_TRUE((aware >= sampled * (1 - 1e-9)).all().item<bool>())
            << what << " sign-aware\nbound\n" << aware << "\nsampled\n" << sampled;
        EXPECT_TRUE((linear >= sampled * (1 - 1e-9)).all().item<bool>())
            << what << " linear\nbound\n" << linear << "\nsampled\n" << sampled;
        EXPECT_TRUE((aware <= plain).all().item<bool>()) << what;
        // Never looser than the merging it relaxes (up to float64 rounding).
        EXPECT_TRUE((linear <= aware * (1 + 1e-9) + 1e-12).all().item<bool>())
            << what << "\nlinear\n" << linear << "\nsign-aware\n" << aware;
        compared += 1;
        improved += (aware < plain * (1 - 1e-9)).any().item<bool>() ? 1 : 0;
        improved_linear += (linear < aware * (1 - 1e-9)).any().item<bool>() ? 1 : 0;
      }
    }
  }
  // RecurJac's merging and the linear relaxation must each do something here.
  EXPECT_GT(improved, compared / 10) << improved << " of " << compared;
  EXPECT_GT(improved_linear, compared / 10) << improved_linear << " of " << compared;
}

// Inputs like images: a third of the coordinates on the lower face of
// [0, 1], a sixth on the upper one, the rest inside.
torch::Tensor on_faces(torch::Tensor x) {
  auto u = torch::rand_like(x);
  return torch::where(u < 1.0 / 3, torch::zeros_like(x), torch::where(u > 5.0 / 6, torch::ones_like(x), x));
}

// Three image-like inputs of `net` (on_faces), seeded, with the float64
// copy of its layers, the predicted classes and the other classes.
struct NetInputs {
  LayerList layers64;
  torch::Tensor x;
  torch::Tensor c;
  torch::Tensor targets;
};
NetInputs image_like_inputs(const Net& net, uint64_t seed) {
  torch::manual_seed(seed);
  NetInputs in;
  in.layers64 = to_f64(net.layers);
  in.x = on_faces(torch::rand(batch_shape(3, net.shape), kF64));
  in.c = run_layers(in.layers64, in.x).argmax(1);
  in.targets = other_classes(in.c, 4);
  return in;
}

// h_k(gamma) = down_k relu(gamma) + up_k relu(-gamma) of gradients
// [N, P, m, d] with the room [N, 2, ...input] of box_room.
torch::Tensor with_room(const torch::Tensor& grads, const torch::Tensor& room) {
  auto r = room.reshape({room.size(0), 2, 1, 1, -1});
  return r.select(1, 0) * grads.clamp_min(0) + r.select(1, 1) * (-grads).clamp_min(0);
}

// With faces, the bound is on max_z ||h(grad g_j(z))||_q, h dropping the sign
// that a path from x into D cannot use (bounds/interval_jacobian.h): it holds
// at every sampled point, never exceeds the bound without faces, and is
// below it on most regions.
TEST(IntervalJacobian, FacesBoundEveryDirectionalRateSampledInTheRegion) {
  int tighter = 0;
  int compared = 0;
  for (const auto& net : small_nets()) {
    const auto [layers64, x, c, targets] = image_like_inputs(net, 29);
    auto faces = box_room(x, Box{0, 1});
    for (double eps : {0.03, 0.3, kInf}) {
      const auto [bounds, z] = sampled_box(net.layers, x, eps);
      auto grads = margin_gradients(layers64, z, c, targets);  // [N, P, m, d]
      auto h = with_room(grads, faces);
      for (Norm q : all_norms()) {
        auto sampled = std::get<0>(lp_norm(h.flatten(0, 2), q).view({3, -1, 3}).max(1));
        for (auto r : kRelaxations) {
          auto bound = interval_jacobian_norm(net.layers, bounds, c, targets, q, r, net.shape, faces);
          auto free = interval_jacobian_norm(net.layers, bounds, c, targets, q, r, net.shape);
          const auto what = fmt::format("{} eps {} q {} {}", net.name, eps, norm_name(q), relaxation_name(r));
          EXPECT_TRUE((bound >= sampled * (1 - 1e-9)).all().item<bool>())
              << what << "\nbound\n" << bound << "\nsampled\n" << sampled;
          EXPECT_TRUE((bound <= free * (1 + 1e-9) + 1e-12).all().item<bool>())
              << what << "\nwith faces\n" << bound << "\nwithout\n" << free;
          compared += 1;
          tighter += (bound < free * 0.99).any().item<bool>() ? 1 : 0;
        }
      }
    }
  }
  EXPECT_GT(tighter, compared / 2) << tighter << " of " << compared;
}

// For q = 1 with a room radius rho, the bound is on max_z ||h(grad g_j(z))||_1
// with h weighing each sign by min(1, room / rho) (bounds/interval_jacobian.h):
// it holds at every sampled point and is below the faces-only bound on some
// regions; for q = 2 and q = inf the room radius changes nothing.
TEST(IntervalJacobian, RoomWeightsBoundEveryWeightedRateSampledInTheRegion) {
  int tighter = 0;
  int compared = 0;
  for (const auto& net : small_nets()) {
    const auto [layers64, x, c, targets] = image_like_inputs(net, 31);
    auto faces = box_room(x, Box{0, 1});
    for (double eps : {0.03, 0.3}) {
      auto rho = torch::full({3}, eps, kF64);
      auto room = box_room(x, Box{0, 1}, rho);
      EXPECT_TRUE((room <= faces).all().item<bool>());
      EXPECT_TRUE(((room > 0) & (room < 1)).any().item<bool>());
      const auto [bounds, z] = sampled_box(net.layers, x, eps);
      auto h = with_room(margin_gradients(layers64, z, c, targets), room);
      auto sampled = std::get<0>(lp_norm(h.flatten(0, 2), Norm::L1).view({3, -1, 3}).max(1));
      for (auto r : kRelaxations) {
        const auto what = fmt::format("{} eps {} {}", net.name, eps, relaxation_name(r));
        auto bound = interval_jacobian_norm(net.layers, bounds, c, targets, Norm::L1, r, net.shape, room);
        auto faced = interval_jacobian_norm(net.layers, bounds, c, targets, Norm::L1, r, net.shape, faces);
        EXPECT_TRUE((bound >= sampled * (1 - 1e-9)).all().item<bool>())
            << what << "\nbound\n" << bound << "\nsampled\n" << sampled;
        compared += 1;
        tighter += (bound < faced * 0.99).any().item<bool>() ? 1 : 0;
        for (Norm q : {Norm::L2, Norm::Linf}) {
          EXPECT_TRUE(torch::equal(
              interval_jacobian_norm(net.layers, bounds, c, targets, q, r, net.shape, room),
              interval_jacobian_norm(net.layers, bounds, c, targets, q, r, net.shape, faces)))
              << what << " q " << norm_name(q);
        }
      }
    }
  }
  EXPECT_GT(tighter, compared / 2) << tighter << " of " << compared;
}

// The input gradient is (3 s, 2 - 3 s) with s in {0, 1} the slope of one
// unstable ReLU: the plain intervals [0, 3] x [-1, 2] give ||.||_1 <= 5 and
// ||.||_2^2 <= 13. Merged with signs (+, +) the functional 3 s + 2 - 3 s = 2
// is exact, and |gamma_2| <= gamma_2 + 2 * 1, so ||.||_1 <= 2 + 2 = 4: the
// true maximum, at s = 1. For q = 2 the weights (3, 2) give
// 4 + 3 s <= 7 and ||.||_2^2 <= 7 + 2 * 2 * 1 = 11 (the truth is 10). The
// chords (linear) give |gamma_2| <= gamma_2 / 3 + 4 / 3 on [-1, 2], so
// 3 s + (2 - 3 s) / 3 + 4 / 3 <= 4 again, and gamma_k^2 <= (lo + hi) gamma_k
// - lo hi: 3 * 3 s + (2 - 3 s) + 2 = 4 + 6 s <= 10, the truth.
// The interval Jacobian's backward pass in float32 (the CPU's default) or
// float64, for the scope of a test.
struct BackwardPrecision {
  explicit BackwardPrecision(bool float32) { detail::use_float32_interval_backward(float32); }
  ~BackwardPrecision() { detail::use_float32_interval_backward(true); }
};

TEST(IntervalJacobian, SignAwareMergeIsTightOnACorrelatedGradient) {
  LayerList layers{
      {LayerKind::Linear, torch::tensor({{0.0, 1.0}, {1.0, -1.0}}, kF64), torch::tensor({10.0, 0.0}, kF64)},
      activation(LayerKind::ReLU),
      {LayerKind::Linear, torch::tensor({{2.0, 3.0}, {0.0, 0.0}}, kF64), torch::zeros({2}, kF64)}};
  auto lo = -torch::ones({1, 2}, kF64);
  auto hi = torch::ones({1, 2}, kF64);
  auto bounds = local_ibp(layers, lo, hi);
  auto c = torch::tensor({0});
  auto targets = torch::tensor({{1}});
  auto value = [&](Norm q, JacobianRelaxation r) {
    return interval_jacobian_norm(layers, bounds, c, targets, q, r, {2})[0][0].item<double>();
  };
  using R = JacobianRelaxation;
  // Exact in float64; the float32 backward pass (the CPU's default) encloses
  // the exact value within its rounding terms.
  for (bool float32 : {false, true}) {
    BackwardPrecision precision(float32);
    auto expect = [&](double actual, double exact) {
      if (float32) {
        EXPECT_GE(actual, exact);
        EXPECT_LE(actual, exact * (1 + 1e-4));
      } else {
        EXPECT_NEAR(actual, exact, 1e-9);
      }
    };
    expect(value(Norm::L1, R::Interval), 5.0);
    expect(value(Norm::L1, R::SignAware), 4.0);
    expect(value(Norm::L1, R::Linear), 4.0);
    expect(value(Norm::L2, R::Interval), std::sqrt(13.0));
    expect(value(Norm::L2, R::SignAware), std::sqrt(11.0));
    expect(value(Norm::L2, R::Linear), std::sqrt(10.0));
    expect(value(Norm::Linf, R::SignAware), 3.0);
    expect(value(Norm::Linf, R::Linear), 3.0);
  }
  // Both slopes occur in the box, so the truth is attained at its corners.
  auto corners = torch::tensor({{-1.0, 1.0}, {1.0, -1.0}}, kF64).unsqueeze(0);
  auto truth = margin_gradient_norms(layers, corners, c, targets, Norm::L1).max().item<double>();
  EXPECT_NEAR(truth, 4.0, 1e-12);
}

// Two stable ReLUs carry x to one unstable ReLU with weights (1, -1), so the
// input gradient is t (1 - 1) = 0 for its slope t in {0, 1}. The plain pass
// bounds the two paths apart ([0, 1] + [-1, 0]), and the merged norm forms
// for q = 1 and 2 start from that interval, so they give 1; the functional e_1 walked
// forward meets the two weights of the same t and cancels: refined, every
// norm is 0, the truth.
TEST(IntervalJacobian, RefiningEachCoordinateRecoversACancellation) {
  LayerList layers{
      {LayerKind::Linear, torch::tensor({{1.0}, {1.0}}, kF64), torch::tensor({10.0, 10.0}, kF64)},
      activation(LayerKind::ReLU),
      {LayerKind::Linear, torch::tensor({{1.0, -1.0}}, kF64), torch::zeros({1}, kF64)},
      activation(LayerKind::ReLU),
      {LayerKind::Linear, torch::tensor({{1.0}, {0.0}}, kF64), torch::zeros({2}, kF64)}};
  auto bounds = local_ibp(layers, -torch::ones({1, 1}, kF64), torch::ones({1, 1}, kF64));
  ASSERT_LT(bounds.lower[1].item<double>(), 0);  // IBP leaves the second ReLU unstable
  ASSERT_GT(bounds.upper[1].item<double>(), 0);
  auto c = torch::tensor({0});
  auto targets = torch::tensor({{1}});
  for (Norm q : all_norms()) {
    for (auto r : {JacobianRelaxation::SignAware, JacobianRelaxation::Linear}) {
      const auto what = fmt::format("{} {}", norm_name(q), relaxation_name(r));
      auto merged = interval_jacobian_norm(layers, bounds, c, targets, q, r, {1});
      auto refined = interval_jacobian_norm(layers, bounds, c, targets, q, r, {1}, {}, true);
      // q = inf refines its kTopCoordinates largest coordinates anyway.
      EXPECT_NEAR(merged.item<double>(), q == Norm::Linf ? 0.0 : 1.0, 1e-4) << what;
      EXPECT_EQ(refined.item<double>(), 0.0) << what;
    }
    auto plain = interval_jacobian_norm(layers, bounds, c, targets, q, JacobianRelaxation::Interval, {1});
    EXPECT_NEAR(plain.item<double>(), 1.0, 1e-4) << norm_name(q);
  }
  testing::expect_error(
      [&] { interval_jacobian_norm(layers, bounds, c, targets, Norm::L1, JacobianRelaxation::Interval, {1}, {}, true); },
      {"merged forms", "interval"});
}

// Refined (every coordinate through +e_k and -e_k), the merged forms still
// bound every sampled rate, with and without the room toward D's faces (and
// for q = 1 a room radius), are never looser than without refining, and are
// tighter on many regions.
TEST(IntervalJacobian, RefinedCoordinatesBoundEveryRateSampledInTheRegion) {
  int tighter = 0;
  int compared = 0;
  for (const auto& net : small_nets()) {
    const auto [layers64, x, c, targets] = image_like_inputs(net, 37);
    for (double eps : {0.003, 0.03, 0.3, kInf}) {
      const auto [bounds, z] = sampled_box(net.layers, x, eps);
      auto grads = margin_gradients(layers64, z, c, targets);  // [N, P, m, d]
      std::vector<std::pair<std::string, torch::Tensor>> rooms = {{"no room", {}}, {"faces", box_room(x, Box{0, 1})}};
      if (std::isfinite(eps)) {
        rooms.emplace_back("room radius", box_room(x, Box{0, 1}, torch::full({3}, eps, kF64)));
      }
      for (const auto& [room_name, room] : rooms) {
        auto h = room.defined() ? with_room(grads, room) : grads;
        for (Norm q : all_norms()) {
          if (room_name == "room radius" && q != Norm::L1) {
            continue;  // the weights count for q = 1 only
          }
          auto sampled = std::get<0>(lp_norm(h.flatten(0, 2), q).view({3, -1, 3}).max(1));
          for (auto r : {JacobianRelaxation::SignAware, JacobianRelaxation::Linear}) {
            const auto what =
                fmt::format("{} eps {} q {} {} {}", net.name, eps, norm_name(q), relaxation_name(r), room_name);
            auto merged = interval_jacobian_norm(net.layers, bounds, c, targets, q, r, net.shape, room);
            auto refined = interval_jacobian_norm(net.layers, bounds, c, targets, q, r, net.shape, room, true);
            EXPECT_TRUE((refined >= sampled * (1 - 1e-9)).all().item<bool>())
                << what << "\nrefined\n" << refined << "\nsampled\n" << sampled;
            EXPECT_TRUE((refined <= merged * (1 + 1e-9) + 1e-12).all().item<bool>())
                << what << "\nrefined\n" << refined << "\nmerged\n" << merged;
            compared += 1;
            tighter += (refined < merged * 0.99).any().item<bool>() ? 1 : 0;
          }
        }
      }
    }
  }
  EXPECT_GT(tighter, compared / 4) << tighter << " of " << compared;
}

TEST(IntervalJacobian, EqualsTheGradientNormOnAPointRegion) {
  for (auto act : {LayerKind::ReLU, LayerKind::Softplus, LayerKind::Tanh}) {
    for (const auto& net : {dense_net(act, 3), conv_net(act, 4)}) {
      torch::manual_seed(19);
      auto layers64 = to_f64(net.layers);
      auto x = torch::rand(batch_shape(4, net.shape), kF64);
      auto c = run_layers(layers64, x).argmax(1);
      auto targets = other_classes(c, 4);
      // The point x itself: only local_ibp's 1e-10 widening remains, and in
      // float32 the rounding terms (relative gamma_n per layer).
      auto bounds = local_ibp(net.layers, x, x);
      for (bool float32 : {false, true}) {
        BackwardPrecision precision(float32);
        for (Norm q : all_norms()) {
          auto at_x = margin_gradient_norms(layers64, x.unsqueeze(1), c, targets, q).squeeze(1);
          for (auto aware : kRelaxations) {
            auto bound = interval_jacobian_norm(net.layers, bounds, c, targets, q, aware, net.shape);
            EXPECT_TRUE(torch::allclose(bound, at_x, float32 ? 1e-4 : 1e-6, 1e-12))
                << net.name << " " << norm_name(q) << (float32 ? " float32" : "") << "\n" << bound << "\n" << at_x;
          }
        }
      }
    }
  }
}

// The float32 backward pass (CPU default) rounds outward: it encloses the
// float64 one (which follows exact arithmetic to ~1e-16) and stays within
// its product-error terms of it.
TEST(IntervalJacobian, Float32BackwardEnclosesTheFloat64One) {
  int64_t wider = 0;
  int64_t entries = 0;
  for (const auto& net : small_nets()) {
    const auto [layers64, x, c, targets] = image_like_inputs(net, 23);
    for (double eps : {0.0, 0.003, 0.3, kInf}) {
      auto lo = (x - eps).clamp(0, 1);
      auto hi = (x + eps).clamp(0, 1);
      auto bounds = local_ibp(net.layers, lo, hi);
      for (Norm q : all_norms()) {
        torch::Tensor exact;
        {
          BackwardPrecision precision(false);
          exact = interval_jacobian_norm(net.layers, bounds, c, targets, q, JacobianRelaxation::Interval, net.shape);
        }
        auto low = interval_jacobian_norm(net.layers, bounds, c, targets, q, JacobianRelaxation::Interval, net.shape);
        const auto what = fmt::format("{} eps {} q {}", net.name, eps, norm_name(q));
        EXPECT_TRUE((low >= exact * (1 - 1e-12)).all().item<bool>()) << what << "\n" << low << "\n" << exact;
        EXPECT_TRUE((low <= exact * (1 + 1e-3) + 1e-9).all().item<bool>()) << what << "\n" << low << "\n" << exact;
        wider += (low > exact).sum().item<int64_t>();
        entries += low.numel();
      }
    }
  }
  EXPECT_GT(wider, entries * 9 / 10) << wider << " of " << entries;
}

TEST(IntervalJacobian, InfersTheInputShapeOrAsksForIt) {
  auto net = dense_net(LayerKind::ReLU, 5);
  auto x = torch::rand(batch_shape(2, net.shape), kF64);
  auto c = torch::tensor({0, 1});
  auto targets = other_classes(c, 4);
  auto bounds = local_ibp(net.layers, x - 0.1, x + 0.1);
  auto given = interval_jacobian_norm(net.layers, bounds, c, targets, Norm::L1, JacobianRelaxation::Linear, net.shape);
  auto inferred = interval_jacobian_norm(net.layers, bounds, c, targets, Norm::L1, JacobianRelaxation::Linear);
  EXPECT_TRUE(torch::equal(given, inferred));
  auto strided = conv_net(LayerKind::ReLU, 6);
  strided.layers[1].stride = {2, 2};  // first conv strided: 6x6 -> 3x3
  strided.layers[3] = conv(3, 4, 3, 1, 1);
  strided.layers[6] = linear(4 * 3 * 3, 8);
  auto xs = torch::rand(batch_shape(2, strided.shape), kF64);
  auto sb = local_ibp(strided.layers, xs - 0.1, xs + 0.1);
  testing::expect_error(
      [&] { interval_jacobian_norm(strided.layers, sb, c, targets, Norm::L2, JacobianRelaxation::Interval); },
      {"layer 1", "stride", "input_shape"});
  EXPECT_NO_THROW(interval_jacobian_norm(strided.layers, sb, c, targets, Norm::L2, JacobianRelaxation::Interval, strided.shape));
  PreActivationBounds partial = bounds;
  partial.layer.pop_back();
  partial.lower.pop_back();
  partial.upper.pop_back();
  testing::expect_error(
      [&] { interval_jacobian_norm(net.layers, partial, c, targets, Norm::L2, JacobianRelaxation::Interval); },
      {"no pre-activation bounds", "5 (ReLU)"});
}

// ---------------------------------------------------------------------------
// Linear models: every certified source is ||w_c - w_j||_q.

TEST(CertifiedSources, LinearModelGivesTheExactDualNorm) {
  torch::manual_seed(23);
  LayerList layers{linear(7, 5)};
  auto w = layers[0].weight.to(torch::kFloat64);
  auto x = torch::rand({6, 7}, kF64);
  auto c = torch::tensor({0, 1, 2, 3, 4, 0});
  auto targets = other_classes(c, 5);
  PreActivationBounds none;
  for (Norm p : all_norms()) {
    const Norm q = dual(p);
    auto diff = w.unsqueeze(1) - w.unsqueeze(0);
    auto exact = lp_norm(diff.reshape({25, 7}), q).view({5, 5});
    auto lipschitz = global_lipschitz(layers, {7}, p);
    EXPECT_TRUE(torch::allclose(lipschitz, exact, 1e-12, 0)) << norm_name(p);
    auto expected = exact.index_select(0, c).gather(1, targets);
    for (auto aware : kRelaxations) {
      auto bound = interval_jacobian_norm(layers, none, c, targets, q, aware);
      EXPECT_TRUE(torch::allclose(bound, expected, 1e-12, 0)) << norm_name(p);
    }
  }
}

// On a linear model with x on faces of D the bound is exactly ||h(w_c - w_j)||_q:
// a coordinate on the lower face counts only where w_c - w_j < 0, one on the
// upper face only where it is > 0. With a room radius (q = 1) each sign
// weighs its room toward the face.
TEST(CertifiedSources, LinearModelOnFacesGivesTheExactDirectionalNorm) {
  torch::manual_seed(31);
  LayerList layers{linear(7, 5)};
  auto w = layers[0].weight.to(torch::kFloat64);
  auto x = torch::rand({6, 7}, kF64);
  x.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, 3)}, 0.0);
  x.index_put_({torch::indexing::Slice(), torch::indexing::Slice(3, 5)}, 1.0);
  auto c = torch::tensor({0, 1, 2, 3, 4, 0});
  auto targets = other_classes(c, 5);
  auto diff = w.index_select(0, c).unsqueeze(1) - w.index_select(0, targets.flatten()).view({6, 4, 7});
  auto h = with_room(diff.unsqueeze(1), box_room(x, Box{0, 1})).squeeze(1);
  PreActivationBounds none;
  for (Norm q : all_norms()) {
    auto expected = lp_norm(h.reshape({24, 7}), q).view({6, 4});
    auto free = lp_norm(diff.reshape({24, 7}), q).view({6, 4});
    EXPECT_TRUE((expected < free).any().item<bool>());
    for (auto r : kRelaxations) {
      auto bound = interval_jacobian_norm(layers, none, c, targets, q, r, {7}, box_room(x, Box{0, 1}));
      EXPECT_TRUE(torch::allclose(bound, expected, 1e-12, 0)) << norm_name(q) << "\n" << bound << "\n" << expected;
    }
  }
  // With a room radius rho, q = 1: exactly sum_k down_k relu(w_k) + up_k
  // relu(-w_k), down_k = min(1, x_k / rho), up_k = min(1, (1 - x_k) / rho).
  auto rho = torch::full({6}, 0.4, kF64);
  auto down = (x / 0.4).clamp_max(1).unsqueeze(1);
  auto up = ((1 - x) / 0.4).clamp_max(1).unsqueeze(1);
  auto weighted = (down * diff.clamp_min(0) + up * (-diff).clamp_min(0)).sum(2);
  EXPECT_TRUE((weighted < lp_norm(h.reshape({24, 7}), Norm::L1).view({6, 4})).any().item<bool>());
  for (auto r : kRelaxations) {
    auto bound = interval_jacobian_norm(layers, none, c, targets, Norm::L1, r, {7}, box_room(x, Box{0, 1}, rho));
    EXPECT_TRUE(torch::allclose(bound, weighted, 1e-12, 0)) << relaxation_name(r) << "\n" << bound << "\n" << weighted;
  }
  testing::expect_error(
      [&] { interval_jacobian_norm(layers, none, c, targets, Norm::L1, JacobianRelaxation::Linear, {7}, torch::zeros({6, 7})); },
      {"room of shape"});
}

// ---------------------------------------------------------------------------
// Hein's closed form

Net hein_net(LayerKind act, uint64_t seed) {
  torch::manual_seed(seed);
  return {fmt::format("hein_{}_{}", layer_kind_name(act), seed),
          {centring(2), flatten(), linear(18, 10, 3.0), activation(act, 2.0), linear(10, 4, 3.0)},
          {2, 3, 3}};
}

// ||grad g_j(y)||_q and g_j(y) at points y [N, P, ...]: [N, P, m] each.
std::pair<torch::Tensor, torch::Tensor> margins_at(
    const LayerList& layers64, const torch::Tensor& y, const torch::Tensor& c,
    const torch::Tensor& targets, Norm q) {
  const int64_t n = y.size(0);
  const int64_t p = y.size(1);
  auto logits = run_layers(layers64, y.flatten(0, 1)).view({n, p, -1});
  auto g = logits.gather(2, c.view({n, 1, 1}).expand({n, p, 1})) -
      logits.gather(2, targets.unsqueeze(1).expand({n, p, targets.size(1)}));
  return {margin_gradient_norms(layers64, y, c, targets, q), g};
}

TEST(Hein, GradientBoundHoldsOnBallsOfEveryRadius) {
  for (auto act : {LayerKind::Softplus, LayerKind::Tanh}) {
    for (uint64_t seed : {0, 1, 2}) {
      const auto net = hein_net(act, seed);
      ASSERT_TRUE(is_one_hidden_layer_smooth(net.layers));
      auto layers64 = to_f64(net.layers);
      torch::manual_seed(seed + 100);
      auto x = torch::rand(batch_shape(3, net.shape), kF64);
      auto c = run_layers(layers64, x).argmax(1);
      auto targets = other_classes(c, 4);
      for (Norm p : all_norms()) {
        const Norm q = dual(p);
        auto terms = hein_terms(net.layers, x, c, targets, p);
        auto [norm_x, g_x] = margins_at(layers64, x.unsqueeze(1), c, targets, q);
        EXPECT_TRUE(torch::allclose(terms.g, g_x.squeeze(1), 1e-10, 1e-12)) << net.name;
        EXPECT_TRUE(torch::allclose(terms.a, norm_x.squeeze(1), 1e-6, 1e-6)) << net.name;
        EXPECT_TRUE((terms.a >= norm_x.squeeze(1) * (1 - 1e-12)).all().item<bool>());
        for (double radius : {0.01, 0.1, 1.0, 10.0}) {
          auto y = sample_ball(x, torch::full({3}, radius, kF64), p, 300);
          auto [norm_y, g_y] = margins_at(layers64, y, c, targets, q);
          auto distance = lp_norm((y - x.unsqueeze(1)).flatten(0, 1), p).view({3, 300, 1});
          auto allowed = terms.a.unsqueeze(1) + terms.b.unsqueeze(1) * distance;
          EXPECT_TRUE((norm_y <= allowed * (1 + 1e-10)).all().item<bool>())
              << net.name << " " << norm_name(p) << " R " << radius;
        }
      }
    }
  }
}

// b against an independent computation from the dense first-layer matrix.
TEST(Hein, CurvatureTermMatchesItsDefinition) {
  for (auto act : {LayerKind::Softplus, LayerKind::Tanh}) {
    const auto net = hein_net(act, 7);
    const double rho = act == LayerKind::Softplus ? 2.0 / 4 : 4.0 / (3.0 * std::sqrt(3.0));
    // The folded first layer: W diag(scale), the scale read off the channel
    // affine's dense matrix.
    auto scale = dense_matrix(net.layers[0], net.shape).diag();
    auto w_eff = net.layers[2].weight.to(torch::kFloat64) * scale.unsqueeze(0);
    auto u = net.layers[4].weight.to(torch::kFloat64);
    auto x = torch::rand(batch_shape(2, net.shape), kF64);
    auto c = torch::tensor({0, 3});
    auto targets = other_classes(c, 4);
    for (Norm p : all_norms()) {
      auto terms = hein_terms(net.layers, x, c, targets, p);
      for (int64_t n = 0; n < 2; ++n) {
        for (int64_t i = 0; i < 3; ++i) {
          auto du = (u[c[n].item<int64_t>()] - u[targets[n][i].item<int64_t>()]).abs();
          double expected = 0;
          if (p == Norm::L2) {
            auto m = w_eff.t().matmul(du.unsqueeze(1) * w_eff);
            expected = rho * torch::linalg::eigvalsh(m, "L").max().item<double>();
          } else {
            expected = rho * (du * lp_norm(w_eff, dual(p)).square()).sum().item<double>();
          }
          EXPECT_NEAR(terms.b[n][i].item<double>(), expected, 1e-8 * expected)
              << net.name << " " << norm_name(p);
        }
      }
    }
  }
}

// In one dimension at the activation's inflection point the curvature
// bound is attained: |g'(y) - g'(x)| / |y - x| -> b.
TEST(Hein, CurvatureConstantIsAttainedAtTheInflection) {
  for (auto act : {LayerKind::Softplus, LayerKind::Tanh}) {
    const double beta = 2.0;
    // z* maximises |s''|: softplus_beta at 0, tanh where tanh^2 = 1/3.
    const double z_star = act == LayerKind::Softplus ? 0.0 : std::atanh(1.0 / std::sqrt(3.0));
    LayerList layers{
        {LayerKind::Linear, torch::tensor({{1.5}}, kF64), torch::tensor({0.0}, kF64)},
        activation(act, beta),
        {LayerKind::Linear, torch::tensor({{2.0}, {-1.0}}, kF64), torch::zeros({2}, kF64)}};
    auto x = torch::tensor({{z_star / 1.5}}, kF64);
    auto c = torch::tensor({0});
    auto targets = torch::tensor({{1}});
    auto terms = hein_terms(layers, x, c, targets, Norm::L2);
    const double h = 1e-5;
    const double x0 = z_star / 1.5;
    auto points = torch::tensor({x0, x0 + h, x0 - h}, kF64).view({3, 1});
    auto jac = logit_jacobian(layers, points);                     // [3, 2, 1]
    auto slope = (jac.select(1, 0) - jac.select(1, 1)).squeeze(1);  // g' at x, x + h, x - h
    const double change = std::max(
        std::abs((slope[1] - slope[0]).item<double>()), std::abs((slope[2] - slope[0]).item<double>()));
    const double b = terms.b[0][0].item<double>();
    EXPECT_GE(b * h, change * (1 - 1e-6));
    EXPECT_NEAR(change / h, b, 1e-3 * b) << layer_kind_name(act);
  }
}

TEST(Hein, RadiusSolvesItsEquationAndIsSound) {
  for (auto act : {LayerKind::Softplus, LayerKind::Tanh}) {
    const auto net = hein_net(act, 9);
    auto layers64 = to_f64(net.layers);
    torch::manual_seed(31);
    auto x = torch::rand(batch_shape(6, net.shape), kF64);
    auto c = run_layers(layers64, x).argmax(1);
    auto targets = other_classes(c, 4);
    for (Norm p : all_norms()) {
      auto terms = hein_terms(net.layers, x, c, targets, p);
      auto r = terms.radius;
      ASSERT_TRUE((terms.g > 0).all().item<bool>());
      auto fixed = terms.g / (terms.a + terms.b * r);
      EXPECT_TRUE(torch::allclose(fixed, r, 1e-12, 0)) << net.name << " " << norm_name(p);
      // No point of B_p(x, min_j R*_j) changes the class: samples, and
      // projected descent on the smallest margin for L2 and Linf.
      auto radius = std::get<0>(r.min(1));
      auto y = sample_ball(x, radius, p, 2000);
      auto g_y = margins_at(layers64, y, c, targets, dual(p)).second;
      EXPECT_GT(g_y.min().item<double>(), 0) << net.name << " " << norm_name(p);
      if (p == Norm::L1) {
        continue;
      }
      auto z = x.clone();
      for (int step = 0; step < 100; ++step) {
        auto zg = z.detach().requires_grad_(true);
        auto logits = run_layers(layers64, zg);
        auto g = logits.gather(1, c.unsqueeze(1)) - logits.gather(1, targets);
        auto grad = torch::autograd::grad({std::get<0>(g.min(1)).sum()}, {zg})[0];
        auto rad = per_sample(radius, z);
        if (p == Norm::Linf) {
          z = (z - 0.05 * rad * grad.sign());
          z = torch::max(torch::min(z, x + rad), x - rad);
        } else {
          z = z - 0.05 * rad * grad / per_sample(lp_norm(grad, Norm::L2) + 1e-300, grad);
          auto offset = z - x;
          auto norm = per_sample(lp_norm(offset, Norm::L2), offset);
          z = x + offset * torch::clamp_max(rad / (norm + 1e-300), 1.0);
        }
      }
      auto logits = run_layers(layers64, z);
      auto g = logits.gather(1, c.unsqueeze(1)) - logits.gather(1, targets);
      EXPECT_GT(g.min().item<double>(), 0) << net.name << " " << norm_name(p) << " descent";
    }
  }
}

TEST(Hein, FlatDirectionsGiveInfiniteRadius) {
  auto net = hein_net(LayerKind::Tanh, 3);
  // Classes 0 and 1 share their output weights: g_1 = d_0 - d_1 is constant.
  net.layers[4].weight[1].copy_(net.layers[4].weight[0]);
  net.layers[4].bias[0] = 1.0;
  net.layers[4].bias[1] = 0.5;
  auto x = torch::rand(batch_shape(2, net.shape), kF64);
  auto c = torch::tensor({0, 0});
  auto targets = torch::tensor({{1, 2}, {1, 3}});
  for (Norm p : all_norms()) {
    auto terms = hein_terms(net.layers, x, c, targets, p);
    EXPECT_EQ(terms.b[0][0].item<double>(), 0.0);
    EXPECT_EQ(terms.a[0][0].item<double>(), 0.0);
    EXPECT_EQ(terms.radius[0][0].item<double>(), kInf);
    EXPECT_EQ(terms.radius[1][0].item<double>(), kInf);
    EXPECT_TRUE(std::isfinite(terms.radius[0][1].item<double>()));
  }
}

TEST(Hein, OtherNetworksAreRefusedByName) {
  auto relu = hein_net(LayerKind::Tanh, 1);
  relu.layers[3] = activation(LayerKind::ReLU);
  EXPECT_FALSE(is_one_hidden_layer_smooth(relu.layers));
  auto x = torch::rand(batch_shape(1, relu.shape), kF64);
  auto c = torch::tensor({0});
  auto targets = torch::tensor({{1}});
  testing::expect_error(
      [&] { hein_terms(relu.layers, x, c, targets, Norm::L2); },
      {"one-hidden-layer", "Linear(18->10), ReLU, Linear(10->4)"});
  EXPECT_FALSE(is_one_hidden_layer_smooth(dense_net(LayerKind::Softplus, 0).layers));
  testing::expect_error(
      [&] { hein_terms(dense_net(LayerKind::Softplus, 0).layers, x, c, targets, Norm::L2); },
      {"Softplus(beta 2), Linear(12->10), Softplus(beta 2)"});
  auto conv_first = hein_net(LayerKind::Tanh, 1);
  conv_first.layers.insert(conv_first.layers.begin() + 1, conv(2, 2, 1, 1, 0));
  EXPECT_FALSE(is_one_hidden_layer_smooth(conv_first.layers));
}

// ---------------------------------------------------------------------------
// The zoo: soundness on real networks, and what the sources cost.

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The first test images of the model's data set when fetched, else uniform noise.
torch::Tensor zoo_inputs(const Model& model, int64_t count) {
  const auto& shape = model.classifier.spec().shape;
  const std::string dataset = shape[0] == 3 ? "cifar10" : "mnist";
  try {
    return load_dataset(dataset, "test", default_data_dir()).images.slice(0, 0, count).to(torch::kFloat64);
  } catch (const Error&) {
    torch::manual_seed(37);
    return torch::rand(batch_shape(count, shape), kF64);
  }
}

TEST(CertifiedSources, ZooGlobalLipschitzBoundsSampledGradients) {
  for (const std::string name : {"mnist-mlp-relu", "mnist-cnn-softplus", "cifar10-cnn-relu"}) {
    auto model = load_model(name, "", torch::kCPU);
    ASSERT_TRUE(model.layers.has_value());
    const auto& layers = *model.layers;
    const auto& shape = model.classifier.spec().shape;
    auto x = zoo_inputs(model, 8);
    auto layers64 = to_f64(layers);
    for (Norm p : all_norms()) {
      std::vector<std::string> report;
      const auto start = std::chrono::steady_clock::now();
      auto lipschitz = global_lipschitz(layers, shape, p, &report);
      const double seconds = seconds_since(start);
      auto sampled = std::get<0>(pair_gradient_norms(layers64, x, dual(p)).max(0));
      EXPECT_TRUE((lipschitz >= sampled).all().item<bool>()) << name << " " << norm_name(p);
      std::cout << fmt::format(
          "[ zoo ] {} global Lipschitz {}: {:.3f} s, largest L[c][j] {:.4g}, largest sampled {:.4g}\n",
          name, norm_name(p), seconds, lipschitz.max().item<double>(), sampled.max().item<double>());
      if (p == Norm::L2 && name == "cifar10-cnn-relu") {
        for (const auto& line : report) {
          std::cout << "[ zoo ]   " << line << "\n";
        }
      }
    }
  }
}

// The interval Jacobian on pre-activation bounds from bounds/ibp.cpp and
// bounds/crown.cpp: sound at sampled points of the region, and what it costs
// for 10 samples x 9 classes.
TEST(CertifiedSources, ZooIntervalJacobianOnIbpAndCrownBounds) {
  struct Case {
    std::string model;
    Norm p;
    double eps;
    bool crown;
  };
  const std::vector<Case> cases{
      {"mnist-mlp-relu", Norm::Linf, 0.003, false}, {"mnist-mlp-relu", Norm::Linf, 0.003, true},
      {"mnist-mlp-relu", Norm::L2, 0.1, false},     {"mnist-mlp-softplus", Norm::Linf, 0.01, true},
      {"mnist-cnn-relu", Norm::Linf, 0.003, false}};
  for (const auto& row : cases) {
    auto model = load_model(row.model, "", torch::kCPU);
    const auto& layers = *model.layers;
    const auto& shape = model.classifier.spec().shape;
    auto layers64 = to_f64(layers);
    auto x = zoo_inputs(model, 10);
    auto c = run_layers(layers64, x).argmax(1);
    auto targets = other_classes(c, 10);
    auto region = Region::ball(x, torch::full({10}, row.eps, kF64), row.p, Box{0, 1});
    auto start = std::chrono::steady_clock::now();
    auto bounds = row.crown ? crown_bounds(layers, region) : ibp_bounds(layers, region);
    const double bound_seconds = seconds_since(start);
    torch::manual_seed(41);
    auto z = row.p == Norm::Linf ? box_points((x - row.eps).clamp(0, 1), (x + row.eps).clamp(0, 1), 60)
                                 : sample_ball(x, torch::full({10}, row.eps, kF64), row.p, 60).clamp(0, 1);
    auto gradients = margin_gradients(layers64, z, c, targets);
    for (Norm q : all_norms()) {
      auto sampled = std::get<0>(lp_norm(gradients.flatten(0, 2), q).view({10, -1, 9}).max(1));
      torch::Tensor plain;
      torch::Tensor previous;
      for (auto relaxation : kRelaxations) {
        const bool aware = relaxation != JacobianRelaxation::Interval;
        start = std::chrono::steady_clock::now();
        auto bound = interval_jacobian_norm(layers, bounds, c, targets, q, relaxation, shape);
        const double seconds = seconds_since(start);
        EXPECT_TRUE((bound >= sampled * (1 - 1e-9)).all().item<bool>())
            << row.model << " " << norm_name(q) << " " << relaxation_name(relaxation);
        if (!aware) {
          plain = bound;
        } else {
          EXPECT_TRUE((bound <= previous * (1 + 1e-9)).all().item<bool>())
              << row.model << " " << norm_name(q) << " " << relaxation_name(relaxation);
        }
        previous = bound;
        std::cout << fmt::format(
            "[ zoo ] {} B_{}(x, {}) {} ({:.2f} s), q={} {}: {:.3f} s for 10 x 9, median bound / "
            "sampled max {:.3g}{}\n",
            row.model, norm_name(row.p), row.eps, row.crown ? "CROWN" : "IBP", bound_seconds,
            norm_name(q), relaxation_name(relaxation), seconds,
            (bound / sampled).median().item<double>(),
            aware ? fmt::format(", median / plain {:.3f}", (bound / plain).median().item<double>())
                  : std::string());
      }
    }
  }
}

}  // namespace
}  // namespace bb
