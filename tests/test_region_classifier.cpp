// Regions (ball ∩ box and the domain) and the classifier wrapper: batched
// margin gradients against per-class autograd, exact gradients on a linear
// model, and refusal of malformed input and non-finite logits.
#include <cstdlib>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/classifier.h"
#include "core/region.h"
#include "core/runtime.h"
#include "tests/helpers.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Region, SamplesStayInsideAndInsideTheHull) {
  torch::manual_seed(3);
  auto center = torch::rand({4, 1, 3, 3});
  for (Norm p : all_norms()) {
    auto region = Region::ball(center, torch::tensor({0.1, 0.5, 2.0, kInf}), p, Box{0, 1});
    auto streams = RandomStreams::derive(3, "region", torch::arange(4), torch::kCPU);
    auto points = region.sample(64, streams);  // [4, 64, 1, 3, 3]
    ASSERT_EQ(points.size(1), 64);
    auto [lower, upper] = region.interval_hull();
    for (int64_t k = 0; k < 64; k += 9) {
      auto z = points.select(1, k);
      EXPECT_TRUE(region.contains(z).all().item<bool>()) << norm_name(p);
      EXPECT_TRUE(((z >= lower - 1e-6) & (z <= upper + 1e-6)).all().item<bool>());
    }
    // Projection lands in the region; points already inside stay put.
    auto far = torch::randn({4, 1, 3, 3}) * 3;
    EXPECT_TRUE(region.contains(region.project(far)).all().item<bool>());
    auto inside = points.select(1, 0);
    EXPECT_TRUE(torch::allclose(region.project(inside), inside, 1e-5, 1e-6));
  }
}

TEST(Region, DomainIsTheBox) {
  auto center = torch::full({2, 5}, 0.5);
  auto region = Region::domain(center, Norm::L2, Box{-1, 2});
  EXPECT_EQ(region.describe(), "D");
  EXPECT_EQ(region.norm(), Norm::L2);
  EXPECT_TRUE(region.is_domain());
  auto streams = RandomStreams::derive(0, "domain", torch::arange(2), torch::kCPU);
  auto points = region.sample(500, streams);
  EXPECT_GE(points.min().item<float>(), -1.0f);
  EXPECT_LE(points.max().item<float>(), 2.0f);
  EXPECT_LT(points.min().item<float>(), -0.9f);  // spread over the whole box
  EXPECT_GT(points.max().item<float>(), 1.9f);
  auto [lower, upper] = region.interval_hull();
  EXPECT_TRUE(torch::equal(lower, torch::full({2, 5}, -1.0)));
  EXPECT_TRUE(torch::equal(upper, torch::full({2, 5}, 2.0)));
  EXPECT_FALSE(region.contains(torch::full({2, 5}, 2.5)).any().item<bool>());
}

struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl()
      : fc1(register_module("fc1", torch::nn::Linear(12, 16))),
        fc2(register_module("fc2", torch::nn::Linear(16, 5))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return fc2(torch::tanh(fc1(x.flatten(1))));
  }
  torch::nn::Linear fc1;
  torch::nn::Linear fc2;
};
TORCH_MODULE(TinyNet);

Classifier tiny_classifier() {
  torch::manual_seed(5);
  TinyNet net;
  net->to(torch::kFloat64);
  return Classifier::from_module(net, InputSpec{{3, 2, 2}, 5, Box{0, 1}}, torch::kCPU, "tiny");
}

TEST(Classifier, BatchedMarginGradientsEqualPerClassAutograd) {
  auto model = tiny_classifier();
  auto x = torch::rand({7, 3, 2, 2}, torch::kFloat64);
  auto c = model.predict(x);
  auto batched = model.margin_gradients(x, c);
  ASSERT_EQ(batched.grads.sizes(), (std::vector<int64_t>{7, 5, 3, 2, 2}));
  EXPECT_TRUE(torch::allclose(batched.values, model.margins(x, c), 1e-12, 1e-12));
  for (int64_t j = 0; j < 5; ++j) {
    auto xi = x.clone().requires_grad_(true);
    auto out = model.logits_with_grad(xi);
    auto g = out.gather(1, c.view({-1, 1})).squeeze(1) - out.select(1, j);
    auto grad = torch::autograd::grad({g.sum()}, {xi})[0];
    EXPECT_TRUE(torch::allclose(batched.grads.select(1, j), grad, 1e-12, 1e-12)) << "class " << j;
  }
  // g_c = 0 with a zero gradient, exactly.
  auto own = batched.grads.gather(1, c.view({7, 1, 1, 1, 1}).expand({7, 1, 3, 2, 2}));
  EXPECT_EQ(own.abs().max().item<double>(), 0.0);
  // A subset of classes, per sample.
  auto targets = torch::tensor({{1, 3}}, torch::kInt64).expand({7, 2}).contiguous();
  auto subset = model.margin_gradients(x, c, targets);
  EXPECT_TRUE(torch::allclose(subset.grads.select(1, 1), batched.grads.select(1, 3), 1e-12, 1e-12));
  // Double backprop: the gradients stay differentiable in x.
  auto xg = x.clone().requires_grad_(true);
  auto diff = model.margin_gradients(xg, c, {}, /*create_graph=*/true);
  EXPECT_TRUE(torch::allclose(diff.grads, batched.grads, 1e-12, 1e-12));
  auto second = torch::autograd::grad({diff.grads.square().sum()}, {xg})[0];
  EXPECT_GT(second.abs().sum().item<double>(), 0.0);
}

TEST(Classifier, LinearModelGradientsAreWeightDifferences) {
  torch::manual_seed(9);
  auto w = torch::randn({4, 6}, torch::kFloat64);
  auto b = torch::randn({4}, torch::kFloat64);
  Classifier model(
      [w, b](const torch::Tensor& x) { return torch::addmm(b, x.flatten(1), w.t()); },
      InputSpec{{6}, 4, Box{0, 1}},
      torch::kCPU,
      "linear");
  auto x = torch::rand({3, 6}, torch::kFloat64);
  auto c = model.predict(x);
  auto result = model.margin_gradients(x, c);
  for (int64_t n = 0; n < 3; ++n) {
    auto expected = w[c[n].item<int64_t>()].unsqueeze(0) - w;  // [4, 6]
    EXPECT_TRUE(torch::allclose(result.grads[n], expected, 1e-12, 1e-12));
  }
}

TEST(Classifier, RejectsWrongShapesAndNonFiniteLogits) {
  auto model = tiny_classifier();
  testing::expect_error(
      [&] { model.check_input(torch::rand({2, 1, 2, 2}, torch::kFloat64), "--dataset mnist"); },
      {"--dataset mnist", "[2, 1, 2, 2]", "tiny", "[N, 3, 2, 2]"});
  testing::expect_error(
      [&] { model.check_input(torch::zeros({2, 3, 2, 2}, torch::kInt64), "batch"); },
      {"floating point"});
  Classifier broken(
      [](const torch::Tensor& x) {
        return torch::full({x.size(0), 3}, std::numeric_limits<double>::quiet_NaN());
      },
      InputSpec{{2}, 3, Box{0, 1}},
      torch::kCPU,
      "broken");
  testing::expect_error(
      [&] { broken.check_logits(torch::rand({4, 2}), "first batch"); },
      {"first batch", "broken", "NaN"});
  Classifier wrong_width(
      [](const torch::Tensor& x) { return torch::zeros({x.size(0), 7}); },
      InputSpec{{2}, 3, Box{0, 1}},
      torch::kCPU,
      "wide");
  testing::expect_error(
      [&] { wrong_width.check_logits(torch::rand({4, 2}), "first batch"); },
      {"[4, 7]", "[4, 3]"});
}

}  // namespace
}  // namespace bb

namespace bb {
namespace {

// The CUDA path against the CPU path, when this LibTorch sees a GPU.
TEST(Classifier, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device visible to this LibTorch";
  }
  auto cpu = tiny_classifier();
  torch::manual_seed(5);
  TinyNet net;
  net->to(torch::kFloat64);
  auto gpu = Classifier::from_module(net, InputSpec{{3, 2, 2}, 5, Box{0, 1}}, torch::kCUDA, "tiny");
  auto x = torch::rand({7, 3, 2, 2}, torch::kFloat64);
  auto c = cpu.predict(x);
  auto on_cpu = cpu.margin_gradients(x, c);
  auto on_gpu = gpu.margin_gradients(x.cuda(), c.cuda());
  EXPECT_TRUE(torch::allclose(on_gpu.grads.cpu(), on_cpu.grads, 1e-10, 1e-12));
  auto y = project_ball_box(x.cuda(), (x * 3 - 1).cuda(), torch::full({7}, 0.3).cuda(), Norm::L1, Box{0, 1});
  EXPECT_TRUE(torch::allclose(y.cpu(), project_ball_box(x, x * 3 - 1, torch::full({7}, 0.3), Norm::L1, Box{0, 1}), 1e-10, 1e-12));
  // L2: the sorted solver on the GPU, the iterative one on the CPU.
  y = project_ball_box(x.cuda(), (x * 3 - 1).cuda(), torch::full({7}, 0.3).cuda(), Norm::L2, Box{0, 1});
  EXPECT_TRUE(torch::allclose(y.cpu(), project_ball_box(x, x * 3 - 1, torch::full({7}, 0.3), Norm::L2, Box{0, 1}), 1e-10, 1e-12));
}

TEST(Runtime, AllocatorSettingsYieldToTheUser) {
#if defined(__GLIBC__)
  if (std::getenv("GLIBC_TUNABLES") != nullptr || std::getenv("MALLOC_MMAP_MAX_") != nullptr ||
      std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr ||
      std::getenv("MALLOC_TOP_PAD_") != nullptr) {
    GTEST_SKIP() << "the environment already sets glibc's allocator";
  }
  ::setenv("MALLOC_TOP_PAD_", "65536", 1);
  EXPECT_FALSE(configure_allocator());
  ::unsetenv("MALLOC_TOP_PAD_");
  EXPECT_TRUE(configure_allocator());
#else
  EXPECT_FALSE(configure_allocator());
#endif
}

// The build links OpenBLAS's OpenMP flavour through its RPATH when it is
// installed (CMakeLists.txt): the BLAS mapped into this process must be it.
TEST(Runtime, BlasIsTheOpenMpBuildWhenConfigured) {
#ifdef BOUNDBENCH_OPENBLAS_OPENMP_DIR
  std::ifstream maps("/proc/self/maps");
  ASSERT_TRUE(maps.good());
  std::vector<std::string> openblas;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("libopenblas") != std::string::npos) {
      openblas.push_back(line.substr(line.find('/')));
    }
  }
  ASSERT_FALSE(openblas.empty()) << "no OpenBLAS mapped";
  for (const auto& path : openblas) {
    EXPECT_EQ(path.rfind(BOUNDBENCH_OPENBLAS_OPENMP_DIR, 0), 0u) << path;
  }
#else
  GTEST_SKIP() << "built without OpenBLAS's OpenMP flavour";
#endif
}

}  // namespace
}  // namespace bb
