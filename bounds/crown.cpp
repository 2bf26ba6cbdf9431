// CROWN (Zhang et al. 2018): backward linear relaxation of a layer chain,
// concretised over B_p(x, R) ∩ D (see bounds/preactivation.h).
//
// Everything is a lower bound of a linear function of some layer's input:
// rows A ([N, M, ...that input's shape]) go back through the layers before
// it, affine layers by their transposes (conv2d by conv_transpose2d), each
// activation by the linear lower or upper line of its relaxation (by the
// sign of the row's entry), collecting a constant on the way; at the input
// the row is minimised over the region. An upper bound of <a, h> is minus the
// lower bound of <-a, h>, so neuron i's interval takes the rows e_i and -e_i.
#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "bounds/preactivation.h"
#include "core/error.h"

namespace bb {
namespace {

namespace F = torch::nn::functional;

constexpr double kInf = std::numeric_limits<double>::infinity();

// One chunk of rows holds at most this many float64 entries in its backward
// matrix at the widest layer it passes (32 MB). On the CPU a chunk's peak is
// a few such matrices (the rows, the next layer's rows, a transposed
// convolution's buffers), ~150 MB; the tensor code of other devices keeps a
// few more temporaries, within ~256 MB.
constexpr int64_t kChunkEntries = int64_t{4} << 20;

// Tanh's upper line through (l, tanh l), tangent at some d in [0, u]: the
// bisection on d keeps the upper end, where the line passes above
// (l, tanh l), so it stays sound whatever the step count.
constexpr int kTangentBisections = 40;

// The real softplus, stable for any z.
torch::Tensor softplus_exact(const torch::Tensor& z, double beta) {
  auto bz = z * beta;
  return (bz.clamp_min(0) + torch::log1p(torch::exp(-bz.abs()))) / beta;
}

torch::Tensor tanh_derivative(const torch::Tensor& z) {
  auto t = torch::tanh(z);
  return 1 - t * t;
}

// a z + b: one side of an activation's relaxation, per neuron ([N, ...]).
struct Line {
  torch::Tensor slope;
  torch::Tensor offset;
};

// lower.slope z + lower.offset <= sigma(z) <= upper.slope z + upper.offset
// for every z in the neuron's [l, u].
struct Relaxation {
  Line lower;
  Line upper;
  bool lower_offset_zero = false;  // ReLU: the lower lines pass through 0
};

Line select(const torch::Tensor& condition, const Line& a, const Line& b) {
  return {torch::where(condition, a.slope, b.slope), torch::where(condition, a.offset, b.offset)};
}

// The chord of f over [l, u] (the tangent at l where u == l).
Line chord(const torch::Tensor& l, const torch::Tensor& u, const torch::Tensor& fl,
           const torch::Tensor& fu, const torch::Tensor& dfl) {
  auto width = u - l;
  auto slope = torch::where(width > 0, (fu - fl) / width, dfl);
  return {slope, fl - slope * l};
}

Line tangent(const torch::Tensor& d, const torch::Tensor& fd, const torch::Tensor& dfd) {
  return {dfd, fd - dfd * d};
}

// ReLU: stable neurons exactly (identity or zero); unstable ones under the
// line through (l, 0) and (u, u), above the adaptive line (slope 1 when
// u >= -l, else 0), as CROWN-adaptive.
Relaxation relax_relu(const torch::Tensor& l, const torch::Tensor& u) {
  auto zero = torch::zeros_like(l);
  auto one = torch::ones_like(l);
  auto active = l >= 0;
  auto inactive = u <= 0;
  auto unstable = ~(active | inactive);
  auto chord_slope = u / (u - l);
  auto upper_slope = torch::where(active, one, torch::where(inactive, zero, chord_slope));
  auto upper_offset = torch::where(unstable, -l * chord_slope, zero);
  auto lower_slope = torch::where(active | (unstable & (u >= -l)), one, zero);
  return {{lower_slope, zero}, {upper_slope, upper_offset}, true};
}

// Softplus is convex: the chord lies above it, any tangent below (here at
// the midpoint). The lower line drops by torch's threshold gap (as in IBP)
// where the interval reaches past beta z > 20.
Relaxation relax_softplus(const torch::Tensor& l, const torch::Tensor& u, double beta) {
  auto fl = softplus_exact(l, beta);
  auto fu = softplus_exact(u, beta);
  auto upper = chord(l, u, fl, fu, torch::sigmoid(beta * l));
  auto mid = (l + u) / 2;
  auto lower = tangent(mid, softplus_exact(mid, beta), torch::sigmoid(beta * mid));
  const double gap = std::log1p(std::exp(-20.0)) / beta;
  lower.offset = lower.offset - gap * (u * beta > 20).to(l.scalar_type());
  return {lower, upper};
}

// An upper line for tanh over [l, u]. Convex on u <= 0: the chord. Concave on
// l >= 0: the tangent at the midpoint. Across 0 (S-shaped): the chord when it
// lies above tanh, which is when tanh'(u) >= its slope (chord - tanh is
// concave on [l, 0] and convex on [0, u], zero at both ends, and then
// decreasing on [0, u]); otherwise the tangent at the d in (0, u] whose line
// passes through (l, tanh l). A tangent at d >= 0 lies above tanh on
// [0, inf); passing above (l, tanh l) it also lies above on [l, 0], where
// line - tanh is concave and nonnegative at both ends. Its value at l grows
// with d (the derivative in d is tanh''(d) (l - d) > 0), so bisection finds d.
Line tanh_upper(const torch::Tensor& l, const torch::Tensor& u) {
  auto fl = torch::tanh(l);
  auto fu = torch::tanh(u);
  auto secant = chord(l, u, fl, fu, tanh_derivative(l));
  auto mid = (l + u) / 2;
  auto mid_tangent = tangent(mid, torch::tanh(mid), tanh_derivative(mid));
  auto crossing = (l < 0) & (u > 0);
  auto above_at_l = [&](const torch::Tensor& d) {
    return torch::tanh(d) + tanh_derivative(d) * (l - d) >= fl;
  };
  auto through_l = crossing & above_at_l(u);
  auto low = torch::zeros_like(l);
  auto high = torch::where(through_l, u, low);
  for (int k = 0; k < kTangentBisections; ++k) {
    auto d = (low + high) / 2;
    auto ok = above_at_l(d);
    high = torch::where(ok, d, high);
    low = torch::where(ok, low, d);
  }
  auto touching = tangent(high, torch::tanh(high), tanh_derivative(high));
  auto across = select(through_l, touching, secant);
  return select(l >= 0, mid_tangent, select(crossing, across, secant));
}

// tanh is odd: tanh(z) = -tanh(-z) >= -(a (-z) + b) = a z - b from the upper
// line a w + b over w in [-u, -l].
Relaxation relax_tanh(const torch::Tensor& l, const torch::Tensor& u) {
  auto mirrored = tanh_upper(-u, -l);
  return {{mirrored.slope, -mirrored.offset}, tanh_upper(l, u)};
}

Relaxation relax(const Layer& layer, const torch::Tensor& l, const torch::Tensor& u) {
  switch (layer.kind) {
    case LayerKind::ReLU:
      return relax_relu(l, u);
    case LayerKind::Softplus:
      return relax_softplus(l, u, layer.beta);
    case LayerKind::Tanh:
      return relax_tanh(l, u);
    default:
      BB_ASSERT(false, "{} is not an activation", layer.describe());
  }
}

// The chain in float64 on the centre's device, with each layer's input shape
// per sample (shape[i], i = 0..L; shape[L] is the output's) and the
// relaxations of the activations bounded so far.
struct Chain {
  LayerList layers;
  std::vector<std::vector<int64_t>> shape;
  std::vector<Relaxation> relaxation;  // by layer index; empty for non-activations
};

Chain make_chain(const LayerList& layers, const torch::Tensor& center) {
  Chain chain;
  const auto options = center.options().dtype(torch::kFloat64);
  for (const auto& layer : layers) {
    Layer copy = layer;
    if (copy.weight.defined()) {
      copy.weight = copy.weight.to(options);
    }
    if (copy.bias.defined()) {
      copy.bias = copy.bias.to(options);
    }
    chain.layers.push_back(copy);
  }
  auto sizes = center.sizes().vec();
  sizes[0] = 1;
  auto h = torch::zeros(sizes, options);
  for (const auto& layer : chain.layers) {
    chain.shape.push_back(h.sizes().slice(1).vec());
    h = layer.forward(h);
  }
  chain.shape.push_back(h.sizes().slice(1).vec());
  chain.relaxation.resize(layers.size());
  return chain;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto s : shape) {
    n *= s;
  }
  return n;
}

// {n, m, shape...}
std::vector<int64_t> rows_shape(int64_t n, int64_t m, const std::vector<int64_t>& shape) {
  std::vector<int64_t> out{n, m};
  out.insert(out.end(), shape.begin(), shape.end());
  return out;
}

// The region in float64, flattened per sample: centre x, hull [lo, hi] =
// [max(x - R, box.lo), min(x + R, box.hi)], radius R [N].
struct RegionData {
  torch::Tensor x, lo, hi, radius;
  Norm p;
  bool ball = false;  // some radius finite and p != Linf: the ball adds to the hull
};

RegionData region_data(const Region& region) {
  RegionData data;
  data.x = region.center().to(torch::kFloat64).flatten(1).contiguous();
  data.radius = region.radius().to(data.x.options());
  auto r = data.radius.unsqueeze(1);
  data.lo = (data.x - r).clamp_min(region.box().lo).contiguous();
  data.hi = (data.x + r).clamp_max(region.box().hi).contiguous();
  data.p = region.norm();
  data.ball = data.p != Norm::Linf && torch::isfinite(data.radius).any().item<bool>();
  return data;
}

// The two innermost steps fused on the CPU: one pass over each row, without
// the temporaries of the tensor code, which other devices run (and the tests
// compare). Same arithmetic up to the order of the sums.
bool use_fused = true;

bool fused(const torch::Tensor& A) {
  return use_fused && A.is_cpu() && A.scalar_type() == torch::kFloat64;
}

// One activation backward: rows A [n, m, ...] of samples [s0, s0 + n);
// returns the new rows and adds each row's constant to `constant` [n, m].
torch::Tensor relax_rows_cpu(
    const torch::Tensor& A, const Relaxation& relaxation, int64_t s0, torch::Tensor& constant) {
  const int64_t n = A.size(0);
  const int64_t m = A.size(1);
  const int64_t d = A.numel() / std::max<int64_t>(n * m, 1);
  auto out = torch::empty_like(A);
  auto added = torch::empty({n, m}, A.options());
  auto row_of = [&](const torch::Tensor& t) { return t.narrow(0, s0, n).contiguous(); };
  auto lower_slope = row_of(relaxation.lower.slope);
  auto lower_offset = row_of(relaxation.lower.offset);
  auto upper_slope = row_of(relaxation.upper.slope);
  auto upper_offset = row_of(relaxation.upper.offset);
  const double* a = A.data_ptr<double>();
  double* o = out.data_ptr<double>();
  double* c = added.data_ptr<double>();
  const double* ls = lower_slope.data_ptr<double>();
  const double* lo = lower_offset.data_ptr<double>();
  const double* us = upper_slope.data_ptr<double>();
  const double* uo = upper_offset.data_ptr<double>();
  at::parallel_for(0, n * m, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t s = (r / m) * d;
      const double* row = a + r * d;
      double* next = o + r * d;
      double sum = 0;
      for (int64_t f = 0; f < d; ++f) {
        const double v = row[f];
        const bool positive = v > 0;
        next[f] = v * (positive ? ls[s + f] : us[s + f]);
        sum += v * (positive ? lo[s + f] : uo[s + f]);
      }
      c[r] = sum;
    }
  });
  constant = constant + added;
  return out;
}

// The hull's minimum of each row (D, Linf): <a, z> at the corner z_i = lo_i
// where a_i > 0, hi_i elsewhere.
torch::Tensor hull_rows_cpu(const torch::Tensor& A, const RegionData& region, int64_t s0) {
  const int64_t n = A.size(0);
  const int64_t m = A.size(1);
  const int64_t d = A.size(2);
  auto out = torch::empty({n, m}, A.options());
  const double* a = A.data_ptr<double>();
  const double* lo = region.lo.data_ptr<double>() + s0 * d;
  const double* hi = region.hi.data_ptr<double>() + s0 * d;
  double* o = out.data_ptr<double>();
  at::parallel_for(0, n * m, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t s = (r / m) * d;
      const double* row = a + r * d;
      double sum = 0;
      for (int64_t f = 0; f < d; ++f) {
        const double v = row[f];
        const double corner = v > 0 ? lo[s + f] : hi[s + f];
        sum += v * corner;
      }
      o[r] = sum;
    }
  });
  return out;
}

// min over z in B_p(x, R) ∩ D of <a, z> for each row a of A ([n, M, d]),
// samples [s0, s0 + n): [n, M].
//
// Over the hull (exact for D and for Linf, where ball ∩ box is the hull) each
// coordinate takes its own end: <a, x> - sum_i |a_i| room_i, room_i the
// distance from x_i to the hull's face in the direction of -a_i.
//
// For L1 and L2 the ball cuts the hull, and the minimum is reached by moving
// each coordinate towards its face by at most room_i under the norm budget R.
// It is computed exactly through its Lagrangian dual, which is a lower bound
// for every multiplier (weak duality), so rounding in the multiplier can
// only loosen it, never make it unsound:
//  - L1: D(lambda) = <a, x> - lambda R - sum_i (|a_i| - lambda)_+ room_i,
//    maximal at the |a_i| where the rooms, taken by decreasing |a_i| (the
//    greedy order), add up to R.
//  - L2: D(t) = <a, x> - sum_i |a_i| m_i + (sum_i m_i^2 - R^2) / (2 t),
//    m_i = min(t |a_i|, room_i); maximal where sum_i m_i^2 = R^2, found
//    between the sorted saturation points t_i = room_i / |a_i|.
// Both never go below the hull's value (lambda = 0, t = inf) nor below the
// ball's <a, x> - R ||a||_q (lambda = ||a||_inf, t = R / ||a||_2), the two
// classical bounds: the dual is the tightest of the family.
torch::Tensor concretise_rows(const torch::Tensor& A, const RegionData& region, int64_t s0) {
  const int64_t n = A.size(0);
  if (!region.ball && fused(A)) {
    return hull_rows_cpu(A.contiguous(), region, s0);
  }
  auto x = region.x.narrow(0, s0, n);
  auto ax = torch::bmm(A, x.unsqueeze(2)).squeeze(2);
  auto down = (x - region.lo.narrow(0, s0, n)).unsqueeze(1);
  auto up = (region.hi.narrow(0, s0, n) - x).unsqueeze(1);
  auto room = torch::where(A > 0, down, up);
  auto magnitude = A.abs();
  auto hull = ax - (magnitude * room).sum(2);
  if (!region.ball) {
    return hull;
  }
  auto radius = region.radius.narrow(0, s0, n);
  auto finite = torch::isfinite(radius).unsqueeze(1);
  auto R = torch::where(finite, radius.unsqueeze(1), torch::zeros_like(radius.unsqueeze(1)));
  const int64_t d = A.size(2);
  torch::Tensor dual;
  if (region.p == Norm::L1) {
    auto sorted = magnitude.sort(2, /*descending=*/true);
    auto filled = room.gather(2, std::get<1>(sorted)).cumsum(2);
    auto k = (filled < R.unsqueeze(2)).sum(2, /*keepdim=*/true);  // first k with filled >= R
    auto lambda = std::get<0>(sorted).gather(2, k.clamp_max(d - 1)).squeeze(2);
    lambda = torch::where(k.squeeze(2) < d, lambda, torch::zeros_like(lambda));
    dual = ax - lambda * R - ((magnitude - lambda.unsqueeze(2)).clamp_min(0) * room).sum(2);
  } else {
    auto saturation = torch::where(magnitude > 0, room / magnitude, torch::full_like(room, kInf));
    auto sorted = saturation.sort(2);
    const auto& s = std::get<0>(sorted);
    const auto& order = std::get<1>(sorted);
    auto room2 = room.gather(2, order).square();
    auto a2 = magnitude.gather(2, order).square();
    auto saturated = room2.cumsum(2) - room2;           // sum of room_i^2 over i < j
    auto free = a2.flip(2).cumsum(2).flip(2);           // sum of a_i^2 over i >= j
    auto at_breakpoint = torch::where(torch::isinf(s), torch::full_like(s, kInf), saturated + s.square() * free);
    auto R2 = R.square();
    auto k = (at_breakpoint <= R2.unsqueeze(2)).sum(2, /*keepdim=*/true);
    auto kc = k.clamp_max(d - 1);
    auto t = ((R2 - saturated.gather(2, kc).squeeze(2)).clamp_min(0) / free.gather(2, kc).squeeze(2)).sqrt();
    auto usable = (k.squeeze(2) < d) & torch::isfinite(t) & (t > 0);
    auto ts = torch::where(usable, t, torch::ones_like(t));
    auto m = torch::minimum(ts.unsqueeze(2) * magnitude, room);
    dual = ax - (magnitude * m).sum(2) + (m.square().sum(2) - R2) / (2 * ts);
    dual = torch::where(usable, dual, hull);
  }
  dual = torch::where(torch::isnan(dual), hull, dual);
  return torch::where(finite, torch::maximum(hull, dual), hull);
}

// The ball's exact minimum keeps a dozen row-sized temporaries (the sort, its
// gathers and running sums), so it goes through the rows in slices of at
// most this many entries (8 MB each).
constexpr int64_t kDualEntries = int64_t{1} << 20;

torch::Tensor concretise(const torch::Tensor& A, const RegionData& region, int64_t s0) {
  const int64_t n = A.size(0);
  const int64_t m = A.size(1);
  const int64_t step = std::max<int64_t>(1, kDualEntries / std::max<int64_t>(n * A.size(2), 1));
  if (!region.ball || step >= m) {
    return concretise_rows(A, region, s0);
  }
  std::vector<torch::Tensor> parts;
  for (int64_t j0 = 0; j0 < m; j0 += step) {
    parts.push_back(concretise_rows(A.narrow(1, j0, std::min(step, m - j0)), region, s0));
  }
  return torch::cat(parts, 1);
}

// Lower bounds of <A_r, h> over the region, where h is the input of layer
// `end` and A holds rows for samples [s0, s0 + n): A [n, M, ...shape[end]],
// result [n, M].
torch::Tensor backward_lower(
    const Chain& chain, int64_t end, torch::Tensor A, const RegionData& region, int64_t s0) {
  const int64_t n = A.size(0);
  const int64_t m = A.size(1);
  auto constant = torch::zeros({n, m}, A.options());
  for (int64_t i = end - 1; i >= 0; --i) {
    const Layer& layer = chain.layers[i];
    const auto& in_shape = chain.shape[i];
    switch (layer.kind) {
      case LayerKind::Linear:
        if (layer.bias.defined()) {
          constant = constant + torch::matmul(A, layer.bias);
        }
        A = torch::matmul(A, layer.weight);
        break;
      case LayerKind::Conv2d: {
        const auto& out_shape = chain.shape[i + 1];
        auto flat = A.reshape({n * m, out_shape[0], out_shape[1], out_shape[2]});
        if (layer.bias.defined()) {
          constant = constant + torch::matmul(flat.sum({2, 3}), layer.bias).view({n, m});
        }
        // The transpose of the convolution; output_padding restores the rows
        // and columns the forward stride dropped.
        std::vector<int64_t> output_padding(2);
        for (int k = 0; k < 2; ++k) {
          const int64_t covered = (out_shape[1 + k] - 1) * layer.stride[k] - 2 * layer.padding[k] +
              layer.weight.size(2 + k);
          output_padding[k] = in_shape[1 + k] - covered;
        }
        A = F::conv_transpose2d(
                flat, layer.weight,
                F::ConvTranspose2dFuncOptions()
                    .stride(layer.stride)
                    .padding(layer.padding)
                    .output_padding(output_padding))
                .view(rows_shape(n, m, in_shape));
        break;
      }
      case LayerKind::ChannelAffine: {
        std::vector<int64_t> view(A.dim(), 1);
        if (layer.weight.numel() > 1) {
          view[2] = layer.weight.numel();
        }
        if (layer.bias.defined()) {
          std::vector<int64_t> shift_view(A.dim(), 1);
          if (layer.bias.numel() > 1) {
            shift_view[2] = layer.bias.numel();
          }
          constant = constant + (A * layer.bias.reshape(shift_view)).flatten(2).sum(2);
        }
        A = A * layer.weight.reshape(view);
        break;
      }
      case LayerKind::Flatten:
        A = A.reshape(rows_shape(n, m, in_shape));
        break;
      case LayerKind::ReLU:
      case LayerKind::Softplus:
      case LayerKind::Tanh: {
        // A lower bound of <a, sigma(z)> takes sigma's lower line where
        // a_i > 0 and its upper line where a_i < 0.
        const Relaxation& relaxation = chain.relaxation[i];
        BB_ASSERT(relaxation.lower.slope.defined(), "layer {} has no relaxation", i);
        if (fused(A)) {
          A = relax_rows_cpu(A.contiguous(), relaxation, s0, constant);
          break;
        }
        auto pick = [&](const torch::Tensor& t) { return t.narrow(0, s0, n).unsqueeze(1); };
        auto column = [&](const torch::Tensor& t) { return t.narrow(0, s0, n).reshape({n, -1, 1}); };
        auto positive = A.clamp_min(0);
        auto negative = A - positive;
        constant = constant + torch::bmm(negative.reshape({n, m, -1}), column(relaxation.upper.offset)).squeeze(2);
        if (!relaxation.lower_offset_zero) {
          constant = constant + torch::bmm(positive.reshape({n, m, -1}), column(relaxation.lower.offset)).squeeze(2);
        }
        A = negative * pick(relaxation.upper.slope) + positive * pick(relaxation.lower.slope);
        break;
      }
    }
  }
  return constant + concretise(A.reshape({n, m, -1}), region, s0);
}

// The rows of an affine layer's output neurons `index` ([n, k], flat) as
// linear functions of its input: rows [n, k, ...shape[i]] and constants
// [n, k]. A backward pass that starts from unit rows at an activation's input
// starts here instead: a Linear row is a row of W, and a Conv2d row is the
// neuron's kernel written at its window of the padded input (then cropped),
// which costs the kernel's size instead of a full transposed convolution of
// a unit tensor.
std::pair<torch::Tensor, torch::Tensor> affine_rows(
    const Chain& chain, int64_t i, const torch::Tensor& index) {
  const Layer& layer = chain.layers[i];
  const int64_t n = index.size(0);
  const int64_t k = index.size(1);
  auto flat = index.reshape({-1});
  if (layer.kind == LayerKind::Linear) {
    auto rows = layer.weight.index_select(0, flat).view(rows_shape(n, k, chain.shape[i]));
    auto constant = layer.bias.defined() ? layer.bias.index_select(0, flat).view({n, k})
                                         : torch::zeros({n, k}, rows.options());
    return {rows, constant};
  }
  BB_ASSERT(layer.kind == LayerKind::Conv2d, "no rows for {}", layer.describe());
  const auto& in = chain.shape[i];    // C, H, W
  const auto& out = chain.shape[i + 1];
  const int64_t kh = layer.weight.size(2);
  const int64_t kw = layer.weight.size(3);
  const int64_t hp = in[1] + 2 * layer.padding[0];
  const int64_t wp = in[2] + 2 * layer.padding[1];
  auto channel = flat.div(out[1] * out[2], "floor");
  auto y = flat.div(out[2], "floor").remainder(out[1]);
  auto x = flat.remainder(out[2]);
  auto base = y * (layer.stride[0] * wp) + x * layer.stride[1];  // window's corner in the padded input
  auto options = flat.options();
  auto offset = (torch::arange(in[0], options).view({-1, 1, 1}) * (hp * wp) +
                 torch::arange(kh, options).view({1, -1, 1}) * wp + torch::arange(kw, options).view({1, 1, -1}))
                    .reshape({1, -1});
  auto kernel = layer.weight.reshape({layer.weight.size(0), -1}).index_select(0, channel);
  auto canvas = torch::zeros({n * k, in[0] * hp * wp}, kernel.options())
                    .scatter_(1, base.unsqueeze(1) + offset, kernel)
                    .view({n * k, in[0], hp, wp})
                    .narrow(2, layer.padding[0], in[1])
                    .narrow(3, layer.padding[1], in[2]);
  auto rows = canvas.reshape(rows_shape(n, k, in));
  auto constant = layer.bias.defined() ? layer.bias.index_select(0, channel).view({n, k})
                                       : torch::zeros({n, k}, rows.options());
  return {rows, constant};
}

// Rows per chunk for a backward pass from layer `end`: the budget over the
// widest layer shape the rows pass through.
int64_t chunk_rows(const Chain& chain, int64_t end) {
  int64_t widest = 1;
  for (int64_t i = 0; i <= end; ++i) {
    widest = std::max(widest, numel(chain.shape[i]));
  }
  return std::max<int64_t>(2, kChunkEntries / widest);
}

// Tightens [lower, upper] (float64 [N, ...shape[end]], in place) by CROWN
// for the input of activation layer `end`. For ReLU only the neurons whose
// interval still straddles 0: a stable ReLU is relaxed exactly whatever its
// bounds, so CROWN would only sharpen numbers no consumer reads (their
// interval stays IBP's). Softplus and tanh neurons are all bounded.
//
// Chunking: rows are (sample, neuron, sign), and a chunk holds
// rows = kChunkEntries / (widest shape on the way back) of them. Samples go
// in blocks of nb = min(N, rows / 2), and each block's neurons in slices of
// mc = rows / (2 nb), so a chunk is 2 nb mc <= rows rows. A block takes the
// neurons of its samples sorted unstable first and padded to its largest
// count with stable ones (whose extra bounds are sound too). The MNIST CNN's
// second convolution (3,136 neurons, widest shape 6,272) goes 668 rows at a
// time: 334 (neuron, sign) rows per sample in a block of 10 samples, 33
// neurons each.
void tighten(const Chain& chain, int64_t end, const RegionData& region,
             torch::Tensor& lower, torch::Tensor& upper) {
  const Layer& layer = chain.layers[end];
  const int64_t N = lower.size(0);
  const int64_t features = numel(chain.shape[end]);
  auto low = lower.reshape({N, features}).clone();
  auto high = upper.reshape({N, features}).clone();
  const int64_t rows = chunk_rows(chain, end);
  const int64_t nb = std::min(N, std::max<int64_t>(1, rows / 2));
  for (int64_t s0 = 0; s0 < N; s0 += nb) {
    const int64_t n = std::min(nb, N - s0);
    auto low_block = low.narrow(0, s0, n);
    auto high_block = high.narrow(0, s0, n);
    torch::Tensor neurons;
    int64_t count = features;
    if (layer.kind == LayerKind::ReLU) {
      auto unstable = ((low_block < 0) & (high_block > 0)).to(torch::kInt32);
      count = unstable.sum(1).max().item<int64_t>();
      if (count == 0) {
        continue;
      }
      neurons = std::get<1>(unstable.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true))
                    .narrow(1, 0, count);
    } else {
      neurons = torch::arange(features, low.options().dtype(torch::kInt64)).expand({n, features});
    }
    const int64_t mc = std::max<int64_t>(1, rows / (2 * n));
    for (int64_t j0 = 0; j0 < count; j0 += mc) {
      const int64_t k = std::min(mc, count - j0);
      auto index = neurons.narrow(1, j0, k).contiguous();
      torch::Tensor bound;
      const auto before = end > 0 ? chain.layers[end - 1].kind : layer.kind;
      if (before == LayerKind::Linear || before == LayerKind::Conv2d) {
        auto [rows, constant] = affine_rows(chain, end - 1, index);
        bound = backward_lower(chain, end - 1, torch::cat({rows, -rows}, 1), region, s0) +
            torch::cat({constant, -constant}, 1);
      } else {
        auto unit = torch::zeros({n, k, features}, low.options()).scatter_(2, index.unsqueeze(2), 1.0);
        auto A = torch::cat({unit, -unit}, 1).view(rows_shape(n, 2 * k, chain.shape[end]));
        bound = backward_lower(chain, end, A, region, s0);
      }
      auto crown_low = bound.narrow(1, 0, k);
      auto crown_high = -bound.narrow(1, k, k);
      low_block.scatter_(1, index, torch::maximum(low_block.gather(1, index), crown_low));
      high_block.scatter_(1, index, torch::minimum(high_block.gather(1, index), crown_high));
    }
  }
  lower = low.view(lower.sizes());
  upper = high.view(upper.sizes());
}

}  // namespace

namespace detail {
void use_fused_crown_kernels(bool on) {
  use_fused = on;
}
}  // namespace detail

PreActivationBounds crown_bounds(const LayerList& layers, const Region& region) {
  torch::NoGradGuard no_grad;
  Chain chain = make_chain(layers, region.center());
  RegionData data = region_data(region);
  const int64_t N = data.x.size(0);
  auto lower = data.lo.view(rows_shape(N, 1, chain.shape[0])).squeeze(1);
  auto upper = data.hi.view(rows_shape(N, 1, chain.shape[0])).squeeze(1);
  PreActivationBounds bounds;
  // IBP runs alongside, restarted from every tightened layer: its interval
  // for the next activation comes from CROWN's bounds on this one, so it is
  // inside plain IBP's and the intersection is at least as tight.
  for (size_t i = 0; i < chain.layers.size(); ++i) {
    const Layer& layer = chain.layers[i];
    if (is_activation(layer.kind)) {
      tighten(chain, static_cast<int64_t>(i), data, lower, upper);
      bounds.layer.push_back(static_cast<int64_t>(i));
      bounds.lower.push_back(lower);
      bounds.upper.push_back(upper);
      chain.relaxation[i] = relax(layer, lower, upper);
    }
    std::tie(lower, upper) = detail::interval_forward(layer, lower, upper);
  }
  return bounds;
}

torch::Tensor crown_margin_lower(
    const LayerList& layers,
    const Region& region,
    const PreActivationBounds& bounds,
    const torch::Tensor& c,
    const torch::Tensor& targets) {
  torch::NoGradGuard no_grad;
  Chain chain = make_chain(layers, region.center());
  RegionData data = region_data(region);
  const int64_t N = data.x.size(0);
  size_t next = 0;
  for (size_t i = 0; i < chain.layers.size(); ++i) {
    if (!is_activation(chain.layers[i].kind)) {
      continue;
    }
    BB_ASSERT(
        next < bounds.layer.size() && bounds.layer[next] == static_cast<int64_t>(i),
        "pre-activation bounds do not match the chain at layer {}", i);
    auto shape = rows_shape(N, 1, chain.shape[i]);
    auto l = bounds.lower[next].to(data.x.options()).reshape(shape).squeeze(1);
    auto u = bounds.upper[next].to(data.x.options()).reshape(shape).squeeze(1);
    chain.relaxation[i] = relax(chain.layers[i], l, u);
    ++next;
  }
  BB_ASSERT(next == bounds.layer.size(), "pre-activation bounds for {} layers, chain has {}",
            bounds.layer.size(), next);
  const auto& out_shape = chain.shape.back();
  BB_ASSERT(out_shape.size() == 1, "the chain's output is not [N, classes]");
  const int64_t classes = out_shape[0];
  const int64_t m = targets.size(1);
  auto index = targets.to(data.x.device(), torch::kInt64);
  auto rows = torch::zeros({N, m, classes}, data.x.options());
  rows.scatter_add_(2, c.to(index.options()).view({N, 1, 1}).expand({N, m, 1}),
                    torch::ones({N, m, 1}, rows.options()));
  rows.scatter_add_(2, index.unsqueeze(2), -torch::ones({N, m, 1}, rows.options()));
  const int64_t end = static_cast<int64_t>(chain.layers.size());
  const int64_t budget = chunk_rows(chain, end);
  const int64_t nb = std::min(N, std::max<int64_t>(1, budget / std::max<int64_t>(m, 1)));
  const int64_t mc = std::max<int64_t>(1, budget / nb);
  auto out = torch::empty({N, m}, rows.options());
  for (int64_t s0 = 0; s0 < N; s0 += nb) {
    const int64_t n = std::min(nb, N - s0);
    for (int64_t j0 = 0; j0 < m; j0 += mc) {
      const int64_t k = std::min(mc, m - j0);
      auto A = rows.narrow(0, s0, n).narrow(1, j0, k);
      out.narrow(0, s0, n).narrow(1, j0, k).copy_(backward_lower(chain, end, A, data, s0));
    }
  }
  return out;
}

}  // namespace bb
