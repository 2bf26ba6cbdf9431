// Counter-based random numbers, one stream per sample. Draw k of sample n is
// a hash (SplitMix64's finaliser) of the sample's key and the counter k, made
// with integer tensor operations on the device of the keys: a sample's draws
// depend only on its key and on how many numbers its stream has given
// before, never on the batch it runs in, the other samples, or the device.
// Keys are derived from (seed, method name, sample index), so a result does
// not change with --batch, --samples or the order of methods.
#pragma once

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace bb {

class RandomStreams {
 public:
  // One stream per entry of `keys` (int64 [N]; the device of the draws).
  explicit RandomStreams(torch::Tensor keys);
  // Keys from (seed, method, index) for every entry of `index` (int64 [N]).
  static RandomStreams derive(
      uint64_t seed,
      const std::string& method,
      const torch::Tensor& index,
      torch::Device device);

  int64_t size() const { return keys_.size(0); }
  const torch::Tensor& keys() const { return keys_; }
  // Numbers drawn so far by each stream.
  int64_t counter() const { return counter_; }

  // [N, shape...] for every stream, in `dtype`. Each advances every stream
  // by the numbers it used (normal uses two per value).
  torch::Tensor uniform(at::IntArrayRef shape, torch::ScalarType dtype = torch::kFloat64);  // in (0, 1)
  torch::Tensor normal(at::IntArrayRef shape, torch::ScalarType dtype = torch::kFloat64);   // N(0, 1), Box-Muller
  torch::Tensor exponential(at::IntArrayRef shape, torch::ScalarType dtype = torch::kFloat64);  // rate 1

  // The streams of the samples `rows` (int64 [M]), at the same counter.
  RandomStreams rows(const torch::Tensor& rows) const;

 private:
  torch::Tensor bits(at::IntArrayRef shape);  // int64 [N, shape...], 53 random bits each
  torch::Tensor keys_;
  int64_t counter_ = 0;
};

namespace detail {
// The 53-bit numbers first .. first + count - 1 of every stream, [N, count]:
// tensor operations (any device) and a plain loop (CPU), equal bit for bit.
torch::Tensor stream_bits_tensor(const torch::Tensor& keys, int64_t first, int64_t count);
torch::Tensor stream_bits_cpu(const torch::Tensor& keys, int64_t first, int64_t count);
}  // namespace detail

// A stable 64-bit hash of a string (FNV-1a), for keys and cache names.
uint64_t hash_string(const std::string& text);

}  // namespace bb
