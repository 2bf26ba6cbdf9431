#include "bounds/interval_jacobian.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <tuple>

#include <torch/torch.h>

#include "bounds/operator_norm.h"
#include "core/error.h"

namespace bb {
namespace {

namespace F = torch::nn::functional;

constexpr double kInf = std::numeric_limits<double>::infinity();
// Relative outward widening of the smooth activations' derivative intervals.
constexpr double kWiden = 1e-12;
// Elements of one functional chunk at the widest layer (sign_aware): 32 MiB.
constexpr int64_t kChunkElements = int64_t{1} << 22;

// The derivative interval, its layer, and (sign_aware) the interval of the
// gradient arriving at the activation's output.
struct ActivationState {
  torch::Tensor dl;  // [N, 1, ...]: broadcasts over the m rows of a sample
  torch::Tensor du;
  torch::Tensor lo;  // [N, m, ...]
  torch::Tensor hi;
  // The merged forms' step (see merge_coefficients), [N, m, 1, ...]: a
  // functional's entry v becomes pos v (v >= 0) or neg v (v < 0) and adds the
  // constant cpos v or -cneg v.
  torch::Tensor pos;
  torch::Tensor neg;
  torch::Tensor cpos;
  torch::Tensor cneg;
};

// [1, 1, ..., C, 1, ...] with C at `dim`, to scale the channel `dim` of a
// tensor with `rank` dimensions.
torch::Tensor channel_view(const torch::Tensor& scale, int64_t rank, int64_t dim) {
  std::vector<int64_t> shape(rank, 1);
  shape[dim] = scale.numel();
  return scale.reshape(shape);
}

std::vector<int64_t> with_prefix(std::vector<int64_t> prefix, const std::vector<int64_t>& shape) {
  prefix.insert(prefix.end(), shape.begin(), shape.end());
  return prefix;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto s : shape) {
    n *= s;
  }
  return n;
}

// One input's shape from the bounds: walk back from the first activation's
// input (or the logits) through the linear layers before it.
std::vector<int64_t> infer_input_shape(const LayerList& layers, const PreActivationBounds& bounds) {
  size_t start = layers.size();
  std::vector<int64_t> shape;
  if (!bounds.layer.empty()) {
    start = static_cast<size_t>(bounds.layer.front());
    shape.assign(bounds.lower.front().sizes().begin() + 1, bounds.lower.front().sizes().end());
  } else {
    BB_CHECK(
        layers.back().kind == LayerKind::Linear,
        "interval Jacobian: cannot infer the input shape of a chain that ends with {}; pass it",
        layers.back().describe());
    shape = {layers.back().weight.size(0)};
  }
  for (size_t i = start; i-- > 0;) {
    const Layer& layer = layers[i];
    switch (layer.kind) {
      case LayerKind::Linear:
        shape = {layer.weight.size(1)};
        break;
      case LayerKind::ChannelAffine:
        break;
      case LayerKind::Conv2d: {
        BB_CHECK(
            layer.stride[0] == 1 && layer.stride[1] == 1 && shape.size() == 3,
            "interval Jacobian: the input shape is ambiguous across layer {} ({}), a strided "
            "convolution before the first activation; pass input_shape",
            i, layer.describe());
        shape = {layer.weight.size(1),
                 shape[1] + layer.weight.size(2) - 1 - 2 * layer.padding[0],
                 shape[2] + layer.weight.size(3) - 1 - 2 * layer.padding[1]};
        break;
      }
      case LayerKind::Flatten: {
        // Only channel scalings may come before: any [C, rest] layout then
        // gives the same gradient entries.
        int64_t channels = 1;
        for (size_t k = 0; k < i; ++k) {
          BB_CHECK(
              layers[k].kind == LayerKind::ChannelAffine,
              "interval Jacobian: the input shape is ambiguous across layer {} ({}); pass "
              "input_shape",
              k, layers[k].describe());
          channels = std::max<int64_t>(channels, layers[k].weight.numel());
        }
        const int64_t features = numel_of(shape);
        BB_CHECK(
            features % channels == 0,
            "interval Jacobian: {} features do not split into {} channels",
            features, channels);
        shape = channels == 1 ? std::vector<int64_t>{features}
                              : std::vector<int64_t>{channels, features / channels};
        break;
      }
      default:
        BB_ASSERT(false, "activation {} before the first one", i);
    }
  }
  return shape;
}

// x * dl, x * du for an interval [lo, hi] and dl >= 0: the exact product.
std::pair<torch::Tensor, torch::Tensor> interval_product(
    const torch::Tensor& lo,
    const torch::Tensor& hi,
    const torch::Tensor& dl,
    const torch::Tensor& du) {
  return {torch::min(lo * dl, lo * du), torch::max(hi * dl, hi * du)};
}

// ---- The plain backward pass in float32 with outward rounding (CPU) ----
//
// Where the backward pass reaches the first activation (from the logits),
// the rows leave float64 for float32, and every float32 operation after
// that is followed by an outward step large enough to cover its rounding:
// 4u relative (u = 2^-24, so 3u to spare for the step's own rounding) plus
// an absolute 1e-36, above float32's smallest normal number (1.2e-38, which
// bounds the error of an underflow, flushed to zero or not). A product
// with n terms per output (a matrix product or a transposed convolution:
// any order of summation, fused or not) errs by at most
// gamma_n |W|^T |mid| (Higham, Accuracy and Stability, §3.1), gamma_n = n u
// / (1 - n u), so after mid' = W^T mid the radius becomes
// |W|^T (rad + g |mid|) (1 + 2g) plus (n + 1) 1e-36 for underflows, with
// g = gamma_{n+4}: the four extra cover the weights' own rounding to float32
// (when they were float64) and the rounding of the radius's product
// itself, whose terms are all non-negative. The derivative intervals are
// rounded outward to float32 where the conversion is inexact. Only on the
// CPU: cuDNN may pick algorithms (FFT, Winograd) or TF32 arithmetic that
// this bound does not cover, so other devices stay in float64.
constexpr float kOutward = 2.384185791015625e-07f;  // 4 * 2^-24
constexpr float kTiny = 1e-36f;
bool float32_backward = true;

inline float up(float x) {
  return x + (std::fabs(x) * kOutward + kTiny);
}
inline float down(float x) {
  return x - (std::fabs(x) * kOutward + kTiny);
}

// gamma_{n+4} for float32.
double product_gamma(int64_t n) {
  const double nu = static_cast<double>(n + 4) * std::ldexp(1.0, -24);
  return nu / (1 - nu);
}

// rad + g |mid|, rounded upward, elementwise (float32, contiguous).
torch::Tensor widened_radius(const torch::Tensor& mid, const torch::Tensor& rad, double gamma) {
  auto m = mid.contiguous();
  auto r = rad.contiguous();
  auto out = torch::empty_like(m);
  const float* pm = m.data_ptr<float>();
  const float* pr = r.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const float g = static_cast<float>(gamma);
  at::parallel_for(0, m.numel(), 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      po[i] = up(pr[i] + g * std::fabs(pm[i]));
    }
  });
  return out;
}

// The radius after the product: the product of |W| with widened_radius,
// times (1 + 2g), rounded upward, plus (n + 1) 1e-36.
torch::Tensor finished_radius(const torch::Tensor& product, double gamma, int64_t n) {
  auto p = product.contiguous();
  const float scale = static_cast<float>(1 + 2 * gamma);
  const float floor = static_cast<float>(n + 1) * kTiny;
  float* pp = p.data_ptr<float>();
  at::parallel_for(0, p.numel(), 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      pp[i] = up(pp[i] * scale) + floor;
    }
  });
  return p;
}

// [dl, du] (float64, [N, 1, ...]) as float32 intervals that contain them.
std::pair<torch::Tensor, torch::Tensor> float32_derivatives(const torch::Tensor& dl, const torch::Tensor& du) {
  auto l = dl.to(torch::kFloat32);
  auto u = du.to(torch::kFloat32);
  l = torch::where(l.to(torch::kFloat64) > dl, torch::nextafter(l, torch::zeros_like(l)), l);
  u = torch::where(u.to(torch::kFloat64) < du, torch::nextafter(u, torch::full_like(u, 2.0f)), u);
  return {l.contiguous(), u.contiguous()};
}

// One activation of the float32 backward pass: the gradient interval
// [mid - rad, mid + rad] (rows [N, m, F]) times the derivative interval
// [dl, du] ([N, 1, F], 0 <= dl), in centre/radius form again; lo and hi
// (both or neither given, [N, m, F]) receive the interval before the
// product.
std::pair<torch::Tensor, torch::Tensor> float32_activation(
    const torch::Tensor& mid,
    const torch::Tensor& rad,
    const torch::Tensor& dl,
    const torch::Tensor& du,
    torch::Tensor* lo_out,
    torch::Tensor* hi_out) {
  auto m = mid.contiguous();
  auto r = rad.contiguous();
  const int64_t n = dl.size(0);
  const int64_t f = dl.numel() / n;
  const int64_t rows = m.numel() / f;
  const int64_t per_sample = rows / n;
  auto new_mid = torch::empty_like(m);
  auto new_rad = torch::empty_like(m);
  const bool keep = lo_out != nullptr;
  torch::Tensor lo;
  torch::Tensor hi;
  if (keep) {
    lo = torch::empty_like(m);
    hi = torch::empty_like(m);
  }
  const float* pm = m.data_ptr<float>();
  const float* pr = r.data_ptr<float>();
  const float* pl = dl.data_ptr<float>();
  const float* pu = du.data_ptr<float>();
  float* nm = new_mid.data_ptr<float>();
  float* nr = new_rad.data_ptr<float>();
  float* plo = keep ? lo.data_ptr<float>() : nullptr;
  float* phi = keep ? hi.data_ptr<float>() : nullptr;
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* a = pl + (row / per_sample) * f;
      const float* b = pu + (row / per_sample) * f;
      const int64_t base = row * f;
      for (int64_t k = 0; k < f; ++k) {
        const float l = down(pm[base + k] - pr[base + k]);
        const float h = up(pm[base + k] + pr[base + k]);
        if (keep) {
          plo[base + k] = l;
          phi[base + k] = h;
        }
        float nl;
        float nh;
        if (a[k] == b[k] && (a[k] == 0.0f || a[k] == 1.0f)) {  // exact products
          nl = l * a[k];
          nh = h * a[k];
        } else {
          nl = down(std::min(l * a[k], l * b[k]));
          nh = up(std::max(h * a[k], h * b[k]));
        }
        const float c = 0.5f * (nl + nh);
        nm[base + k] = c;
        nr[base + k] = std::max(up(nh - c), up(c - nl));
      }
    }
  });
  if (keep) {
    *lo_out = lo;
    *hi_out = hi;
  }
  return {new_mid, new_rad};
}

// Float64 weights on the device, converted once.
struct Weights {
  std::vector<torch::Tensor> w;
  std::vector<torch::Tensor> abs;
};

// The merged forms' step at an activation, for a functional entry v_i and
// the term v_i s'_i gamma_i (s'_i in [dl, du], dl >= 0; gamma_i in [lo, hi]):
// where s'_i is exact or the sign of gamma_i known, the matching endpoint
// product merges (exact: du; lo >= 0: du for v >= 0, dl for v < 0; hi <= 0:
// the reverse); where gamma_i straddles 0, recurjac takes the constant
// max = v du hi (v >= 0) or -v du lo (v < 0), and linear the coefficient
// v e + |v| (du - dl) c (e = dl for v >= 0, du for v < 0, c = hi / (hi - lo),
// the relu chord's slope) with the constant -|v| (du - dl) c lo (see the
// header). Every case is positively homogeneous in v, so one coefficient per
// sign and neuron describes it.
void merge_coefficients(ActivationState& s, bool linear) {
  auto dl = s.dl.expand_as(s.lo);
  auto du = s.du.expand_as(s.lo);
  auto zeros = torch::zeros_like(s.lo);
  auto exact = dl == du;
  auto positive = s.lo >= 0;
  auto negative = s.hi <= 0;
  torch::Tensor pos_unknown = zeros;
  torch::Tensor neg_unknown = zeros;
  torch::Tensor cpos_unknown = du * s.hi;
  torch::Tensor cneg_unknown = -du * s.lo;
  if (linear) {
    auto spread = (du - dl) * (s.hi / (s.hi - s.lo));  // NaN only where the sign is known
    pos_unknown = dl + spread;
    neg_unknown = du - spread;
    cpos_unknown = -spread * s.lo;
    cneg_unknown = cpos_unknown;
  }
  auto pick = [&](const torch::Tensor& if_exact, const torch::Tensor& if_positive,
                  const torch::Tensor& if_negative, const torch::Tensor& if_unknown) {
    return torch::where(
               exact, if_exact,
               torch::where(positive, if_positive, torch::where(negative, if_negative, if_unknown)))
        .unsqueeze(2);
  };
  s.pos = pick(du, du, dl, pos_unknown);
  s.neg = pick(du, dl, du, neg_unknown);
  s.cpos = pick(zeros, zeros, zeros, cpos_unknown);
  s.cneg = pick(zeros, zeros, zeros, cneg_unknown);
}

// One affine layer of a functional's forward walk: v ([A, B, F, ...the
// layer's input]) mapped by the layer's linear part (no bias: these are
// functionals of the gradient).
torch::Tensor functional_affine(
    const torch::Tensor& v,
    const Layer& layer,
    const torch::Tensor& weight,
    const std::vector<int64_t>& in_shape,
    const std::vector<int64_t>& out_shape) {
  const int64_t a = v.size(0);
  const int64_t b = v.size(1);
  const int64_t f = v.size(2);
  switch (layer.kind) {
    case LayerKind::Linear:
      return v.matmul(weight.t());
    case LayerKind::Conv2d:
      return F::conv2d(
                 v.reshape(with_prefix({a * b * f}, in_shape)), weight,
                 F::Conv2dFuncOptions().stride(layer.stride).padding(layer.padding))
          .reshape(with_prefix({a, b, f}, out_shape));
    case LayerKind::ChannelAffine:
      return v * channel_view(weight, v.dim(), 3);
    case LayerKind::Flatten:
      return v.reshape({a, b, f, -1});
    default:
      BB_ASSERT(false, "{} is not affine", layer.describe());
  }
}

// Upper bounds on v . gamma_0 over the region for the functionals V
// [N, m, F, ...input of layer `begin`], walked forward from layer `begin`
// (the layers before it already applied; see the header): [N, m, F].
torch::Tensor functional_upper(
    torch::Tensor v,
    const LayerList& layers,
    const Weights& weights,
    const std::vector<std::vector<int64_t>>& shapes,
    const std::map<int64_t, ActivationState>& states,
    const torch::Tensor& delta,
    size_t begin = 0) {
  const int64_t n = v.size(0);
  const int64_t m = v.size(1);
  const int64_t f = v.size(2);
  auto constant = torch::zeros({n, m, f}, v.options());
  for (size_t i = begin; i < layers.size(); ++i) {
    const Layer& layer = layers[i];
    if (!is_activation(layer.kind)) {
      v = functional_affine(v, layer, weights.w[i], shapes[i], shapes[i + 1]);
      continue;
    }
    const auto& s = states.at(static_cast<int64_t>(i));
    auto vp = v.clamp_min(0);
    auto vn = v.clamp_max(0);
    auto flat = [&](const torch::Tensor& t) { return t.reshape({t.size(0), t.size(1), t.size(2), -1}); };
    // The constants as batched products: [N, m, F, K] x [N, m, K, 1].
    constant += flat(vp).matmul(flat(s.cpos).transpose(2, 3)).squeeze(3) -
                flat(vn).matmul(flat(s.cneg).transpose(2, 3)).squeeze(3);
    v = vp * s.pos + vn * s.neg;
  }
  return constant + (v * delta.unsqueeze(2)).sum(3);
}

// The most functionals of one pass with `rows` rows of width `widest`.
int64_t functional_chunk(int64_t rows, const std::vector<std::vector<int64_t>>& shapes) {
  int64_t widest = 1;
  for (const auto& shape : shapes) {
    widest = std::max(widest, numel_of(shape));
  }
  return std::max<int64_t>(1, kChunkElements / (rows * widest));
}

// Runs functional_upper over chunks of the F functionals.
torch::Tensor functional_upper_chunked(
    const torch::Tensor& v,
    const LayerList& layers,
    const Weights& weights,
    const std::vector<std::vector<int64_t>>& shapes,
    const std::map<int64_t, ActivationState>& states,
    const torch::Tensor& delta) {
  const int64_t chunk = functional_chunk(v.size(0) * v.size(1), shapes);
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < v.size(2); start += chunk) {
    const int64_t length = std::min(chunk, v.size(2) - start);
    parts.push_back(functional_upper(v.narrow(2, start, length), layers, weights, shapes, states, delta));
  }
  return torch::cat(parts, 2);
}

// Upper bounds on gamma_k and -gamma_k for every input coordinate k through
// the functionals +e_k and -e_k: [N, m, 2, d]. The unit functionals share
// their walk up to the first activation (the same for every row), so that
// part runs once per chunk on [1, 1, F] and is then broadcast.
torch::Tensor coordinate_upper(
    int64_t n,
    int64_t m,
    int64_t d,
    const std::vector<int64_t>& input_shape,
    const LayerList& layers,
    const Weights& weights,
    const std::vector<std::vector<int64_t>>& shapes,
    const std::map<int64_t, ActivationState>& states,
    const torch::Tensor& delta) {
  const auto first = static_cast<size_t>(states.begin()->first);
  const int64_t chunk = std::max<int64_t>(1, functional_chunk(n * m, shapes) / 2);
  auto eye = torch::eye(d, delta.options());
  std::vector<torch::Tensor> up;
  std::vector<torch::Tensor> down;
  for (int64_t start = 0; start < d; start += chunk) {
    const int64_t length = std::min(chunk, d - start);
    auto v = eye.narrow(0, start, length).reshape(with_prefix({1, 1, length}, input_shape));
    for (size_t i = 0; i < first; ++i) {
      v = functional_affine(v, layers[i], weights.w[i], shapes[i], shapes[i + 1]);
    }
    auto both = torch::cat({v, -v}, 2);
    auto sizes = both.sizes().vec();
    sizes[0] = n;
    sizes[1] = m;
    auto upper = functional_upper(both.expand(sizes), layers, weights, shapes, states, delta, first);
    up.push_back(upper.narrow(2, 0, length));
    down.push_back(upper.narrow(2, length, length));
  }
  return torch::stack({torch::cat(up, 2), torch::cat(down, 2)}, 2);
}

}  // namespace

const char* relaxation_name(JacobianRelaxation relaxation) {
  switch (relaxation) {
    case JacobianRelaxation::Interval:
      return "interval";
    case JacobianRelaxation::SignAware:
      return "recurjac";
    case JacobianRelaxation::Linear:
      return "linear";
  }
  return "?";
}

JacobianRelaxation parse_relaxation(const std::string& text, const std::string& key) {
  for (auto r : {JacobianRelaxation::Interval, JacobianRelaxation::SignAware, JacobianRelaxation::Linear}) {
    if (text == relaxation_name(r)) {
      return r;
    }
  }
  throw Error(fmt::format("{}: '{}' is not one of interval, recurjac, linear", key, text));
}

std::pair<torch::Tensor, torch::Tensor> derivative_interval(
    const Layer& activation,
    const torch::Tensor& lower,
    const torch::Tensor& upper) {
  auto l = lower.to(torch::kFloat64);
  auto u = upper.to(torch::kFloat64);
  torch::Tensor dl;
  torch::Tensor du;
  switch (activation.kind) {
    case LayerKind::ReLU:
      // Exact: at z = 0 any value in [0, 1] is a (Clarke) derivative.
      return {(l > 0).to(torch::kFloat64), (u >= 0).to(torch::kFloat64)};
    case LayerKind::Softplus: {
      const double beta = activation.beta;
      dl = torch::sigmoid(beta * l);
      du = torch::where(beta * u >= 20.0, torch::ones_like(u), torch::sigmoid(beta * u));
      break;
    }
    case LayerKind::Tanh: {
      auto slope = [](const torch::Tensor& z) { return torch::cosh(z).square().reciprocal(); };
      auto at_l = slope(l);
      auto at_u = slope(u);
      auto at_far = slope(torch::max(-l, u));
      auto nonnegative = l >= 0;
      auto nonpositive = u <= 0;
      dl = torch::where(nonnegative, at_u, torch::where(nonpositive, at_l, at_far));
      du = torch::where(
          nonnegative, at_l, torch::where(nonpositive, at_u, torch::ones_like(u)));
      break;
    }
    default:
      BB_CHECK(false, "{} is not an activation", activation.describe());
  }
  dl = (dl * (1 - kWiden)).clamp(0.0, 1.0);
  du = torch::nextafter(du * (1 + kWiden), torch::full_like(du, kInf)).clamp(0.0, 1.0);
  return {dl, du};
}

torch::Tensor interval_jacobian_norm(
    const LayerList& layers,
    const PreActivationBounds& bounds,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    Norm q,
    JacobianRelaxation relaxation,
    const std::vector<int64_t>& input_shape,
    const torch::Tensor& room,
    bool refine) {
  BB_CHECK(!layers.empty(), "interval Jacobian: empty layer chain");
  const bool sign_aware = relaxation != JacobianRelaxation::Interval;
  const bool linear = relaxation == JacobianRelaxation::Linear;
  BB_CHECK(
      !refine || sign_aware,
      "interval Jacobian: refining every coordinate needs the merged forms (recurjac or linear), not {}",
      relaxation_name(relaxation));
  BB_CHECK(
      bounds.layer.size() == bounds.lower.size() && bounds.layer.size() == bounds.upper.size(),
      "interval Jacobian: pre-activation bounds with {} layers, {} lower and {} upper tensors",
      bounds.layer.size(), bounds.lower.size(), bounds.upper.size());
  BB_CHECK(
      c.dim() == 1 && targets.dim() == 2 && targets.size(0) == c.size(0),
      "interval Jacobian: c must be [N] and targets [N, m], got {} and {}",
      c.sizes(), targets.sizes());
  const int64_t n = c.size(0);
  const int64_t m = targets.size(1);

  // Which bounds belong to which activation; every activation needs some.
  std::map<int64_t, size_t> position;
  for (size_t t = 0; t < bounds.layer.size(); ++t) {
    const int64_t index = bounds.layer[t];
    BB_CHECK(
        index >= 0 && index < static_cast<int64_t>(layers.size()) &&
            is_activation(layers[index].kind),
        "interval Jacobian: pre-activation bounds for layer {}, which is not an activation",
        index);
    BB_CHECK(
        t == 0 || index > bounds.layer[t - 1],
        "interval Jacobian: pre-activation bounds are not in layer order");
    position[index] = t;
  }
  std::vector<std::string> missing;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (is_activation(layers[i].kind) && position.count(static_cast<int64_t>(i)) == 0) {
      missing.push_back(fmt::format("{} ({})", i, layers[i].describe()));
    }
  }
  BB_CHECK(
      missing.empty(),
      "interval Jacobian: no pre-activation bounds for layers {}",
      fmt::join(missing, ", "));

  const auto shape = input_shape.empty() ? infer_input_shape(layers, bounds) : input_shape;
  const auto shapes = layer_input_shapes(layers, shape);
  BB_CHECK(
      shapes.back().size() == 1,
      "interval Jacobian: the chain must end with logits [k], it gives [{}]",
      fmt::join(shapes.back(), ", "));
  const int64_t k = shapes.back()[0];

  torch::Device device = c.device();
  for (const auto& layer : layers) {
    if (layer.weight.defined()) {
      device = layer.weight.device();
      break;
    }
  }
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);

  Weights weights;
  for (const auto& layer : layers) {
    if (layer.weight.defined()) {
      weights.w.push_back(layer.weight.to(f64));
      weights.abs.push_back(weights.w.back().abs());
    } else {
      weights.w.emplace_back();
      weights.abs.emplace_back();
    }
  }

  // The derivative intervals, [N, 1, ...].
  std::map<int64_t, ActivationState> states;
  for (const auto& [index, t] : position) {
    const auto& lower = bounds.lower[t];
    const auto& upper = bounds.upper[t];
    const auto expected = with_prefix({n}, shapes[index]);
    BB_CHECK(
        lower.sizes() == c10::IntArrayRef(expected) && upper.sizes() == c10::IntArrayRef(expected),
        "interval Jacobian: bounds of layer {} ({}) have shapes {} and {}, expected {}",
        index, layers[index].describe(), lower.sizes(), upper.sizes(),
        c10::IntArrayRef(expected));
    auto l = lower.to(f64);
    auto u = upper.to(f64);
    // Bounds computed apart may cross by rounding on a near-point interval;
    // more than that (or NaN) is a bug upstream.
    BB_CHECK(
        (l <= u + 1e-9 * (1 + u.abs())).all().item<bool>(),
        "interval Jacobian: bounds of layer {} ({}) have a lower bound above the upper one (or NaN)",
        index, layers[index].describe());
    auto [dl, du] = derivative_interval(layers[index], torch::min(l, u), torch::max(l, u));
    states[index].dl = dl.unsqueeze(1);
    states[index].du = du.unsqueeze(1);
  }

  // Backward: rows [N, m, ...] in centre/radius form; rad undefined = 0.
  // From the first activation on, float32 with outward rounding on the CPU
  // (see float32_activation); before it the rows are points, in float64.
  const bool use_float32 = float32_backward && device.is_cpu();
  bool low = false;
  const auto f32 = f64.dtype(torch::kFloat32);
  Weights weights32;
  if (use_float32) {
    for (size_t i = 0; i < layers.size(); ++i) {
      const bool has_weight = layers[i].weight.defined();
      weights32.w.push_back(has_weight ? layers[i].weight.to(f32) : torch::Tensor());
      weights32.abs.push_back(has_weight ? weights32.w.back().abs() : torch::Tensor());
    }
  }
  auto cls = c.to(device).to(torch::kLong);
  auto tgt = targets.to(device).to(torch::kLong);
  auto delta = (F::one_hot(cls, k).unsqueeze(1) - F::one_hot(tgt, k)).to(f64);  // [N, m, k]
  torch::Tensor mid = delta;
  torch::Tensor rad;
  for (size_t i = layers.size(); i-- > 0;) {
    const Layer& layer = layers[i];
    const auto& in_shape = shapes[i];
    const auto& w = low ? weights32.w[i] : weights.w[i];
    const auto& abs_w = low ? weights32.abs[i] : weights.abs[i];
    // An affine layer: mid' = W^T mid by `apply`, and the radius through
    // |W|^T (plus the float32 rounding terms, n terms per output).
    auto affine = [&](const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& apply,
                      int64_t terms) {
      if (low) {
        const double gamma = product_gamma(terms);
        auto widened = widened_radius(mid, rad, gamma);
        mid = apply(mid, w);
        rad = finished_radius(apply(widened, abs_w), gamma, terms);
        return;
      }
      mid = apply(mid, w);
      if (rad.defined()) {
        rad = apply(rad, abs_w);
      }
    };
    switch (layer.kind) {
      case LayerKind::Linear:
        affine([](const torch::Tensor& x, const torch::Tensor& weight) { return x.matmul(weight); },
               layer.weight.size(0));
        break;
      case LayerKind::Conv2d: {
        const auto& out_shape = shapes[i + 1];
        auto options = F::ConvTranspose2dFuncOptions()
                           .stride(layer.stride)
                           .padding(layer.padding)
                           .output_padding(std::vector<int64_t>{
                               in_shape[1] - ((out_shape[1] - 1) * layer.stride[0] -
                                              2 * layer.padding[0] + layer.weight.size(2)),
                               in_shape[2] - ((out_shape[2] - 1) * layer.stride[1] -
                                              2 * layer.padding[1] + layer.weight.size(3))});
        affine(
            [&](const torch::Tensor& x, const torch::Tensor& weight) {
              return F::conv_transpose2d(x.reshape(with_prefix({n * m}, out_shape)), weight, options)
                  .reshape(with_prefix({n, m}, in_shape));
            },
            layer.weight.size(0) * layer.weight.size(2) * layer.weight.size(3));
        break;
      }
      case LayerKind::ChannelAffine:
        affine(
            [&](const torch::Tensor& x, const torch::Tensor& weight) {
              return x * channel_view(weight, x.dim(), 2);
            },
            1);
        break;
      case LayerKind::Flatten:
        mid = mid.reshape(with_prefix({n, m}, in_shape));
        if (rad.defined()) {
          rad = rad.reshape(with_prefix({n, m}, in_shape));
        }
        break;
      case LayerKind::ReLU:
      case LayerKind::Softplus:
      case LayerKind::Tanh: {
        auto& s = states.at(static_cast<int64_t>(i));
        if (use_float32) {
          if (!low) {
            // The point mid (float64) as a float32 interval around it.
            auto point = mid.to(torch::kFloat32);
            rad = point.abs() * kOutward + kTiny;
            mid = point;
            low = true;
          }
          auto [dl, du] = float32_derivatives(s.dl, s.du);
          torch::Tensor lo;
          torch::Tensor hi;
          std::tie(mid, rad) =
              float32_activation(mid, rad, dl, du, sign_aware ? &lo : nullptr, sign_aware ? &hi : nullptr);
          if (sign_aware) {
            s.lo = lo.to(f64);
            s.hi = hi.to(f64);
            merge_coefficients(s, linear);
          }
          break;
        }
        auto lo = rad.defined() ? mid - rad : mid;
        auto hi = rad.defined() ? mid + rad : mid;
        if (sign_aware) {
          s.lo = lo;
          s.hi = hi;
          merge_coefficients(s, linear);
        }
        auto [new_lo, new_hi] = interval_product(lo, hi, s.dl, s.du);
        mid = (new_lo + new_hi) * 0.5;
        rad = (new_hi - new_lo) * 0.5;
        break;
      }
    }
  }

  torch::Tensor lo;
  torch::Tensor hi;
  torch::Tensor magnitude;
  if (low) {
    // Outward to float64, exactly.
    lo = (mid - rad).to(f64);
    hi = (mid + rad).to(f64);
    auto slack = (lo.abs() + hi.abs()) * static_cast<double>(kOutward) + static_cast<double>(kTiny);
    lo = (lo - slack).reshape({n, m, -1});
    hi = (hi + slack).reshape({n, m, -1});
    magnitude = torch::max(lo.abs(), hi.abs());
  } else {
    lo = (rad.defined() ? mid - rad : mid).reshape({n, m, -1});
    hi = (rad.defined() ? mid + rad : mid).reshape({n, m, -1});
    magnitude = rad.defined() ? (mid.abs() + rad).reshape({n, m, -1}) : mid.abs().reshape({n, m, -1});
  }
  // The room toward D's faces (see the header): h_k(gamma) = down_k relu(gamma)
  // + up_k relu(-gamma), down and up ([N, 1, d] in [0, 1]) from `room`; for
  // q != 1 only whether the room is 0 counts (a fraction of the radius is a
  // bound for q = 1 only).
  torch::Tensor room_down;
  torch::Tensor room_up;
  if (room.defined()) {
    BB_CHECK(
        room.dim() >= 2 && room.size(0) == n && room.size(1) == 2 && room.numel() == n * 2 * lo.size(2),
        "interval Jacobian: room of shape {} for {} inputs of {} coordinates (expected [N, 2, ...input])",
        room.sizes(), n, lo.size(2));
    auto weights = room.to(f64).reshape({n, 2, 1, -1});
    if (q != Norm::L1) {
      weights = (weights > 0).to(f64);
    }
    room_down = weights.select(1, 0);
    room_up = weights.select(1, 1);
  }
  // The largest h_k (with the room) or |gamma_k| over [lo_k, hi_k].
  auto magnitude_of = [&](const torch::Tensor& l, const torch::Tensor& h) {
    return room_down.defined() ? torch::max(room_down * h.clamp_min(0), room_up * (-l).clamp_min(0))
                               : torch::max(l.abs(), h.abs());
  };
  auto norm_of = [&](const torch::Tensor& magnitudes) {  // [N, m, d] -> [N, m]
    return lp_norm(magnitudes.reshape({n * m, -1}), q).view({n, m});
  };
  if (room_down.defined()) {
    magnitude = magnitude_of(lo, hi);
  }
  auto plain = norm_of(magnitude);
  if (!sign_aware || states.empty()) {
    return plain;
  }

  // RecurJac's merging on the input gradient (see the header).
  const int64_t d = magnitude.size(2);
  auto zeros = torch::zeros_like(magnitude);
  auto ones = torch::ones_like(magnitude);
  auto as_input = [&](const torch::Tensor& v) {  // [N, m, F, d] -> [N, m, F, ...input]
    return v.reshape(with_prefix({n, m, v.size(2)}, shape));
  };
  if (refine) {
    // Every coordinate on its own through +e_k and -e_k (see the header).
    auto bound = coordinate_upper(n, m, d, shape, layers, weights, shapes, states, delta);
    hi = torch::min(hi, bound.select(2, 0));
    lo = torch::max(lo, -bound.select(2, 1));
    lo = torch::min(lo, hi);  // both bounds hold: only rounding could cross them
    magnitude = magnitude_of(lo, hi);
    plain = torch::min(plain, norm_of(magnitude));
    if (q == Norm::Linf) {
      return plain;
    }
  }
  if (q == Norm::L1 || q == Norm::L2) {
    // s_k: the sign of the larger side of [lo_k, hi_k]; the smaller side
    // (0 where the sign is known) is what the sign can be wrong by.
    auto known = (lo >= 0) | (hi <= 0);
    auto sign = torch::where(hi >= -lo, ones, -ones);
    auto wrong = torch::where(known, zeros, torch::min(-lo, hi));
    torch::Tensor restricted;
    torch::Tensor exact_slope;  // h's slope where the sign is known
    if (room_down.defined()) {
      // h is linear where the sign is known (slope room_down or -room_up) and lies
      // under its chord over [lo, hi] where it straddles: slope
      // (room_down hi + room_up lo) / (hi - lo), offset -(room_down + room_up) lo hi / (hi - lo),
      // in place of sign and 2 wrong where some room is short of 1.
      restricted = ((room_down < 1) | (room_up < 1)).expand_as(lo);
      exact_slope = torch::where(lo >= 0, room_down.expand_as(lo), -room_up.expand_as(lo));
      auto chord_slope = (room_down * hi + room_up * lo) / (hi - lo);
      auto chord_offset = -(room_down + room_up) * lo * hi / (hi - lo);
      sign = torch::where(restricted, torch::where(known, exact_slope, chord_slope), sign);
      wrong = torch::where(restricted, torch::where(known, zeros, chord_offset * 0.5), wrong);
    }
    auto weight = q == Norm::L1 ? sign : sign * magnitude;
    auto v = torch::stack({torch::where(known, weight, zeros), weight}, 2);  // [N, m, 2, d]
    if (linear) {
      // (B) with the chords of |gamma_k| and gamma_k^2 (see the header).
      auto straddles = ~known;
      auto slope = q == Norm::L1
          ? torch::where(straddles, (hi + lo) / (hi - lo), sign)
          : lo + hi;
      auto offset = q == Norm::L1
          ? torch::where(straddles, -2 * hi * lo / (hi - lo), zeros)
          : -lo * hi;
      if (room_down.defined()) {
        if (q == Norm::L1) {
          slope = torch::where(restricted, sign, slope);
          offset = torch::where(restricted, 2 * wrong, offset);
        } else {
          // The chord of h^2 (room 0 or 1 here): where the sign is known h^2
          // is room_down^2 gamma^2 or room_up^2 gamma^2, under its chord; where it
          // straddles, h^2 runs from room_up^2 lo^2 to room_down^2 hi^2.
          auto square = exact_slope.square();
          auto at_lo = (room_up * lo).square();
          auto chord_slope = ((room_down * hi).square() - at_lo) / (hi - lo);
          auto chord_offset = at_lo - chord_slope * lo;
          slope = torch::where(restricted, torch::where(known, square * (lo + hi), chord_slope), slope);
          offset = torch::where(restricted, torch::where(known, -square * lo * hi, chord_offset), offset);
        }
      }
      v = torch::stack({torch::where(known, weight, zeros), slope}, 2);
      wrong = offset * 0.5;  // the penalty below doubles it
    }
    auto merged =
        functional_upper_chunked(as_input(v), layers, weights, shapes, states, delta)
            .clamp_min(0);
    auto share = q == Norm::L1 ? magnitude : magnitude.square();  // m_k or m_k^2
    auto known_sum = torch::where(known, share, zeros).sum(2);
    auto unknown_sum = torch::where(known, zeros, share).sum(2);
    // (A) known-sign coordinates merged, the others as in the plain bound.
    auto only_known = unknown_sum + torch::min(known_sum, merged.select(2, 0));
    // (B) every coordinate merged: |gamma_k| <= s_k gamma_k + 2 wrong_k.
    auto penalty = linear ? 2 * wrong.sum(2) : 2 * (q == Norm::L1 ? wrong : magnitude * wrong).sum(2);
    auto all = merged.select(2, 1) + penalty;
    auto best = torch::min(only_known, all);
    // (B) is at least ||gamma||^2 >= 0; clamp the rounding below 0 away.
    return torch::min(plain, q == Norm::L1 ? best : best.clamp_min(0).sqrt());
  }
  // q = inf: refine the largest coordinates through +e_k and -e_k.
  const int64_t top = std::min(kTopCoordinates, d);
  auto sorted = magnitude.topk(std::min(top + 1, d), 2);
  auto values = std::get<0>(sorted);
  auto index = std::get<1>(sorted).narrow(2, 0, top);  // [N, m, T]
  auto v = torch::zeros({n, m, 2 * top, d}, magnitude.options());
  auto unit = torch::ones({n, m, top, 1}, magnitude.options());
  v.narrow(2, 0, top).scatter_(3, index.unsqueeze(3), unit);
  v.narrow(2, top, top).scatter_(3, index.unsqueeze(3), -unit);
  auto upper = functional_upper_chunked(as_input(v), layers, weights, shapes, states, delta);
  auto up = upper.narrow(2, 0, top);     // max gamma_k
  auto down = upper.narrow(2, top, top);  // max -gamma_k
  auto largest = torch::max(up, down);
  if (room_down.defined()) {
    auto at_down = room_down.expand({n, m, d}).gather(2, index);
    auto at_up = room_up.expand({n, m, d}).gather(2, index);
    largest = torch::max(at_down * up.clamp_min(0), at_up * down.clamp_min(0));
  }
  auto refined = torch::min(values.narrow(2, 0, top), largest);
  auto best = std::get<0>(refined.max(2));
  if (d > top) {
    best = torch::max(best, values.select(2, top));
  }
  return torch::min(plain, best);
}

namespace detail {
void use_float32_interval_backward(bool on) {
  float32_backward = on;
}
}  // namespace detail

torch::Tensor box_room(const torch::Tensor& center, Box box, const torch::Tensor& weight_radius) {
  auto x = center.to(torch::kFloat64);
  auto below = x - box.lo;  // how far the coordinate can move down in D
  auto above = box.hi - x;
  torch::Tensor down = (below > 0).to(torch::kFloat64);
  torch::Tensor up = (above > 0).to(torch::kFloat64);
  if (weight_radius.defined()) {
    BB_CHECK(
        weight_radius.dim() == 1 && weight_radius.size(0) == x.size(0),
        "box room: a weight radius per sample expected, got {} for {} samples",
        weight_radius.sizes(), x.size(0));
    auto rho = weight_radius.to(x.device(), torch::kFloat64).view(with_prefix({-1}, std::vector<int64_t>(x.dim() - 1, 1)));
    // min(1, room / rho), rounded up so that the fraction is never short.
    auto fraction = [&](const torch::Tensor& room) {
      auto f = torch::nextafter(room / rho, torch::full_like(room, kInf)).clamp(0.0, 1.0);
      return torch::where(rho > 0, f, (room > 0).to(torch::kFloat64));
    };
    down = torch::where(below > 0, fraction(below), torch::zeros_like(below));
    up = torch::where(above > 0, fraction(above), torch::zeros_like(above));
  }
  return torch::stack({down, up}, 1);
}

}  // namespace bb
