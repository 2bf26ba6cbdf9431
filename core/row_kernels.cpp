// CPU row kernels behind the norm policy. On MNIST-sized inputs a chain of
// tensor operations over [N, d] costs more than the model's own forward and
// backward pass: every operation is one more pass over memory and one more
// dispatch. These kernels do the same mathematics one sample at a time (rows
// in parallel, each row hot in cache), in a few passes per row. Other
// devices use the tensor versions in norm.cpp; the tests hold both to the
// same answers.
//
// The passes (row_kernels.inc) are compiled once per vector unit: SSE2 (16
// bytes, every x86-64 CPU, and the generic build elsewhere), AVX2 (32) and
// AVX-512 (64). The widest one the CPU has runs, unless
// use_row_kernel_isa() chose another (core/row_kernels.h; "tensor" sends the
// CPU down the tensor path instead). Sums run in double in every variant;
// their lanes differ, so variants can differ in the last bits of a sum.
// Frozen: no further per-ISA work.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <torch/torch.h>

#include "core/error.h"
#include "core/norm.h"
#include "core/row_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BB_ROW_KERNELS_X86 1
#else
#define BB_ROW_KERNELS_X86 0
#endif

// The passes' small helpers take and return vectors: inlined always, or the
// wider variants pass them through memory.
#define BB_INLINE inline __attribute__((always_inline))

namespace bb::detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Scratch for the rare L1 fallback.
struct RowScratch {
  std::vector<double> point;  // kinks inside the bracket
};

// The arguments of the passes over rows [begin, end) (row_kernels.inc), the
// same for every vector unit: flat [N, d] rows, contiguous.
template <typename T>
struct ProjectRows {  // project_offset_cpu
  Norm p;
  const T* w;
  const T* l;
  const T* u;
  const double* radius;  // [N]
  T* out;
  int64_t d;
  int newton_steps;
};

template <typename T>
struct AscentRows {  // ascent_step_cpu
  const T* x;
  const T* z;
  const T* grad;
  const double* radius;  // [N]
  const double* step;    // [N]
  const bool* keep;      // [N]
  T* out;
  int64_t d;
  Norm p;
  T lo;
  T hi;
};

template <typename T>
struct DescentNormRows {  // feasible_descent_norms_cpu: pair = row * m + class
  const T* grads;  // row n, class j at grads + n * stride_n + j * stride_m
  const T* z;
  T* out;  // [N * m]
  int64_t d;
  int64_t m;
  int64_t stride_n;
  int64_t stride_m;
  Norm q;
  double lo;
  double hi;
};

namespace sse2 {
constexpr int64_t kLaneBytes = 16;
#include "core/row_kernels.inc"
}  // namespace sse2

#if BB_ROW_KERNELS_X86
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
constexpr int64_t kLaneBytes = 32;
#include "core/row_kernels.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl")
namespace avx512 {
constexpr int64_t kLaneBytes = 64;
#include "core/row_kernels.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

enum class Isa { Sse2, Avx2, Avx512 };

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2";
    default:
      return BB_ROW_KERNELS_X86 ? "sse2" : "generic";
  }
}

// Widest first.
std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
#if BB_ROW_KERNELS_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
    isas.push_back(Isa::Avx512);
  }
  if (__builtin_cpu_supports("avx2")) {
    isas.push_back(Isa::Avx2);
  }
#endif
  isas.push_back(Isa::Sse2);
  return isas;
}

std::atomic<Isa>& chosen_isa() {
  static std::atomic<Isa> isa{supported_isas().front()};
  return isa;
}

// "tensor" chosen: the CPU takes the tensor path (the *_cpu entry points
// keep the chosen vector unit).
std::atomic<bool>& tensor_path() {
  static std::atomic<bool> tensor{false};
  return tensor;
}

// BB_ROW_KERNELS, applied once at start-up (a bad name fails at the first
// kernel use, naming the variable).
void apply_environment() {
  static const bool applied = [] {
    if (const char* name = std::getenv("BB_ROW_KERNELS"); name != nullptr && *name != '\0') {
      try {
        use_row_kernel_isa(name);
      } catch (const Error& e) {
        throw Error(fmt::format("BB_ROW_KERNELS: {}", e.what()));
      }
    }
    return true;
  }();
  (void)applied;
}

// f(Kernels{}) with the kernels of the chosen vector unit.
template <typename F>
void with_kernels(F f) {
  apply_environment();
  switch (chosen_isa().load(std::memory_order_relaxed)) {
#if BB_ROW_KERNELS_X86
    case Isa::Avx512:
      return f(avx512::Kernels{});
    case Isa::Avx2:
      return f(avx2::Kernels{});
#endif
    default:
      return f(sse2::Kernels{});
  }
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

}  // namespace

std::vector<std::string> row_kernel_isas() {
  std::vector<std::string> names;
  for (Isa isa : supported_isas()) {
    names.emplace_back(isa_name(isa));
  }
  return names;
}

std::string row_kernel_isa() {
  apply_environment();
  return tensor_path().load() ? "tensor" : isa_name(chosen_isa().load());
}

void use_row_kernel_isa(const std::string& name) {
  const auto isas = supported_isas();
  if (name == "tensor") {
    tensor_path().store(true);
    return;
  }
  if (name.empty()) {
    chosen_isa().store(isas.front());
    tensor_path().store(false);
    return;
  }
  for (Isa isa : isas) {
    if (name == isa_name(isa)) {
      chosen_isa().store(isa);
      tensor_path().store(false);
      return;
    }
  }
  throw Error(fmt::format(
      "row kernels: this CPU has no '{}' variant; it has {} (and tensor, the path of other devices)", name,
      fmt::join(row_kernel_isas(), ", ")));
}

bool use_row_kernels(const torch::Tensor& like) {
  if (!like.is_cpu()) {
    return false;
  }
  apply_environment();
  return !tensor_path().load(std::memory_order_relaxed);
}

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
    const ProjectRows<scalar_t> args{p, wp, lp, up, rp, op, d, newton_passes};
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      with_kernels([&](auto kernels) { decltype(kernels)::project(args, begin, end); });
    });
  });
  return out;
}

// One projected steepest-ascent step per row, fused: the feasible gradient,
// its steepest direction, the step, and the projection onto the ball ∩ box,
// with the arithmetic of the tensor composition in ascent_step (norm.cpp).
torch::Tensor ascent_step_cpu(const AscentStepArgs& a) {
  const torch::Tensor& z = a.z;
  const Box box = a.box;
  const torch::Tensor& keep = a.keep;
  const int64_t n = z.size(0);
  const int64_t d = z.numel() / std::max<int64_t>(n, 1);
  auto xc = a.x.reshape({n, d}).to(z.scalar_type()).contiguous();
  auto zc = z.reshape({n, d}).contiguous();
  auto gc = a.grad.reshape({n, d}).to(z.scalar_type()).contiguous();
  auto rc = radius_values(a.radius, n);
  auto sc = radius_values(a.step, n);
  // True where the row keeps z.
  auto kc = keep.defined() ? keep.reshape({-1}).to(torch::kCPU, torch::kBool).contiguous()
                           : torch::zeros({n}, torch::kBool);
  BB_ASSERT(kc.numel() == n, "keep must have {} entries, has {}", n, kc.numel());
  auto out = torch::empty_like(zc);
  AT_DISPATCH_FLOATING_TYPES(zc.scalar_type(), "ascent_step_cpu", [&] {
    using T = scalar_t;
    const AscentRows<T> args{
        xc.data_ptr<T>(), zc.data_ptr<T>(), gc.data_ptr<T>(), rc.data_ptr<double>(), sc.data_ptr<double>(),
        kc.data_ptr<bool>(), out.data_ptr<T>(), d, a.p, static_cast<T>(box.lo), static_cast<T>(box.hi)};
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      with_kernels([&](auto kernels) { decltype(kernels)::ascent(args, begin, end); });
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
    const DescentNormRows<T> args{gp, zp, op, d, m, stride_n, stride_m, q, lo, hi};
    at::parallel_for(0, n * m, 1, [&](int64_t begin, int64_t end) {
      with_kernels([&](auto kernels) { decltype(kernels)::descent_norms(args, begin, end); });
    });
  });
  return out;
}

}  // namespace bb::detail
