#include "core/random.h"

#include <cmath>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

// 64-bit constants as the signed integers that int64 tensors hold; products
// wrap modulo 2^64, as SplitMix64 expects.
constexpr int64_t as_signed(uint64_t v) { return static_cast<int64_t>(v); }
constexpr int64_t kGolden = as_signed(0x9E3779B97F4A7C15ULL);
constexpr int64_t kMix1 = as_signed(0xBF58476D1CE4E5B9ULL);
constexpr int64_t kMix2 = as_signed(0x94D049BB133111EBULL);

// Logical right shift of int64 tensors (>> is arithmetic on signed values).
torch::Tensor shift_right(const torch::Tensor& z, int s) {
  const int64_t mask = static_cast<int64_t>((~uint64_t{0}) >> s);
  return torch::bitwise_and(torch::bitwise_right_shift(z, s), mask);
}

// SplitMix64's finaliser: a bijection of 64-bit words that mixes every bit.
torch::Tensor mix(torch::Tensor z) {
  z = torch::bitwise_xor(z, shift_right(z, 30)).mul(kMix1);
  z = torch::bitwise_xor(z, shift_right(z, 27)).mul(kMix2);
  return torch::bitwise_xor(z, shift_right(z, 31));
}

uint64_t mix_host(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t hash_string(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char ch : text) {
    h = (h ^ ch) * 0x100000001B3ULL;
  }
  return h;
}

RandomStreams::RandomStreams(torch::Tensor keys) : keys_(std::move(keys)) {
  BB_ASSERT(
      keys_.dim() == 1 && keys_.scalar_type() == torch::kInt64,
      "random stream keys must be int64 [N], got {}",
      keys_.sizes());
}

RandomStreams RandomStreams::derive(
    uint64_t seed,
    const std::string& method,
    const torch::Tensor& index,
    torch::Device device) {
  const uint64_t base = mix_host(mix_host(seed + 0x9E3779B97F4A7C15ULL) ^ hash_string(method));
  auto i = index.to(torch::kInt64).to(device).reshape({-1});
  // Distinct indices give distinct keys: mix is a bijection.
  return RandomStreams(mix(i.mul(kGolden).add(static_cast<int64_t>(base))));
}

namespace detail {

torch::Tensor stream_bits_tensor(const torch::Tensor& keys, int64_t first, int64_t count) {
  auto counter = torch::arange(first, first + count, keys.options()).view({1, count});
  // Two rounds: the key enters through the first, the counter through both.
  auto z = mix(keys.view({-1, 1}).add(counter.mul(kGolden)));
  z = mix(z.add(counter).add(kGolden));
  return shift_right(z, 11);  // 53 bits
}

torch::Tensor stream_bits_cpu(const torch::Tensor& keys, int64_t first, int64_t count) {
  auto out = torch::empty({keys.size(0), count}, keys.options());
  const auto* key = keys.contiguous().data_ptr<int64_t>();
  auto* bits = out.data_ptr<int64_t>();
  const int64_t n = keys.size(0);
  at::parallel_for(0, n * count, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t k = static_cast<uint64_t>(key[i / count]);
      const uint64_t t = static_cast<uint64_t>(first + i % count);
      uint64_t z = mix_host(k + t * static_cast<uint64_t>(kGolden));
      z = mix_host(z + t + static_cast<uint64_t>(kGolden));
      bits[i] = static_cast<int64_t>(z >> 11);
    }
  });
  return out;
}

}  // namespace detail

torch::Tensor RandomStreams::bits(at::IntArrayRef shape) {
  int64_t count = 1;
  for (int64_t s : shape) {
    count *= s;
  }
  std::vector<int64_t> full{size()};
  full.insert(full.end(), shape.begin(), shape.end());
  // The same numbers either way: a plain loop on the CPU, tensor operations
  // elsewhere (tests hold the two to each other).
  auto out = keys_.is_cpu() ? detail::stream_bits_cpu(keys_, counter_, count)
                            : detail::stream_bits_tensor(keys_, counter_, count);
  counter_ += count;
  return out.view(full);
}

torch::Tensor RandomStreams::uniform(at::IntArrayRef shape, torch::ScalarType dtype) {
  // (bits + 1/2) / 2^53: strictly inside (0, 1), so log() is finite.
  constexpr double kScale = 1.0 / 9007199254740992.0;
  return bits(shape).to(torch::kFloat64).add_(0.5).mul_(kScale).to(dtype);
}

torch::Tensor RandomStreams::normal(at::IntArrayRef shape, torch::ScalarType dtype) {
  auto u1 = uniform(shape);
  auto u2 = uniform(shape);
  return (u1.log().mul(-2).sqrt() * torch::cos(u2 * (2 * M_PI))).to(dtype);
}

torch::Tensor RandomStreams::exponential(at::IntArrayRef shape, torch::ScalarType dtype) {
  return uniform(shape).log().neg().to(dtype);
}

RandomStreams RandomStreams::rows(const torch::Tensor& rows) const {
  RandomStreams subset(keys_.index_select(0, rows.to(keys_.device())));
  subset.counter_ = counter_;
  return subset;
}

}  // namespace bb
