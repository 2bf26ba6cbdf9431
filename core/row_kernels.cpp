// CPU row kernels behind the norm policy. On MNIST-sized inputs a chain of
// tensor operations over [N, d] costs more than the model's own forward and
// backward pass: every operation is one more pass over memory and one more
// dispatch. These kernels do the same mathematics one sample at a time (rows
// in parallel, each row hot in cache), in a few passes per row. Other
// devices use the tensor versions in norm.cpp; the tests hold both to the
// same answers.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <torch/torch.h>

#include "core/error.h"
#include "core/norm.h"

namespace bb::detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Scratch for the rare L1 fallback.
struct RowScratch {
  std::vector<double> point;  // kinks inside the bracket
};

// The passes over a row are written once for a scalar double and once more
// for Lanes, four doubles that GCC maps onto the target's vector unit (two
// SSE2 registers on baseline x86-64): comparisons give lane masks and
// `mask ? a : b` selects, so the loops have no branches to mispredict.
// Inputs of type T are widened to double; sums run in double.
typedef double Lanes __attribute__((vector_size(16)));
constexpr int64_t kLanes = 2;

template <typename T>
inline Lanes load_lanes(const T* p) {
  Lanes v;
  for (int64_t k = 0; k < kLanes; ++k) {
    v[k] = static_cast<double>(p[k]);
  }
  return v;
}

template <typename T>
inline void store_lanes(T* p, Lanes v) {
  for (int64_t k = 0; k < kLanes; ++k) {
    p[k] = static_cast<T>(v[k]);
  }
}

// The lanes of v folded into one double by `op` (a scalar is its own fold).
template <typename Op>
inline double lane_fold(double v, Op) {
  return v;
}
template <typename Op>
inline double lane_fold(Lanes v, Op op) {
  double folded = v[0];
  for (int64_t k = 1; k < kLanes; ++k) {
    folded = op(folded, v[k]);
  }
  return folded;
}
template <typename D>
inline double lane_sum(D v) {
  return lane_fold(v, [](double a, double b) { return a + b; });
}
template <typename D>
inline double lane_min(D v) {
  return lane_fold(v, [](double a, double b) { return std::min(a, b); });
}
template <typename D>
inline double lane_max(D v) {
  return lane_fold(v, [](double a, double b) { return std::max(a, b); });
}

// std::min and std::max, std::abs, for doubles and Lanes alike.
template <typename D>
inline D vmin(D a, D b) { return b < a ? b : a; }
template <typename D>
inline D vmax(D a, D b) { return a < b ? b : a; }
template <typename D>
inline D vabs(D a) { return a < D{} ? D{} - a : a; }

// f(i, width) over [0, d): width kLanes while four coordinates are left,
// then 1; load<width> and store read and write a coordinate group.
template <typename F>
inline void each(int64_t d, F f) {
  int64_t i = 0;
  for (; i + kLanes <= d; i += kLanes) {
    f(i, std::integral_constant<int64_t, kLanes>{});
  }
  for (; i < d; ++i) {
    f(i, std::integral_constant<int64_t, 1>{});
  }
}

template <int64_t Width, typename T>
inline auto load(const T* p) {
  if constexpr (Width == kLanes) {
    return load_lanes(p);
  } else {
    return static_cast<double>(*p);
  }
}

template <typename T>
inline void store(T* p, Lanes v) { store_lanes(p, v); }
template <typename T>
inline void store(T* p, double v) { *p = static_cast<T>(v); }

// v rounded to T and widened back (a no-op for double).
typedef float FloatPair __attribute__((vector_size(8)));
template <typename T>
inline double round_as(double v) {
  return static_cast<double>(static_cast<T>(v));
}
template <typename T>
inline Lanes round_as(Lanes v) {
  if constexpr (std::is_same_v<T, float>) {
    static_assert(kLanes == 2, "FloatPair holds two lanes");
    return __builtin_convertvector(__builtin_convertvector(v, FloatPair), Lanes);
  } else {
    return v;
  }
}

// The same in T itself, 16 bytes at a time (four floats or two doubles),
// for passes that must round exactly as the tensor operations do.
template <typename T>
struct NativeLanes;
template <>
struct NativeLanes<float> {
  typedef float type __attribute__((vector_size(16)));
};
template <>
struct NativeLanes<double> {
  typedef double type __attribute__((vector_size(16)));
};

template <typename T, typename F>
inline void each_native(int64_t d, F f) {
  using V = typename NativeLanes<T>::type;
  constexpr int64_t width = sizeof(V) / sizeof(T);
  int64_t i = 0;
  for (; i + width <= d; i += width) {
    f(i, V{});
  }
  for (; i < d; ++i) {
    f(i, T{});
  }
}

template <typename V, typename T>
inline V load_native(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V, typename T>
inline void store_native(T* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// body(w, l, u, acc) over coordinates [0, d) of three rows: four at a time
// into `lanes`, the rest one at a time into `single`.
template <typename T, typename LaneAcc, typename SingleAcc, typename Body>
inline void sweep(const T* w, const T* l, const T* u, int64_t d, LaneAcc& lanes, SingleAcc& single, Body body) {
  each(d, [&](int64_t i, auto width) {
    constexpr int64_t W = decltype(width)::value;
    if constexpr (W == kLanes) {
      body(load<W>(w + i), load<W>(l + i), load<W>(u + i), lanes);
    } else {
      body(load<W>(w + i), load<W>(l + i), load<W>(u + i), single);
    }
  });
}

// How far a coordinate can move in the direction of w: u for w > 0, -l
// otherwise (l <= 0 <= u).
template <typename D>
inline D room_of(D w, D l, D u) {
  return w > D{} ? u : D{} - l;
}

// L2, by a growing saturated set. The KKT conditions give the offset
// d = clip(t w, l, u) with t in [0, 1]; f(t) = ||clip(t w, l, u)||^2 grows
// with t, and coordinate i is saturated at t when t |w_i| >= room_i. With S
// the coordinates saturated at t_k, q(t) = sum_S room_i^2 + t^2 sum_{not S}
// w_i^2 bounds f from above for t >= t_k, so t_{k+1} = sqrt((r^2 - sum_S
// room_i^2) / sum_{not S} w_i^2) stays at or below the solution with
// f(t_{k+1}) <= r^2. When no coordinate saturates in (t_k, t_{k+1}], q = f
// there and t_{k+1} is exact; otherwise S grows, so it ends within d + 1
// rounds (two or three on images). One pass a round.
template <typename D>
struct L2Sums {
  D saturated_room2{};
  D free_w2{};
  D saturated{};  // |S|
  D fits{};       // f(1) = ||clip(w, l, u)||^2
};

struct L2Pass {
  double saturated_room2 = 0;
  double free_w2 = 0;
  double saturated = 0;
  double fits = 0;
};

template <typename D, typename Acc>
inline void l2_accumulate(D wi, D li, D ui, double t, Acc& acc) {
  const D zero{};
  const D room = room_of(wi, li, ui);
  const D a = vabs(wi);
  const auto at_bound = t * a >= room;
  acc.saturated_room2 += at_bound ? room * room : zero;
  acc.free_w2 += at_bound ? zero : wi * wi;
  acc.saturated += at_bound ? zero + 1.0 : zero;
  const D clipped = vmin(a, room);
  acc.fits += clipped * clipped;
}

inline L2Pass l2_total(const L2Sums<Lanes>& lanes, const L2Sums<double>& single) {
  return {
      lane_sum(lanes.saturated_room2) + single.saturated_room2,
      lane_sum(lanes.free_w2) + single.free_w2,
      lane_sum(lanes.saturated) + single.saturated,
      lane_sum(lanes.fits) + single.fits};
}

template <typename T>
L2Pass l2_pass(const T* w, const T* l, const T* u, double t, int64_t d) {
  L2Sums<Lanes> lanes;
  L2Sums<double> single;
  sweep(w, l, u, d, lanes, single, [t](auto wi, auto li, auto ui, auto& acc) {
    l2_accumulate(wi, li, ui, t, acc);
  });
  return l2_total(lanes, single);
}

// t from the pass at t = 0.
template <typename T>
double l2_scale(const T* w, const T* l, const T* u, double r, int64_t d, L2Pass pass) {
  const double r2 = r * r;
  if (pass.fits <= r2) {
    return 1.0;
  }
  double t = 0;
  for (int64_t round = 0; round <= d; ++round) {
    double next = pass.free_w2 > 0
        ? std::sqrt(std::max(r2 - pass.saturated_room2, 0.0) / pass.free_w2)
        : 1.0;
    next = std::max(std::min(next, 1.0), t);
    const L2Pass after = l2_pass(w, l, u, next, d);
    const bool grew = after.saturated != pass.saturated;
    t = next;
    pass = after;
    if (!grew) {
      break;
    }
  }
  return t;
}

// The offset clip(t w, l, u), with t w rounded to T as the tensor code does.
template <typename T, typename D>
inline D l2_offset(D wi, D li, D ui, double t) {
  return vmin(vmax(round_as<T>(static_cast<double>(static_cast<T>(t)) * wi), li), ui);
}

template <typename T>
void project_l2_row(const T* w, const T* l, const T* u, double r, T* out, int64_t d, RowScratch&) {
  const double t = l2_scale(w, l, u, r, d, l2_pass(w, l, u, 0.0, d));
  each(d, [&](int64_t i, auto width) {
    constexpr int64_t W = decltype(width)::value;
    store(out + i, l2_offset<T>(load<W>(w + i), load<W>(l + i), load<W>(u + i), t));
  });
}

// L1: d_i = sign(w_i) clamp(|w_i| - lambda, 0, c_i), c_i the room of
// coordinate i. G(lambda) = ||d||_1 = sum_i min((a_i - lambda)+, c_i),
// a_i = |w_i|, is piecewise linear and non-increasing, with kinks at
// s_i = a_i - c_i (coordinate i stops being saturated) and at a_i (it
// reaches zero); lambda solves G(lambda) = r.
//
// One pass at a point gives G, the slope on each side (the number of
// coordinates in their linear part) and the nearest kinks either side. A
// Newton step that stays inside its linear piece lands exactly on the root;
// otherwise its target (or the secant of the bracket, or the midpoint)
// narrows the bracket [lo, hi] around the root. Newton from both sides of a
// piecewise linear function usually ends in a handful of passes; if it has
// not after kL1NewtonPasses, median selection over the kinks left inside the
// bracket finishes the job exactly. (Coordinates with a_i = 0 or c_i = 0 add
// nothing to G; the kinks they report are harmless extra checkpoints.)
template <typename D>
struct L1Sums {
  D g{};
  D right{};
  D left{};
  D above = D{} + kInf;
  D below = D{} - kInf;
};

struct L1Probe {
  double g = 0;          // G(lambda)
  double right = 0;      // -G' just above lambda
  double left = 0;       // -G' just below lambda
  double above = kInf;   // nearest kink > lambda
  double below = -kInf;  // nearest kink < lambda
};

template <typename T>
L1Probe probe_l1(const T* w, const T* l, const T* u, int64_t d, double lambda) {
  L1Sums<Lanes> lanes;
  L1Sums<double> single;
  sweep(w, l, u, d, lanes, single, [lambda](auto wi, auto li, auto ui, auto& acc) {
    using D = decltype(wi);
    const D zero{};
    const D c = vmax(room_of(wi, li, ui), zero);
    const D a = vabs(wi);
    const D t = a - lambda;
    const D s = a - c;
    acc.g += vmin(vmax(t, zero), c);
    acc.right += ((t > zero) & (t <= c)) ? zero + 1.0 : zero;
    acc.left += ((t >= zero) & (t < c)) ? zero + 1.0 : zero;
    acc.above = vmin(acc.above, s > lambda ? s : (t > zero ? a : zero + kInf));
    acc.below = vmax(acc.below, t < zero ? a : (s < lambda ? s : zero - kInf));
  });
  return {
      lane_sum(lanes.g) + single.g,
      lane_sum(lanes.right) + single.right,
      lane_sum(lanes.left) + single.left,
      std::min(lane_min(lanes.above), single.above),
      std::max(lane_max(lanes.below), single.below)};
}

// The root of G(lambda) = r, given G(0) > r > 0 and G(a_max) = 0.
template <typename T>
double l1_threshold(
    const T* w, const T* l, const T* u, int64_t d, double r, double a_max, int newton_passes, RowScratch& s) {
  double lo = 0;  // G(lo) > r
  double g_lo = kInf;
  double hi = a_max;  // G(hi) <= r
  double g_hi = 0;
  double lambda = 0;
  for (int pass = 0; pass < newton_passes; ++pass) {
    const L1Probe p = probe_l1(w, l, u, d, lambda);
    double next = 0;
    if (p.g > r) {
      lo = lambda;
      g_lo = p.g;
      next = p.right > 0 ? lambda + (p.g - r) / p.right : kInf;
      if (next <= p.above) {
        return next;
      }
    } else if (p.g < r) {
      hi = lambda;
      g_hi = p.g;
      next = p.left > 0 ? lambda - (r - p.g) / p.left : -kInf;
      if (next >= p.below) {
        return next;
      }
    } else {
      return lambda;
    }
    if (!(next > lo && next < hi)) {
      next = lo + (g_lo - r) * ((hi - lo) / (g_lo - g_hi));  // secant
    }
    if (!(next > lo && next < hi)) {
      next = lo + 0.5 * (hi - lo);
    }
    if (!(next > lo && next < hi)) {
      break;  // lo and hi are adjacent doubles
    }
    lambda = next;
  }
  // Median selection over the kinks inside (lo, hi).
  s.point.clear();
  for (int64_t i = 0; i < d; ++i) {
    const double a = std::abs(static_cast<double>(w[i]));
    const double c = std::max(room_of<double>(w[i], l[i], u[i]), 0.0);
    for (double kink : {a - c, a}) {
      if (kink > lo && kink < hi) {
        s.point.push_back(kink);
      }
    }
  }
  auto first = s.point.begin();
  auto last = s.point.end();
  while (first != last) {
    auto middle = first + (last - first) / 2;
    std::nth_element(first, middle, last);
    const double pivot = *middle;
    if (probe_l1(w, l, u, d, pivot).g > r) {
      lo = pivot;
      first = middle + 1;
    } else {
      hi = pivot;
      last = middle;
    }
  }
  // No kink in (lo, hi): each coordinate is zero, saturated or linear there.
  double constant = 0;
  double count = 0;
  for (int64_t i = 0; i < d; ++i) {
    const double a = std::abs(static_cast<double>(w[i]));
    const double c = std::max(room_of<double>(w[i], l[i], u[i]), 0.0);
    if (a <= lo || c <= 0) {
      continue;
    }
    if (a - c >= hi) {
      constant += c;
    } else {
      constant += a;
      count += 1;
    }
  }
  return count > 0 ? std::min(std::max((constant - r) / count, lo), hi) : lo;
}

template <typename D>
struct L1Start {
  D g0{};     // G(0)
  D a_max{};  // the largest |w_i|
};

template <typename D, typename Acc>
inline void l1_accumulate_start(D wi, D li, D ui, Acc& acc) {
  const D a = vabs(wi);
  acc.g0 += vmin(a, vmax(room_of(wi, li, ui), D{}));
  acc.a_max = vmax(acc.a_max, a);
}

template <typename T>
double l1_lambda(
    const T* w, const T* l, const T* u, double r, int64_t d, const L1Start<Lanes>& lanes,
    const L1Start<double>& single, int newton_passes, RowScratch& s) {
  const double g0 = lane_sum(lanes.g0) + single.g0;
  const double a_max = std::max(lane_max(lanes.a_max), single.a_max);
  return g0 > r ? l1_threshold(w, l, u, d, r, a_max, newton_passes, s) : 0.0;
}

// The offset sign(w) clamp(|w| - lambda, 0, c), rounded to T.
template <typename T, typename D>
inline D l1_offset(D wi, D li, D ui, double lambda) {
  const D zero{};
  const D magnitude = round_as<T>(vmin(vmax(vabs(wi) - lambda, zero), vmax(room_of(wi, li, ui), zero)));
  return wi > zero ? magnitude : zero - magnitude;
}

template <typename T>
void project_l1_row(
    const T* w, const T* l, const T* u, double r, T* out, int64_t d, int newton_passes, RowScratch& s) {
  L1Start<Lanes> lanes;
  L1Start<double> single;
  sweep(w, l, u, d, lanes, single, [](auto wi, auto li, auto ui, auto& acc) {
    l1_accumulate_start(wi, li, ui, acc);
  });
  const double lambda = l1_lambda(w, l, u, r, d, lanes, single, newton_passes, s);
  each(d, [&](int64_t i, auto width) {
    constexpr int64_t W = decltype(width)::value;
    store(out + i, l1_offset<T>(load<W>(w + i), load<W>(l + i), load<W>(u + i), lambda));
  });
}

template <typename T>
void project_row(
    Norm p, const T* w, const T* l, const T* u, double r, T* out, int64_t d, RowScratch& s,
    int newton_passes = kL1NewtonPasses) {
  if (p == Norm::L2) {
    project_l2_row(w, l, u, r, out, d, s);
  } else {
    project_l1_row(w, l, u, r, out, d, newton_passes, s);
  }
}

// g where z can move along +g (ascent) inside [lo, hi], zero elsewhere; with
// -g for descent, the same test on the opposite sign.
template <typename D, typename S>
inline D feasible_up(D g, D z, S lo, S hi) {
  const D zero{};
  return (((g > zero) & (z < zero + hi)) | ((g < zero) & (z > zero + lo))) ? g : zero;
}

template <typename D, typename S>
inline D feasible_down(D g, D z, S lo, S hi) {
  const D zero{};
  return (((g < zero) & (z < zero + hi)) | ((g > zero) & (z > zero + lo))) ? g : zero;
}

// The [N] or scalar radius as N doubles.
torch::Tensor radius_values(const torch::Tensor& r, int64_t n) {
  auto v = r.reshape({-1}).to(torch::kCPU, torch::kFloat64);
  if (v.numel() == 1 && n != 1) {
    v = v.expand({n});
  }
  BB_ASSERT(v.numel() == n, "radius must have {} entries, has {}", n, v.numel());
  return v.contiguous();
}

// Rows [begin, end) of ascent_step_cpu.
template <typename T>
void ascent_rows(
    const T* xp, const T* zp, const T* gp, const double* rp, const double* sp, const bool* kp, T* op,
    int64_t d, Norm p, double lo, double hi, int64_t begin, int64_t end) {
  RowScratch scratch;
  std::vector<T> buffer(p == Norm::Linf ? 0 : 3 * d);
  T* w = buffer.data();
  T* l = w + d;
  T* u = l + d;
  for (int64_t row = begin; row < end; ++row) {
    const T* xr = xp + row * d;
    const T* zr = zp + row * d;
    const T* gr = gp + row * d;
    T* o = op + row * d;
    if (kp[row]) {
      std::copy(zr, zr + d, o);
      continue;
    }
    const double r = static_cast<T>(rp[row]);
    const double eta = static_cast<T>(sp[row]);
    const T te = static_cast<T>(eta);
    const T tlo = static_cast<T>(lo);
    const T thi = static_cast<T>(hi);
    if (p == Norm::Linf) {
      // In T throughout, as the tensor composition: a clamp of z + eta sign(g).
      const T tr = static_cast<T>(r);
      each_native<T>(d, [&](int64_t i, auto tag) {
        using V = decltype(tag);
        const V zero{};
        const V x = load_native<V>(xr + i);
        const V z = load_native<V>(zr + i);
        const V g = feasible_up(load_native<V>(gr + i), z, tlo, thi);
        const V v = g > zero ? zero + T(1) : (g < zero ? zero - T(1) : zero);
        const V lower = vmax(x - tr, zero + tlo);
        const V upper = vmin(x + tr, zero + thi);
        store_native(o + i, vmin(vmax(z + te * v, lower), upper));
      });
      continue;
    }
    // The moved point z + eta v goes to `o` for now; w = o - x.
    if (p == Norm::L2) {
      Lanes lane_squares{};
      double squares = 0;
      sweep(gr, zr, zr, d, lane_squares, squares, [=](auto g, auto z, auto, auto& acc) {
        const auto f = feasible_up(g, z, lo, hi);
        acc += f * f;
      });
      // In T from here, as the tensor composition: the length rounded to T,
      // z + eta (g / length), then the offsets; one pass.
      const T length = static_cast<T>(std::sqrt(lane_sum(lane_squares) + squares));
      const bool moves = length > 0;
      each_native<T>(d, [&](int64_t i, auto tag) {
        using V = decltype(tag);
        const V zero{};
        const V z = load_native<V>(zr + i);
        const V x = load_native<V>(xr + i);
        const V f = feasible_up(load_native<V>(gr + i), z, tlo, thi);
        const V moved = moves ? z + te * (f / (zero + length)) : z;
        store_native(o + i, moved);
        store_native(w + i, moved - x);
        store_native(l + i, (zero + tlo) - x);
        store_native(u + i, (zero + thi) - x);
      });
      const T scale = static_cast<T>(l2_scale(w, l, u, r, d, l2_pass(w, l, u, 0.0, d)));
      each_native<T>(d, [&](int64_t i, auto tag) {
        using V = decltype(tag);
        const V zero{};
        const V wi = load_native<V>(w + i);
        const V shift = vmin(vmax(scale * wi, load_native<V>(l + i)), load_native<V>(u + i));
        // Coordinates the projection leaves alone keep their exact value.
        const V y = shift == wi ? load_native<V>(o + i) : load_native<V>(xr + i) + shift;
        store_native(o + i, vmin(vmax(y, zero + tlo), zero + thi));
      });
      continue;
    } else {
      // The first coordinate of largest feasible |g|, as argmax.
      Lanes best = Lanes{} - 1.0;
      Lanes best_index{};
      Lanes lane_index{};
      for (int64_t k = 0; k < kLanes; ++k) {
        lane_index[k] = static_cast<double>(k);
      }
      double single_best = -1;
      int64_t single_index = 0;
      each(d, [&](int64_t i, auto width) {
        constexpr int64_t W = decltype(width)::value;
        const auto m = vabs(feasible_up(load<W>(gr + i), load<W>(zr + i), lo, hi));
        if constexpr (W == kLanes) {
          const auto better = m > best;
          best = better ? m : best;
          best_index = better ? lane_index + static_cast<double>(i) : best_index;
        } else {
          const bool better = m > single_best;
          single_best = better ? m : single_best;
          single_index = better ? i : single_index;
        }
      });
      double best_magnitude = single_best;
      int64_t index = single_index;
      for (int64_t k = 0; k < kLanes; ++k) {
        const auto at = static_cast<int64_t>(best_index[k]);
        if (best[k] > best_magnitude || (best[k] == best_magnitude && at < index)) {
          best_magnitude = best[k];
          index = at;
        }
      }
      std::copy(zr, zr + d, o);
      if (best_magnitude > 0) {
        o[index] = static_cast<T>(zr[index] + eta * (gr[index] > 0 ? 1.0 : -1.0));
      }
    }
    // L1, in T but for the threshold: the offsets, lambda, the projected point.
    each_native<T>(d, [&](int64_t i, auto tag) {
      using V = decltype(tag);
      const V zero{};
      const V x = load_native<V>(xr + i);
      store_native(w + i, load_native<V>(o + i) - x);
      store_native(l + i, (zero + tlo) - x);
      store_native(u + i, (zero + thi) - x);
    });
    L1Start<Lanes> lanes;
    L1Start<double> single;
    sweep(w, l, u, d, lanes, single, [](auto wi, auto li, auto ui, auto& acc) {
      l1_accumulate_start(wi, li, ui, acc);
    });
    const T lambda = static_cast<T>(l1_lambda(w, l, u, r, d, lanes, single, kL1NewtonPasses, scratch));
    each_native<T>(d, [&](int64_t i, auto tag) {
      using V = decltype(tag);
      const V zero{};
      const V wi = load_native<V>(w + i);
      const V room = vmax(room_of(wi, load_native<V>(l + i), load_native<V>(u + i)), zero);
      const V magnitude = vmin(vmax(vabs(wi) - lambda, zero), room);
      const V shift = wi > zero ? magnitude : zero - magnitude;
      // Coordinates the projection leaves alone keep their exact value.
      const V y = shift == wi ? load_native<V>(o + i) : load_native<V>(xr + i) + shift;
      store_native(o + i, vmin(vmax(y, zero + tlo), zero + thi));
    });
  }
}

}  // namespace

torch::Tensor project_offset_cpu(
    const torch::Tensor& w,
    const torch::Tensor& l,
    const torch::Tensor& u,
    const torch::Tensor& r,
    Norm p,
    int newton_passes) {
  BB_ASSERT(w.is_cpu() && (p == Norm::L1 || p == Norm::L2), "CPU L1/L2 projection only");
  BB_ASSERT(l.sizes() == w.sizes() && u.sizes() == w.sizes(), "box offsets must match w");
  auto wc = w.contiguous();
  auto lc = l.contiguous();
  auto uc = u.contiguous();
  const int64_t n = wc.size(0);
  const int64_t d = wc.size(1);
  auto rc = radius_values(r, n);
  auto out = torch::empty_like(wc);
  AT_DISPATCH_FLOATING_TYPES(wc.scalar_type(), "project_offset_cpu", [&] {
    const scalar_t* wp = wc.data_ptr<scalar_t>();
    const scalar_t* lp = lc.data_ptr<scalar_t>();
    const scalar_t* up = uc.data_ptr<scalar_t>();
    const double* rp = rc.data_ptr<double>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      RowScratch scratch;
      for (int64_t row = begin; row < end; ++row) {
        const int64_t o = row * d;
        project_row(p, wp + o, lp + o, up + o, rp[row], op + o, d, scratch, newton_passes);
      }
    });
  });
  return out;
}

// One projected steepest-ascent step per row, fused: the feasible gradient,
// its steepest direction, the step, and the projection onto the ball ∩ box,
// with the arithmetic of the tensor composition in ascent_step (norm.cpp).
torch::Tensor ascent_step_cpu(
    const torch::Tensor& x,
    const torch::Tensor& z,
    const torch::Tensor& grad,
    const torch::Tensor& radius,
    const torch::Tensor& step,
    Norm p,
    Box box,
    const torch::Tensor& keep) {
  const int64_t n = z.size(0);
  const int64_t d = z.numel() / std::max<int64_t>(n, 1);
  auto xc = x.reshape({n, d}).to(z.scalar_type()).contiguous();
  auto zc = z.reshape({n, d}).contiguous();
  auto gc = grad.reshape({n, d}).to(z.scalar_type()).contiguous();
  auto rc = radius_values(radius, n);
  auto sc = radius_values(step, n);
  // True where the row keeps z.
  auto kc = keep.defined() ? keep.reshape({-1}).to(torch::kCPU, torch::kBool).contiguous()
                           : torch::zeros({n}, torch::kBool);
  BB_ASSERT(kc.numel() == n, "keep must have {} entries, has {}", n, kc.numel());
  auto out = torch::empty_like(zc);
  AT_DISPATCH_FLOATING_TYPES(zc.scalar_type(), "ascent_step_cpu", [&] {
    using T = scalar_t;
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      ascent_rows(
          xc.data_ptr<T>(), zc.data_ptr<T>(), gc.data_ptr<T>(), rc.data_ptr<double>(),
          sc.data_ptr<double>(), kc.data_ptr<bool>(), out.data_ptr<T>(), d, p, static_cast<T>(box.lo),
          static_cast<T>(box.hi), begin, end);
    });
  });
  return out.view_as(z);
}

// ||feasible_descent(grads[n, j], z[n], box)||_q for every row pair.
torch::Tensor feasible_descent_norms_cpu(
    const torch::Tensor& grads,
    const torch::Tensor& z,
    Norm q,
    Box box) {
  const int64_t n = grads.size(0);
  const int64_t m = grads.size(1);
  const int64_t d = z.numel() / std::max<int64_t>(n, 1);
  // Keeps the layout of the batched backward ([m, N, d] transposed) as it is:
  // each row of d values is contiguous either way.
  auto g = grads.reshape({n, m, d});
  if (g.stride(2) != 1) {
    g = g.contiguous();
  }
  auto zc = z.reshape({n, d}).to(g.scalar_type()).contiguous();
  auto out = torch::empty({n, m}, g.options());
  const int64_t stride_n = g.stride(0);
  const int64_t stride_m = g.stride(1);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "feasible_descent_norms_cpu", [&] {
    using T = scalar_t;
    const T* gp = g.data_ptr<T>();
    const T* zp = zc.data_ptr<T>();
    T* op = out.data_ptr<T>();
    const double lo = static_cast<T>(box.lo);
    const double hi = static_cast<T>(box.hi);
    at::parallel_for(0, n * m, 1, [&](int64_t begin, int64_t end) {
      for (int64_t pair = begin; pair < end; ++pair) {
        const int64_t row = pair / m;
        const int64_t j = pair % m;
        const T* gr = gp + row * stride_n + j * stride_m;
        const T* zr = zp + row * d;
        Lanes lanes{};
        double single = 0;
        if (q == Norm::L1) {
          sweep(gr, zr, zr, d, lanes, single, [=](auto g, auto z, auto, auto& acc) {
            acc += vabs(feasible_down(g, z, lo, hi));
          });
        } else if (q == Norm::L2) {
          sweep(gr, zr, zr, d, lanes, single, [=](auto g, auto z, auto, auto& acc) {
            const auto f = feasible_down(g, z, lo, hi);
            acc += f * f;
          });
        } else {
          sweep(gr, zr, zr, d, lanes, single, [=](auto g, auto z, auto, auto& acc) {
            acc = vmax(acc, vabs(feasible_down(g, z, lo, hi)));
          });
        }
        const double acc = q == Norm::Linf ? std::max(lane_max(lanes), single) : lane_sum(lanes) + single;
        op[pair] = static_cast<T>(q == Norm::L2 ? std::sqrt(acc) : acc);
      }
    });
  });
  return out;
}

}  // namespace bb::detail
