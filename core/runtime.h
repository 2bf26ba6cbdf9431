// Run-time set-up shared by the command line, the tests and the benchmarks:
// the device, the thread count, seeding and timing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <torch/types.h>

namespace bb {

// "cpu", "cuda" or "cuda:N". A CUDA device with a LibTorch that has no CUDA
// (or no visible GPU) is a bb::Error naming the option.
torch::Device parse_device(const std::string& text, const std::string& what = "--device");

// Debian's LibTorch starts with one intra-op thread: use every core unless
// OMP_NUM_THREADS says otherwise. Returns the thread count in force.
int configure_threads();

// CPU tensors come from malloc, and LibTorch frees them at once. With glibc's
// defaults, blocks above the mmap threshold are mapped and unmapped on every
// allocation and the heap is trimmed back to the system whenever its free top
// passes the trim threshold, so each training step or batched backward pass
// page-faults its whole working set in again (half the CPU time went to the
// kernel while a CIFAR-10 network trained). This keeps freed memory in the
// process instead: no mmap for large blocks, no trimming. Peak memory is then
// held until exit. Does nothing when GLIBC_TUNABLES or one of glibc's MALLOC_*
// variables is set (the user's choice wins) or the C library is not glibc.
// Returns whether the settings were applied.
bool configure_allocator();

// Seeds torch's CPU and CUDA generators.
void seed_all(uint64_t seed);

// Waits for the device's queued work (no-op on the CPU).
void synchronize(torch::Device device);

// Wall-clock time of device work: synchronises the device before reading.
class Stopwatch {
 public:
  explicit Stopwatch(torch::Device device);
  void restart();
  double seconds() const;

 private:
  torch::Device device_;
  std::chrono::steady_clock::time_point start_;
};

// "1.13.1" etc.: for run records.
std::string torch_version();
// Whether this LibTorch was built with CUDA and sees a GPU.
bool cuda_available();

}  // namespace bb
