// Pre-activation bounds (IBP and CROWN) and CROWN's margin lower bounds.
// Soundness is checked against the network itself: at thousands of points of
// each region (D, Linf, L2 and L1 balls ∩ the box, and batches mixing D with
// balls), inside and on its boundary, every pre-activation lies inside both
// intervals and every margin above CROWN's lower bound, for dense and
// strided, padded convolutional networks with ReLU, softplus (beta 1 and 10)
// and tanh; with one input coordinate, on a dense grid of the whole segment.
// CROWN lies inside IBP and is tighter at small radii; on affine models its
// margin bound is the exact minimum over the region, checked against
// independent scalar solvers (greedy for L1, bisection for L2 ∩ box); the
// CPU's fused loops agree with the tensor code; the zoo's MNIST networks get
// bounds in reasonable time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "bounds/preactivation.h"
#include "core/norm.h"
#include "core/region.h"
#include "datasets/dataset.h"
#include "models/layers.h"
#include "models/zoo.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kTol = 1e-9;

// Weights and biases ~ N(0, gain^2 / fan_in), float32 like the zoo's (the
// bounds convert them; float32 -> float64 is exact).
Layer random_linear(int64_t in, int64_t out, double gain) {
  return {LayerKind::Linear, torch::randn({out, in}) * (gain / std::sqrt(double(in))),
          torch::randn({out}) * 0.3};
}

Layer random_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding, double gain) {
  Layer layer{LayerKind::Conv2d, torch::randn({out, in, k, k}) * (gain / std::sqrt(double(in * k * k))),
              torch::randn({out}) * 0.3};
  layer.stride = {stride, stride};
  layer.padding = {padding, padding};
  return layer;
}

Layer activation(LayerKind kind, double beta) {
  Layer layer{kind, {}, {}};
  layer.beta = beta;
  return layer;
}

// The zoo's normalisation in front: (x - mean) / std per channel.
Layer normalisation(const std::vector<double>& mean, const std::vector<double>& stddev) {
  auto m = torch::tensor(mean, torch::kFloat32);
  auto s = torch::tensor(stddev, torch::kFloat32);
  return {LayerKind::ChannelAffine, 1 / s, -m / s};
}

struct Net {
  LayerList layers;
  std::vector<int64_t> input;  // per-sample input shape
};

Net dense_net(LayerKind act, double beta, uint64_t seed) {
  torch::manual_seed(seed);
  Net net{{}, {1, 5, 5}};
  net.layers.push_back(normalisation({0.13}, {0.31}));
  net.layers.push_back({LayerKind::Flatten, {}, {}});
  net.layers.push_back(random_linear(25, 16, 1.0));
  net.layers.push_back(activation(act, beta));
  net.layers.push_back(random_linear(16, 12, 1.5));
  net.layers.push_back(activation(act, beta));
  net.layers.push_back(random_linear(12, 4, 1.5));
  return net;
}

// 2x7x7 -> conv 3x3 stride 2 pad 1 -> 4x4x4 -> conv 3x3 stride 1 pad 1 ->
// 5x4x4 -> batch norm (unfolded, some scales negative) -> conv 2x2 stride 2
// pad 0 -> 3x2x2 -> fc 10 -> fc 4.
Net conv_net(LayerKind act, double beta, uint64_t seed) {
  torch::manual_seed(seed);
  Net net{{}, {2, 7, 7}};
  net.layers.push_back(normalisation({0.4, 0.5}, {0.25, 0.2}));
  net.layers.push_back(random_conv(2, 4, 3, 2, 1, 1.0));
  net.layers.push_back(activation(act, beta));
  net.layers.push_back(random_conv(4, 5, 3, 1, 1, 1.5));
  net.layers.push_back({LayerKind::ChannelAffine, torch::randn({5}), torch::randn({5}) * 0.3});
  net.layers.push_back(activation(act, beta));
  net.layers.push_back(random_conv(5, 3, 2, 2, 0, 1.5));
  net.layers.push_back(activation(act, beta));
  net.layers.push_back({LayerKind::Flatten, {}, {}});
  net.layers.push_back(random_linear(12, 10, 1.5));
  net.layers.push_back(activation(act, beta));
  net.layers.push_back(random_linear(10, 4, 1.5));
  return net;
}

LayerList to_float64(const LayerList& layers) {
  LayerList out = layers;
  for (auto& layer : out) {
    if (layer.weight.defined()) {
      layer.weight = layer.weight.to(torch::kFloat64);
    }
    if (layer.bias.defined()) {
      layer.bias = layer.bias.to(torch::kFloat64);
    }
  }
  return out;
}

// Centres in [0, 1] with a third of the pixels at 0 and a tenth at 1, as in
// images, so that the box cuts the balls.
torch::Tensor centres(int64_t n, const std::vector<int64_t>& shape) {
  std::vector<int64_t> sizes{n};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  auto x = torch::rand(sizes, torch::kFloat64);
  auto u = torch::rand(sizes, torch::kFloat64);
  x = torch::where(u < 0.33, torch::zeros_like(x), x);
  return torch::where(u > 0.9, torch::ones_like(x), x);
}

// [N, P, ...] points of the region, the centre first: uniform draws (in the
// ball, clipped to the box; in the box where the radius is infinite) and
// points on its boundary: random vertices of the hull where the hull is the
// region (D, Linf), and projections of far points, dense and sparse (the
// sparse ones land near the L1 ball's vertices).
torch::Tensor region_points(const Region& region, int64_t draws, int64_t boundary) {
  const auto& x = region.center();
  const int64_t n = x.size(0);
  const auto radius = region.radius();
  const Box box = region.box();
  auto infinite = torch::isinf(radius);
  auto per = [&](const torch::Tensor& v) {
    std::vector<int64_t> s(x.dim() + 1, 1);
    s[0] = n;
    return v.view(s);
  };
  auto xs = x.unsqueeze(1);
  auto shape = xs.sizes().vec();
  shape[1] = draws;
  auto finite_radius = torch::where(infinite, torch::zeros_like(radius), radius);
  auto inside = torch::where(
      per(infinite), box.lo + (box.hi - box.lo) * torch::rand(shape, x.options()),
      sample_ball(x, finite_radius, region.norm(), draws).clamp(box.lo, box.hi));
  shape[1] = boundary;
  auto lo = (xs - per(radius)).clamp_min(box.lo);
  auto hi = (xs + per(radius)).clamp_max(box.hi);
  auto vertices = torch::where(torch::rand(shape, x.options()) < 0.5, lo, hi);
  if (region.norm() != Norm::Linf) {
    vertices = torch::where(per(infinite), vertices, xs);  // a ball's hull is larger than it
  }
  std::vector<torch::Tensor> parts{xs, inside, vertices};
  auto dense = xs + 10 * torch::randn(shape, x.options());
  auto mask = (torch::rand(shape, x.options()) < 0.05).to(x.scalar_type());
  auto sparse = xs + 10 * torch::randn(shape, x.options()) * mask;
  for (const auto& far : {dense, sparse}) {
    auto flat_x = xs.expand(shape).flatten(0, 1);
    auto r = radius.repeat_interleave(boundary);
    parts.push_back(project_ball_box(flat_x, far.flatten(0, 1), r, region.norm(), box).view(shape));
  }
  return torch::cat(parts, 1);
}

struct Violations {
  double ibp = 0;    // max over points and neurons of how far outside
  double crown = 0;
  double margin = 0; // max of (CROWN margin bound - true margin)
};

double outside(const torch::Tensor& z, const torch::Tensor& lower, const torch::Tensor& upper) {
  auto l = lower.unsqueeze(1);
  auto u = upper.unsqueeze(1);
  return torch::maximum(l - z, z - u).max().item<double>();
}

// Runs the float64 network on every point and measures how far any
// pre-activation leaves either interval, and how far CROWN's margin bound
// exceeds the smallest margin seen.
// points: [N, P, ...], the first point of each sample its centre.
Violations check_points(const Net& net, const Region& region, const torch::Tensor& points) {
  auto ibp = ibp_bounds(net.layers, region);
  auto crown = crown_bounds(net.layers, region);
  auto layers = to_float64(net.layers);
  const int64_t n = points.size(0);
  const int64_t p = points.size(1);
  auto h = points.flatten(0, 1);
  Violations v;
  v.ibp = v.crown = v.margin = -kInf;
  size_t k = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (is_activation(layers[i].kind)) {
      EXPECT_EQ(ibp.layer.at(k), static_cast<int64_t>(i));
      EXPECT_EQ(crown.layer.at(k), static_cast<int64_t>(i));
      auto s = h.sizes().vec();  // [N * P, ...] -> [N, P, ...]
      s[0] = p;
      s.insert(s.begin(), n);
      auto z = h.view(s);
      v.ibp = std::max(v.ibp, outside(z, ibp.lower[k], ibp.upper[k]));
      v.crown = std::max(v.crown, outside(z, crown.lower[k], crown.upper[k]));
      // CROWN's interval inside IBP's.
      EXPECT_TRUE((crown.lower[k] >= ibp.lower[k] - 1e-12).all().item<bool>()) << "layer " << i;
      EXPECT_TRUE((crown.upper[k] <= ibp.upper[k] + 1e-12).all().item<bool>()) << "layer " << i;
      ++k;
    }
    h = layers[i].forward(h);
  }
  EXPECT_EQ(k, crown.layer.size());
  auto logits = h.view({n, p, -1});
  const int64_t classes = logits.size(2);
  auto c = logits.select(1, 0).argmax(1);  // the first point is the centre
  auto all = torch::arange(classes).unsqueeze(0).expand({n, classes});
  auto keep = all != c.unsqueeze(1);
  auto targets = all.masked_select(keep).view({n, classes - 1});
  auto bound = crown_margin_lower(net.layers, region, crown, c, targets);  // [N, m]
  auto fc = logits.gather(2, c.view({n, 1, 1}).expand({n, p, 1}));
  auto fj = logits.gather(2, targets.unsqueeze(1).expand({n, p, classes - 1}));
  auto smallest = std::get<0>((fc - fj).min(1));  // [N, m]
  v.margin = (bound - smallest).max().item<double>();
  return v;
}

Violations check_region(const Net& net, const Region& region, int64_t draws, int64_t boundary) {
  return check_points(net, region, region_points(region, draws, boundary));
}

std::vector<Region> regions_for(const torch::Tensor& x) {
  const Box box{0, 1};
  const int64_t n = x.size(0);
  std::vector<Region> regions;
  regions.push_back(Region::ball(x, torch::full({n}, kInf, x.options()), Norm::Linf, box));
  regions.push_back(Region::ball(x, torch::tensor({0.02, 0.2, 0.05}, x.options()), Norm::Linf, box));
  regions.push_back(Region::ball(x, torch::tensor({0.1, 1.0, 0.4}, x.options()), Norm::L2, box));
  regions.push_back(Region::ball(x, torch::tensor({0.3, 3.0, 1.0}, x.options()), Norm::L1, box));
  regions.push_back(Region::ball(x, torch::full({n}, kInf, x.options()), Norm::L2, box));
  // D for some samples, a ball for others, in one batch.
  regions.push_back(Region::ball(x, torch::tensor({0.5, kInf, 0.1}, x.options()), Norm::L2, box));
  regions.push_back(Region::ball(x, torch::tensor({kInf, 2.0, 0.2}, x.options()), Norm::L1, box));
  return regions;
}

struct ActivationCase {
  LayerKind kind;
  double beta;
  const char* name;
};

const std::vector<ActivationCase> kActivations = {
    {LayerKind::ReLU, 1.0, "ReLU"},
    {LayerKind::Softplus, 1.0, "Softplus(1)"},
    {LayerKind::Softplus, 10.0, "Softplus(10)"},
    {LayerKind::Tanh, 1.0, "Tanh"},
};

void check_family(Net (*make)(LayerKind, double, uint64_t), const char* family) {
  for (const auto& act : kActivations) {
    for (uint64_t seed : {1, 2, 3}) {
      Net net = make(act.kind, act.beta, seed);
      auto x = centres(3, net.input);
      for (const auto& region : regions_for(x)) {
        auto v = check_region(net, region, 1000, 300);
        const std::string what = std::string(family) + " " + act.name + " seed " +
            std::to_string(seed) + " " + region.describe() + " " + norm_name(region.norm());
        EXPECT_LE(v.ibp, kTol) << what;
        EXPECT_LE(v.crown, kTol) << what;
        EXPECT_LE(v.margin, kTol) << what;
      }
    }
  }
}

TEST(PreActivation, DenseNetworksHoldEveryPointInsideBothBounds) {
  check_family(dense_net, "dense");
}

TEST(PreActivation, ConvNetworksHoldEveryPointInsideBothBounds) {
  check_family(conv_net, "conv");
}

// The CPU's fused row loops and the tensor code other devices run give the
// same bounds.
TEST(PreActivation, FusedCpuKernelsMatchTheTensorCode) {
  for (auto make : {dense_net, conv_net}) {
    for (const auto& act : kActivations) {
      Net net = make(act.kind, act.beta, 4);
      auto x = centres(3, net.input);
      for (const auto& region : regions_for(x)) {
        auto c = torch::tensor({0, 1, 2}, torch::kInt64);
        auto targets = torch::tensor({{1, 2, 3}, {0, 2, 3}, {0, 1, 3}}, torch::kInt64);
        detail::use_fused_crown_kernels(false);
        auto tensor = crown_bounds(net.layers, region);
        auto tensor_margin = crown_margin_lower(net.layers, region, tensor, c, targets);
        detail::use_fused_crown_kernels(true);
        auto fused = crown_bounds(net.layers, region);
        auto fused_margin = crown_margin_lower(net.layers, region, fused, c, targets);
        for (size_t k = 0; k < fused.layer.size(); ++k) {
          EXPECT_TRUE(torch::allclose(fused.lower[k], tensor.lower[k], 0, 1e-12)) << act.name << " " << k;
          EXPECT_TRUE(torch::allclose(fused.upper[k], tensor.upper[k], 0, 1e-12)) << act.name << " " << k;
        }
        EXPECT_TRUE(torch::allclose(fused_margin, tensor_margin, 0, 1e-12)) << act.name;
      }
    }
  }
}

// One input coordinate: the whole region is a segment, checked on a grid of
// 5,001 points, so every relaxation is tested against its function nearly
// everywhere, on intervals of every kind (negative, positive, across zero,
// narrow and wide: first-layer weights and biases ~ N(0, 4)).
TEST(PreActivation, OneInputCoordinateIsCheckedOnADenseGrid) {
  const Box box{-3, 3};
  for (const auto& act : kActivations) {
    for (uint64_t seed : {1, 2}) {
      torch::manual_seed(seed);
      Net net{{}, {1}};
      net.layers.push_back({LayerKind::Linear, torch::randn({64, 1}) * 2, torch::randn({64}) * 2});
      net.layers.push_back(activation(act.kind, act.beta));
      net.layers.push_back(random_linear(64, 32, 1.5));
      net.layers.push_back(activation(act.kind, act.beta));
      net.layers.push_back(random_linear(32, 4, 1.5));
      auto x = torch::rand({6, 1}, torch::kFloat64) * 6 - 3;
      for (double r : {0.05, 0.5, kInf}) {
        auto region = Region::ball(x, torch::full({6}, r, torch::kFloat64), Norm::Linf, box);
        auto lo = (x - r).clamp_min(box.lo);
        auto hi = (x + r).clamp_max(box.hi);
        auto t = torch::linspace(0, 1, 5001, torch::kFloat64).view({1, -1});
        auto grid = torch::cat({x, lo + t * (hi - lo)}, 1).unsqueeze(2);  // [6, 5002, 1]
        auto v = check_points(net, region, grid);
        const std::string what = std::string(act.name) + " seed " + std::to_string(seed) + " R " + std::to_string(r);
        EXPECT_LE(v.ibp, kTol) << what;
        EXPECT_LE(v.crown, kTol) << what;
        EXPECT_LE(v.margin, kTol) << what;
      }
    }
  }
}

// The checks above can fail: shrinking an interval by a little lets points out.
TEST(PreActivation, TheSoundnessCheckCatchesAnIntervalTooTight) {
  Net net = dense_net(LayerKind::Tanh, 1.0, 5);
  auto x = centres(3, net.input);
  auto region = Region::ball(x, torch::tensor({0.1, 0.1, 0.1}, torch::kFloat64), Norm::Linf, Box{0, 1});
  auto bounds = crown_bounds(net.layers, region);
  auto points = region_points(region, 1000, 300);
  auto h = run_layers(to_float64({net.layers[0], net.layers[1], net.layers[2]}), points.flatten(0, 1))
               .view({3, points.size(1), -1});
  auto width = bounds.upper[0] - bounds.lower[0];
  EXPECT_LE(outside(h, bounds.lower[0], bounds.upper[0]), kTol);
  EXPECT_GT(outside(h, bounds.lower[0] + 0.1 * width, bounds.upper[0]), 1e-3);
  EXPECT_GT(outside(h, bounds.lower[0], bounds.upper[0] - 0.1 * width), 1e-3);
}

// Mean interval width over the activations after the first (the first one's
// CROWN bound over an Linf box is IBP's: both exact for one affine map), over
// the neurons IBP leaves unstable for ReLU (CROWN bounds only those: a stable
// ReLU's bounds are never read), over all neurons for softplus and tanh.
struct Width {
  double mean = 0;
  int64_t neurons = 0;
};

Width mean_width(const PreActivationBounds& b, const PreActivationBounds& ibp, bool relu) {
  double total = 0;
  int64_t count = 0;
  for (size_t k = 1; k < b.layer.size(); ++k) {
    auto mask = relu ? (ibp.lower[k] < 0) & (ibp.upper[k] > 0) : torch::ones_like(ibp.lower[k]).to(torch::kBool);
    total += (b.upper[k] - b.lower[k]).masked_select(mask).sum().item<double>();
    count += mask.sum().item<int64_t>();
  }
  return {total / std::max<int64_t>(count, 1), count};
}

TEST(PreActivation, CrownIsTighterThanIbpAtSmallRadius) {
  for (auto make : {dense_net, conv_net}) {
    for (const auto& act : kActivations) {
      Net net = make(act.kind, act.beta, 7);
      auto x = centres(4, net.input);
      for (Norm p : all_norms()) {
        const double r = p == Norm::Linf ? 0.01 : p == Norm::L2 ? 0.05 : 0.1;
        auto region = Region::ball(x, torch::full({4}, r, torch::kFloat64), p, Box{0, 1});
        const bool relu = act.kind == LayerKind::ReLU;
        auto ibp_bound = ibp_bounds(net.layers, region);
        const auto ibp = mean_width(ibp_bound, ibp_bound, relu);
        const auto crown = mean_width(crown_bounds(net.layers, region), ibp_bound, relu);
        ASSERT_GT(ibp.neurons, 0) << act.name << " " << norm_name(p);
        EXPECT_LT(crown.mean, 0.9 * ibp.mean)
            << act.name << " " << norm_name(p) << ": CROWN " << crown.mean << " vs IBP " << ibp.mean
            << " over " << ibp.neurons << " neurons";
      }
    }
  }
}

// Exact minimum of <a, z> over {z in [lo, hi] : ||z - x||_p <= R}, row by row
// in scalar code: the hull's corner for Linf and D, the greedy fill by
// decreasing |a_i| for L1, and for L2 the point clamp(x - t a, lo, hi) with
// the t that spends the budget, found by bisection.
double exact_linear_min(const std::vector<double>& a, const std::vector<double>& x, double R, Norm p) {
  const size_t d = a.size();
  std::vector<double> room(d);
  double value = 0;
  for (size_t i = 0; i < d; ++i) {
    const double lo = std::max(x[i] - R, 0.0);
    const double hi = std::min(x[i] + R, 1.0);
    room[i] = a[i] > 0 ? x[i] - lo : hi - x[i];
    value += a[i] * x[i];
  }
  if (p == Norm::Linf || std::isinf(R)) {
    for (size_t i = 0; i < d; ++i) {
      value -= std::abs(a[i]) * room[i];
    }
    return value;
  }
  if (p == Norm::L1) {
    std::vector<size_t> order(d);
    for (size_t i = 0; i < d; ++i) {
      order[i] = i;
    }
    std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return std::abs(a[i]) > std::abs(a[j]); });
    double budget = R;
    for (size_t i : order) {
      const double step = std::min(budget, room[i]);
      value -= std::abs(a[i]) * step;
      budget -= step;
    }
    return value;
  }
  auto spent = [&](double t) {
    double s = 0;
    for (size_t i = 0; i < d; ++i) {
      const double m = std::min(t * std::abs(a[i]), room[i]);
      s += m * m;
    }
    return s;
  };
  double lo = 0;
  double hi = 1;
  while (spent(hi) < R * R && hi < 1e12) {
    hi *= 2;
  }
  for (int k = 0; k < 200; ++k) {
    const double mid = (lo + hi) / 2;
    (spent(mid) < R * R ? lo : hi) = mid;
  }
  for (size_t i = 0; i < d; ++i) {
    value -= std::abs(a[i]) * std::min(lo * std::abs(a[i]), room[i]);
  }
  return value;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

TEST(PreActivation, MarginBoundIsExactOnAffineModels) {
  torch::manual_seed(11);
  // One Linear layer on flat inputs, and normalisation + flatten + linear on
  // images (an affine map too): no activation, so CROWN only concretises.
  std::vector<Net> nets;
  nets.push_back({{random_linear(20, 5, 1.0)}, {20}});
  nets.push_back({{normalisation({0.3, 0.6}, {0.2, 0.4}), {LayerKind::Flatten, {}, {}}, random_linear(18, 5, 1.0)},
                  {2, 3, 3}});
  for (const auto& net : nets) {
    auto x = centres(4, net.input);
    const int64_t d = x[0].numel();
    // The affine map's rows: f(z) = W z + b with W from the unit vectors.
    auto layers = to_float64(net.layers);
    std::vector<int64_t> basis_shape{d};
    basis_shape.insert(basis_shape.end(), net.input.begin(), net.input.end());
    auto zero = torch::zeros(basis_shape, torch::kFloat64).narrow(0, 0, 1);
    auto b = run_layers(layers, zero).squeeze(0);
    auto W = (run_layers(layers, torch::eye(d, torch::kFloat64).view(basis_shape)) - b).t();  // [K, d]
    auto c = torch::tensor({0, 1, 2, 3}, torch::kInt64);
    auto targets = torch::tensor({{1, 2, 4}, {0, 3, 4}, {0, 1, 2}, {4, 2, 2}}, torch::kInt64);
    for (Norm p : all_norms()) {
      for (double r : {0.05, 0.5, 2.0, kInf}) {
        auto region = Region::ball(x, torch::full({4}, r, torch::kFloat64), p, Box{0, 1});
        auto bounds = crown_bounds(net.layers, region);
        auto lower = crown_margin_lower(net.layers, region, bounds, c, targets);
        for (int64_t s = 0; s < 4; ++s) {
          for (int64_t j = 0; j < 3; ++j) {
            const int64_t cs = c[s].item<int64_t>();
            const int64_t t = targets[s][j].item<int64_t>();
            auto a = to_vector(W[cs] - W[t]);
            const double offset = (b[cs] - b[t]).item<double>();
            const double exact = exact_linear_min(a, to_vector(x[s]), r, p) + offset;
            EXPECT_NEAR(lower[s][j].item<double>(), exact, 1e-9)
                << norm_name(p) << " R " << r << " sample " << s << " target " << t;
          }
        }
      }
    }
  }
}

// The zoo's ReLU MLP at Linf 0.01 around MNIST test images (uniform random
// images when MNIST is not fetched): CROWN in reasonable time, sound at
// sampled points, fewer unstable ReLUs than IBP.
torch::Tensor mnist_images(int64_t count) {
  const auto dir = default_data_dir();
  if (std::filesystem::exists(std::filesystem::path(dir) / "mnist" / "t10k-images-idx3-ubyte")) {
    return load_dataset("mnist", "test", dir).images.slice(0, 0, count);
  }
  return torch::rand({count, 1, 28, 28});
}

int64_t unstable(const PreActivationBounds& b) {
  int64_t count = 0;
  for (size_t k = 0; k < b.layer.size(); ++k) {
    count += ((b.lower[k] < 0) & (b.upper[k] > 0)).sum().item<int64_t>();
  }
  return count;
}

void zoo_case(const std::string& name, int64_t max_seconds) {
  auto model = load_model(name, "", torch::kCPU);
  ASSERT_TRUE(model.layers.has_value());
  const auto& layers = *model.layers;
  auto x = mnist_images(10).to(torch::kFloat64);
  auto region = Region::ball(x, torch::full({10}, 0.01, torch::kFloat64), Norm::Linf, Box{0, 1});
  auto ibp = ibp_bounds(layers, region);
  auto start = std::chrono::steady_clock::now();
  auto crown = crown_bounds(layers, region);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto c = run_layers(to_float64(layers), x).argmax(1);
  auto targets = (c.unsqueeze(1) + torch::arange(1, 10).unsqueeze(0)) % 10;
  auto margin = crown_margin_lower(layers, region, crown, c, targets);
  const double ibp_unstable = double(unstable(ibp)) / 10;
  const double crown_unstable = double(unstable(crown)) / 10;
  int64_t neurons = 0;
  for (const auto& l : crown.lower) {
    neurons += l[0].numel();
  }
  std::printf(
      "%s, 10 images, Linf 0.01: CROWN %.2f s; unstable activations per image (of %lld): "
      "IBP %.1f, CROWN %.1f; certified (margin bound > 0): %lld of 10\n",
      name.c_str(), seconds, static_cast<long long>(neurons), ibp_unstable, crown_unstable,
      static_cast<long long>((std::get<0>(margin.min(1)) > 0).sum().item<int64_t>()));
  EXPECT_LT(seconds, max_seconds);
  EXPECT_LT(crown_unstable, ibp_unstable);
  // Sound at sampled points of the ball (uniform and vertices).
  auto points = region_points(region, 100, 100);
  auto h = points.flatten(0, 1);
  auto layers64 = to_float64(layers);
  size_t k = 0;
  for (size_t i = 0; i < layers64.size(); ++i) {
    if (is_activation(layers64[i].kind)) {
      auto s = h.sizes().vec();
      s[0] = points.size(1);
      s.insert(s.begin(), 10);
      EXPECT_LE(outside(h.view(s), crown.lower[k], crown.upper[k]), kTol) << name << " layer " << i;
      ++k;
    }
    h = layers64[i].forward(h);
  }
  auto logits = h.view({10, points.size(1), 10});
  auto fc = logits.gather(2, c.view({10, 1, 1}).expand({10, points.size(1), 1}));
  auto fj = logits.gather(2, targets.unsqueeze(1).expand({10, points.size(1), 9}));
  EXPECT_LE((margin - std::get<0>((fc - fj).min(1))).max().item<double>(), kTol);
}

TEST(PreActivation, ZooMnistMlpAtLinfOneHundredth) {
  zoo_case("mnist-mlp-relu", 20);
}

TEST(PreActivation, ZooMnistCnnAtLinfOneHundredth) {
  zoo_case("mnist-cnn-relu", 120);
}

}  // namespace
}  // namespace bb
