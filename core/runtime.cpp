#include "core/runtime.h"

#include <climits>
#include <cstdlib>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "core/error.h"

namespace bb {

torch::Device parse_device(const std::string& text, const std::string& what) {
  const bool is_cpu = text == "cpu";
  const bool is_cuda = text == "cuda" || text.rfind("cuda:", 0) == 0;
  BB_CHECK(
      is_cpu || is_cuda,
      "{}: unknown device '{}' (valid: cpu, cuda, cuda:N)",
      what,
      text);
  if (is_cpu) {
    return torch::Device(torch::kCPU);
  }
  BB_CHECK(
      torch::cuda::is_available(),
      "{}: '{}' requested, but this LibTorch {} has no CUDA support or sees no "
      "GPU (build against a CUDA LibTorch given through CMAKE_PREFIX_PATH)",
      what,
      text,
      torch_version());
  torch::Device device(torch::kCUDA);
  try {
    device = torch::Device(text);
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: malformed device '{}'", what, text));
  }
  BB_CHECK(
      device.index() < static_cast<int>(torch::cuda::device_count()),
      "{}: '{}' requested, but only {} CUDA device(s) are visible",
      what,
      text,
      torch::cuda::device_count());
  return device;
}

int configure_threads() {
  const char* omp = std::getenv("OMP_NUM_THREADS");
  if (omp == nullptr || *omp == '\0') {
    const unsigned cores = std::thread::hardware_concurrency();
    if (cores > 0) {
      at::set_num_threads(static_cast<int>(cores));
    }
  }
  return at::get_num_threads();
}

bool configure_allocator() {
#if defined(__GLIBC__)
  for (const char* name : {"GLIBC_TUNABLES", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_",
                           "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
    if (std::getenv(name) != nullptr) {
      return false;
    }
  }
  // No mapped blocks (the heap serves every size), a trim threshold no heap
  // reaches, and 64 MiB of slack each time the heap grows.
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 &&
      mallopt(M_TOP_PAD, 64 << 20) == 1;
#else
  return false;
#endif
}

void seed_all(uint64_t seed) {
  torch::manual_seed(seed);
  if (torch::cuda::is_available()) {
    torch::cuda::manual_seed_all(seed);
  }
}

void synchronize(torch::Device device) {
  if (device.is_cuda()) {
    torch::cuda::synchronize(device.index());
  }
}

Stopwatch::Stopwatch(torch::Device device) : device_(device) {
  restart();
}

void Stopwatch::restart() {
  synchronize(device_);
  start_ = std::chrono::steady_clock::now();
}

double Stopwatch::seconds() const {
  synchronize(device_);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
      .count();
}

std::string torch_version() {
  return TORCH_VERSION;
}

bool cuda_available() {
  return torch::cuda::is_available();
}

}  // namespace bb
