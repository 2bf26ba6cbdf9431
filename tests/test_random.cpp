// Per-sample random streams: a sample's draws depend on its key and its
// counter only (never on the batch), the laws are right, and the regions and
// balls sampled from streams stay inside.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/norm.h"
#include "core/random.h"
#include "core/region.h"

namespace bb {
namespace {

// Kolmogorov-Smirnov statistic of samples against the uniform law on [0, 1].
double ks_statistic_uniform(torch::Tensor u) {
  u = std::get<0>(u.flatten().to(torch::kFloat64).sort());
  const int64_t n = u.numel();
  auto rank = torch::arange(1, n + 1, torch::kFloat64) / n;
  auto below = torch::arange(0, n, torch::kFloat64) / n;
  return std::max((rank - u).max().item<double>(), (u - below).max().item<double>());
}

TEST(RandomStreams, ASampleDrawsTheSameInAnyBatch) {
  auto all = RandomStreams::derive(7, "method", torch::arange(10), torch::kCPU);
  auto some = RandomStreams::derive(7, "method", torch::tensor({3, 8}, torch::kInt64), torch::kCPU);
  auto a1 = all.uniform({5, 4});
  auto a2 = all.normal({6});
  auto s1 = some.uniform({5, 4});
  auto s2 = some.normal({6});
  EXPECT_TRUE(torch::equal(a1.index_select(0, torch::tensor({3, 8})), s1));
  EXPECT_TRUE(torch::equal(a2.index_select(0, torch::tensor({3, 8})), s2));
  // A subset taken later continues where the streams are.
  auto later = all.rows(torch::tensor({8}, torch::kInt64));
  auto some_next = some.exponential({3});
  EXPECT_TRUE(torch::equal(later.exponential({3})[0], some_next[1]));
  // Other seeds, other methods and other samples draw other numbers.
  auto other_seed = RandomStreams::derive(8, "method", torch::arange(10), torch::kCPU);
  auto other_method = RandomStreams::derive(7, "other", torch::arange(10), torch::kCPU);
  auto b = other_seed.uniform({5, 4});
  auto c = other_method.uniform({5, 4});
  EXPECT_FALSE(torch::equal(a1, b));
  EXPECT_FALSE(torch::equal(a1, c));
  EXPECT_FALSE(torch::equal(a1[0], a1[1]));
}

// The CPU loop and the tensor code (other devices) draw the same numbers.
TEST(RandomStreams, CpuLoopEqualsTensorCode) {
  auto streams = RandomStreams::derive(11, "paths", torch::arange(5), torch::kCPU);
  auto loop = detail::stream_bits_cpu(streams.keys(), 1000, 333);
  auto tensor = detail::stream_bits_tensor(streams.keys(), 1000, 333);
  EXPECT_TRUE(torch::equal(loop, tensor));
  EXPECT_GE(loop.min().item<int64_t>(), 0);
  EXPECT_LT(loop.max().item<int64_t>(), int64_t{1} << 53);
  EXPECT_GT(loop.max().item<int64_t>(), int64_t{1} << 52);  // the top bit is used
}

TEST(RandomStreams, UniformNormalAndExponentialLaws) {
  auto streams = RandomStreams::derive(1, "laws", torch::arange(4), torch::kCPU);
  const int64_t n = 5000;
  auto u = streams.uniform({n});
  EXPECT_GT(u.min().item<double>(), 0.0);
  EXPECT_LT(u.max().item<double>(), 1.0);
  // Critical value of the KS statistic at level 0.001 for n draws.
  const double critical = 1.95 / std::sqrt(static_cast<double>(n));
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_LT(ks_statistic_uniform(u[i]), critical) << "stream " << i;
  }
  // Normal through its CDF, exponential through 1 - exp(-x).
  auto z = streams.normal({n});
  auto e = streams.exponential({n});
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_LT(ks_statistic_uniform(0.5 * torch::erfc(-z[i] / std::sqrt(2.0))), critical);
    EXPECT_LT(ks_statistic_uniform(1 - torch::exp(-e[i])), critical);
  }
  // Neighbouring streams are uncorrelated.
  auto corr = ((u[0] - 0.5) * (u[1] - 0.5)).mean().item<double>() * 12;
  EXPECT_LT(std::abs(corr), 0.06);
  EXPECT_EQ(streams.counter(), 4 * n);
}

TEST(RandomStreams, BallSamplesAreUniformAndBatchIndependent) {
  const int64_t d = 5;
  const int64_t draws = 4000;
  const double radius = 2.0;
  auto center = torch::tensor({{0.2, -0.1, 0.4, 0.0, 1.0}, {0.0, 0.0, 0.0, 0.0, 0.0}}, torch::kFloat64);
  for (Norm p : all_norms()) {
    auto streams = RandomStreams::derive(5, "ball", torch::tensor({0, 1}), torch::kCPU);
    auto points = sample_ball(center, torch::tensor({radius, radius}, torch::kFloat64), p, draws, streams);
    ASSERT_EQ(points.sizes(), (std::vector<int64_t>{2, draws, d}));
    auto offset = points[0] - center[0];
    auto r = lp_norm(offset, p) / radius;
    EXPECT_LE(r.max().item<double>(), 1.0 + 1e-12) << norm_name(p);
    const double critical = 1.95 / std::sqrt(static_cast<double>(draws));
    if (p == Norm::Linf) {
      EXPECT_LT(ks_statistic_uniform((offset.select(1, 2) / radius + 1) / 2), critical);
    } else {
      EXPECT_LT(ks_statistic_uniform(r.pow(d)), critical) << norm_name(p);
    }
    // The second sample alone draws exactly what it drew in the batch of two.
    auto alone = RandomStreams::derive(5, "ball", torch::tensor({1}), torch::kCPU);
    auto single = sample_ball(center.slice(0, 1, 2), torch::tensor({radius}, torch::kFloat64), p, draws, alone);
    EXPECT_TRUE(torch::equal(single[0], points[1])) << norm_name(p);
  }
}

TEST(RandomStreams, RegionDrawsInChunksStayInside) {
  auto center = torch::rand({3, 1, 4, 4}, torch::kFloat64);
  auto region = Region::ball(center, torch::tensor({0.05, 0.5, 3.0}, torch::kFloat64), Norm::L2, Box{0, 1});
  auto streams = RandomStreams::derive(2, "chunks", torch::arange(3), torch::kCPU);
  for (int chunk = 0; chunk < 3; ++chunk) {
    auto points = region.sample(32, streams);
    ASSERT_EQ(points.sizes(), (std::vector<int64_t>{3, 32, 1, 4, 4}));
    for (int64_t k = 0; k < 32; ++k) {
      EXPECT_TRUE(region.contains(points.select(1, k)).all().item<bool>());
    }
  }
}

}  // namespace
}  // namespace bb
