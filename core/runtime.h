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
