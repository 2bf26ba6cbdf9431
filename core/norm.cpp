#include "core/norm.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include <torch/torch.h>

#include "core/error.h"
#include "core/random.h"
#include "core/row_kernels.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

namespace detail {

// Offset d = y - center of the projection of w = z - center onto
// {||d||_2 <= r} ∩ [l, u] (l <= 0 <= u). The KKT conditions give
// d = clip(t w, l, u) with t in [0, 1]; f(t) = ||clip(t w, l, u)||^2 grows
// with t and coordinate i saturates at t_i = bound_i / w_i. Two exact ways to
// find t with f(t) = r^2 (or t = 1 when clip(w, l, u) is inside the ball):
//
// Sorted breakpoints (any device, no host read): after sorting the t_i, f at
// each breakpoint is known in closed form by cumulative sums, the segment
// that holds r is found by counting, and t solves a quadratic on it.
torch::Tensor project_l2_offset_sorted(
    const torch::Tensor& w,
    const torch::Tensor& l,
    const torch::Tensor& u,
    const torch::Tensor& r) {
  const int64_t n = w.size(0);
  auto zeros = torch::zeros_like(w);
  auto bound = torch::where(w > 0, u, torch::where(w < 0, l, zeros));
  auto breakpoint = torch::where(w != 0, bound / w, torch::full_like(w, kInf));
  auto sorted = breakpoint.sort(/*dim=*/1);
  auto tau = std::get<0>(sorted);
  auto order = std::get<1>(sorted);
  auto w2 = w.square().gather(1, order);
  auto b2 = bound.square().gather(1, order);
  auto saturated_b2 = b2.cumsum(1);  // sum over i <= k of b_i^2
  auto suffix_w2 = w2.flip(1).cumsum(1).flip(1);  // sum over i >= k of w_i^2
  auto tail_w2 = torch::cat(  // sum over i > k of w_i^2, exactly 0 at the end
      {suffix_w2.narrow(1, 1, suffix_w2.size(1) - 1), zeros.narrow(1, 0, 1)},
      1);
  auto at_breakpoint = saturated_b2 +
      torch::where(tail_w2 > 0, tau.square() * tail_w2, zeros);
  auto r2 = r.square();
  auto saturated = (at_breakpoint < r2).sum(1, /*keepdim=*/true);
  auto column0 = torch::zeros({n, 1}, w.options());
  auto b2_before = torch::cat({column0, saturated_b2}, 1).gather(1, saturated);
  auto w2_after = torch::cat({suffix_w2.narrow(1, 0, 1), tail_w2}, 1)
                      .gather(1, saturated);
  auto t = torch::where(
                w2_after > 0,
                ((r2 - b2_before) / w2_after).clamp_min(0).sqrt(),
                torch::ones_like(w2_after))
               .clamp_max(1.0);
  return torch::min(torch::max(t * w, l), u);
}

// Offset of the projection onto {||d||_1 <= r} ∩ [l, u]. The KKT conditions
// give d_i = sign(w_i) clamp(|w_i| - lambda, 0, c_i), c_i the room in the
// direction of w_i. G(lambda) = ||d(lambda)||_1 is piecewise linear and
// non-increasing, with slope -1 per coordinate for lambda in
// [|w_i| - c_i, |w_i|]. Sorting those events gives G at every event by
// cumulative sums; lambda is interpolated on the segment where G crosses r.
torch::Tensor project_l1_offset_sorted(
    const torch::Tensor& w,
    const torch::Tensor& l,
    const torch::Tensor& u,
    const torch::Tensor& r) {
  const int64_t n = w.size(0);
  const int64_t d = w.size(1);
  auto a = w.abs();
  auto room = torch::where(w > 0, u, -l);
  auto g0 = torch::min(a, room).sum(1, /*keepdim=*/true);
  auto column0 = torch::zeros({n, 1}, w.options());
  auto position = torch::cat({column0, (a - room).clamp_min(0), a}, 1);
  auto delta = torch::cat(
      {column0, torch::full({n, d}, -1.0, w.options()),
       torch::full({n, d}, 1.0, w.options())},
      1);
  auto sorted = position.sort(/*dim=*/1);
  auto pos = std::get<0>(sorted);
  auto slope = delta.gather(1, std::get<1>(sorted)).cumsum(1);
  auto segment = pos.narrow(1, 1, 2 * d) - pos.narrow(1, 0, 2 * d);
  auto g_at = g0 + torch::cat(
                       {column0, (slope.narrow(1, 0, 2 * d) * segment).cumsum(1)},
                       1);
  auto above = (g_at > r).sum(1, /*keepdim=*/true);
  auto k = (above - 1).clamp_min(0);
  auto lambda = pos.gather(1, k) +
      (g_at.gather(1, k) - r) / (-slope.gather(1, k)).clamp_min(1.0);
  lambda = torch::where(above > 0, lambda, column0);
  return torch::min((a - lambda).clamp_min(0), room) * w.sign();
}

}  // namespace detail

namespace {


// [N, d]: one row per sample.
torch::Tensor flat(const torch::Tensor& v) {
  return v.reshape({v.size(0), -1});
}

// The radius as a [N, 1] column with the given options.
torch::Tensor radius_column(
    const torch::Tensor& radius,
    int64_t n,
    const torch::TensorOptions& options) {
  torch::Tensor r = radius.to(options);
  if (r.dim() == 0) {
    r = r.expand({n});
  }
  BB_ASSERT(
      r.dim() == 1 && r.size(0) == n,
      "radius must have shape [{}], has {} dims",
      n,
      r.dim());
  return r.reshape({n, 1});
}

}  // namespace

Norm parse_norm(const std::string& text, const std::string& what) {
  std::string key = text;
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) {
    return static_cast<char>(std::tolower(ch));
  });
  if (key == "1" || key == "l1") {
    return Norm::L1;
  }
  if (key == "2" || key == "l2") {
    return Norm::L2;
  }
  if (key == "inf" || key == "linf") {
    return Norm::Linf;
  }
  throw Error(fmt::format(
      "{}: unknown norm '{}' (valid: 1, 2, inf, or l1, l2, linf)", what, text));
}

std::string norm_name(Norm p) {
  switch (p) {
    case Norm::L1:
      return "L1";
    case Norm::L2:
      return "L2";
    case Norm::Linf:
      return "Linf";
  }
  BB_ASSERT(false, "unhandled norm {}", static_cast<int>(p));
}

Norm dual(Norm p) {
  switch (p) {
    case Norm::L1:
      return Norm::Linf;
    case Norm::L2:
      return Norm::L2;
    case Norm::Linf:
      return Norm::L1;
  }
  BB_ASSERT(false, "unhandled norm {}", static_cast<int>(p));
}

std::vector<Norm> all_norms() {
  return {Norm::L1, Norm::L2, Norm::Linf};
}

torch::Tensor lp_norm(const torch::Tensor& v, Norm p) {
  auto f = flat(v);
  switch (p) {
    case Norm::L1:
      return f.abs().sum(1);
    case Norm::L2:
      return f.norm(2, {1});
    case Norm::Linf:
      return f.abs().amax(1);
  }
  BB_ASSERT(false, "unhandled norm {}", static_cast<int>(p));
}

torch::Tensor per_sample(const torch::Tensor& v, const torch::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = v.size(0);
  return v.view(shape);
}

torch::Tensor steepest_direction(const torch::Tensor& g, Norm p) {
  auto f = flat(g);
  switch (p) {
    case Norm::Linf:
      return g.sign();
    case Norm::L2: {
      auto length = f.norm(2, {1}, /*keepdim=*/true);
      return torch::where(length > 0, f / length, torch::zeros_like(f))
          .view_as(g);
    }
    case Norm::L1: {
      auto index = f.abs().argmax(1, /*keepdim=*/true);
      return torch::zeros_like(f)
          .scatter_(1, index, f.gather(1, index).sign())
          .view_as(g);
    }
  }
  BB_ASSERT(false, "unhandled norm {}", static_cast<int>(p));
}

torch::Tensor project_ball_box(
    const torch::Tensor& center,
    const torch::Tensor& z,
    const torch::Tensor& radius,
    Norm p,
    Box box) {
  BB_ASSERT(
      center.sizes() == z.sizes(),
      "center and z differ in shape: {} vs {}",
      center.sizes(),
      z.sizes());
  const int64_t n = z.size(0);
  // In the input's precision (float64 stays exact; float32 is twice as fast
  // and lands within float rounding of the ball).
  auto options = z.options().dtype(
      z.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32);
  auto x0 = flat(center).to(options);
  auto zf = flat(z).to(options);
  auto r = radius_column(radius, n, options);
  if (p == Norm::Linf) {
    // Coordinate-wise: a clamp to [max(lo, x - r), min(hi, x + r)].
    auto lower = (x0 - r).clamp_min(box.lo);
    auto upper = (x0 + r).clamp_max(box.hi);
    return torch::min(torch::max(zf, lower), upper).to(z.scalar_type()).view_as(z);
  }
  auto w = zf - x0;
  auto l = box.lo - x0;
  auto u = box.hi - x0;
  auto offset = detail::use_row_kernels(w) ? detail::project_offset_cpu(w, l, u, r, p)
      : p == Norm::L2      ? detail::project_l2_offset_sorted(w, l, u, r)
                           : detail::project_l1_offset_sorted(w, l, u, r);
  // Coordinates the projection leaves alone keep their exact value.
  auto y = torch::where(offset == w, zf, x0 + offset);
  return y.clamp(box.lo, box.hi).to(z.scalar_type()).view_as(z);
}

torch::Tensor feasible_ascent(const torch::Tensor& grad, const torch::Tensor& z, Box box) {
  auto movable = torch::where(grad > 0, z < box.hi, z > box.lo);
  return grad * movable;
}

torch::Tensor feasible_descent(const torch::Tensor& grad, const torch::Tensor& z, Box box) {
  auto movable = torch::where(grad < 0, z < box.hi, z > box.lo);
  return grad * movable;
}

torch::Tensor ascent_step(
    const torch::Tensor& x,
    const torch::Tensor& z,
    const torch::Tensor& grad,
    const torch::Tensor& radius,
    const torch::Tensor& step,
    Norm p,
    Box box,
    const torch::Tensor& keep) {
  BB_ASSERT(
      x.sizes() == z.sizes() && grad.sizes() == z.sizes(),
      "x, z and grad differ in shape: {}, {}, {}",
      x.sizes(),
      z.sizes(),
      grad.sizes());
  if (detail::use_row_kernels(z)) {
    return detail::ascent_step_cpu({x, z, grad, radius, step, p, box, keep});
  }
  const int64_t n = z.size(0);
  auto eta = radius_column(step, n, z.options()).view({n});
  auto moved = z + per_sample(eta, z) * steepest_direction(feasible_ascent(grad, z, box), p);
  auto next = project_ball_box(x, moved, radius, p, box);
  return keep.defined() ? torch::where(per_sample(keep, z), z, next) : next;
}

torch::Tensor feasible_descent_norms(
    const torch::Tensor& grads,
    const torch::Tensor& z,
    Norm q,
    Box box) {
  BB_ASSERT(
      grads.dim() == z.dim() + 1 && grads.size(0) == z.size(0) &&
          grads.numel() == z.numel() * grads.size(1),
      "grads {} must be [N, m] followed by the shape of z {}",
      grads.sizes(),
      z.sizes());
  if (detail::use_row_kernels(grads)) {
    return detail::feasible_descent_norms_cpu(grads, z, q, box);
  }
  const int64_t n = grads.size(0);
  const int64_t m = grads.size(1);
  auto masked = feasible_descent(grads, z.unsqueeze(1), box);
  return lp_norm(masked.reshape({n * m, -1}), q).view({n, m});
}

namespace {

// Where the random numbers of sample_ball come from: torch's global
// generator, or one counter-based stream per sample.
struct BallDraws {
  std::function<torch::Tensor(at::IntArrayRef)> uniform;      // in [0, 1)
  std::function<torch::Tensor(at::IntArrayRef)> normal;
  std::function<torch::Tensor(at::IntArrayRef)> exponential;
  std::function<torch::Tensor(at::IntArrayRef)> sign;         // -1 or +1
};

torch::Tensor sample_ball_from(
    const torch::Tensor& center,
    const torch::Tensor& radius,
    Norm p,
    int64_t draws,
    const BallDraws& random) {
  const int64_t n = center.size(0);
  const int64_t d = center.numel() / std::max<int64_t>(n, 1);
  auto options = center.options();
  auto r = radius_column(radius, n, options).reshape({n, 1, 1});
  torch::Tensor unit;  // [N, draws, d], uniform in the unit ball
  switch (p) {
    case Norm::Linf:
      unit = random.uniform({n, draws, d}) * 2 - 1;
      break;
    case Norm::L2: {
      auto gauss = random.normal({n, draws, d});
      auto direction = gauss / gauss.norm(2, {2}, /*keepdim=*/true);
      auto length = random.uniform({n, draws, 1}).pow(1.0 / d);
      unit = direction * length;
      break;
    }
    case Norm::L1: {
      // d + 1 exponential spacings normalised by their sum: the first d are
      // uniform on the simplex {y >= 0, sum y <= 1}; random signs make the
      // point uniform in the cross-polytope.
      auto spacing = random.exponential({n, draws, d + 1});
      auto simplex =
          spacing.narrow(2, 0, d) / spacing.sum(2, /*keepdim=*/true);
      unit = simplex * random.sign({n, draws, d});
      break;
    }
  }
  std::vector<int64_t> shape{n, draws};
  for (int64_t i = 1; i < center.dim(); ++i) {
    shape.push_back(center.size(i));
  }
  return (flat(center).unsqueeze(1) + r * unit).reshape(shape);
}

}  // namespace

torch::Tensor sample_ball(
    const torch::Tensor& center,
    const torch::Tensor& radius,
    Norm p,
    int64_t draws) {
  auto options = center.options();
  BallDraws global{
      [options](at::IntArrayRef s) { return torch::rand(s, options); },
      [options](at::IntArrayRef s) { return torch::randn(s, options); },
      [options](at::IntArrayRef s) { return torch::empty(s, options).exponential_(); },
      [options](at::IntArrayRef s) { return torch::randint(0, 2, s, options) * 2 - 1; },
  };
  return sample_ball_from(center, radius, p, draws, global);
}

torch::Tensor sample_ball(
    const torch::Tensor& center,
    const torch::Tensor& radius,
    Norm p,
    int64_t draws,
    RandomStreams& streams) {
  BB_ASSERT(streams.size() == center.size(0), "{} random streams for {} samples", streams.size(), center.size(0));
  const auto dtype = center.scalar_type();
  // Each call drops the leading [N] of the request: the streams add it.
  auto tail = [](at::IntArrayRef s) { return s.slice(1); };
  BallDraws own{
      [&](at::IntArrayRef s) { return streams.uniform(tail(s), dtype); },
      [&](at::IntArrayRef s) { return streams.normal(tail(s), dtype); },
      [&](at::IntArrayRef s) { return streams.exponential(tail(s), dtype); },
      [&](at::IntArrayRef s) { return (streams.uniform(tail(s), dtype) < 0.5).to(dtype) * 2 - 1; },
  };
  return sample_ball_from(center, radius, p, draws, own);
}

}  // namespace bb
