// The exact minimal distortion by MILP (bounds/exact_milp.h): against the
// closed form of linear models, against a dense grid of the input square on
// tiny 2-D ReLU networks, between the certified bounds and every attack on a
// small random MLP, in any batch, under a time limit, and its refusals; and
// the harness's handling of exact rows (summary, violations, compare).
#include <cmath>
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attacks/attack.h"
#include "bounds/bound.h"
#include "bounds/exact_milp.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "harness/compare.h"
#include "harness/methods.h"
#include "harness/records.h"
#include "models/layers.h"
#include "models/zoo.h"
#include "tests/helpers.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Model chain_model(const LayerList& layers, std::vector<int64_t> shape, int64_t classes, const std::string& name) {
  Classifier classifier(
      [layers](const torch::Tensor& x) { return run_layers(layers, x); },
      InputSpec{std::move(shape), classes, Box{0, 1}},
      torch::kCPU,
      name);
  return Model{classifier, name, "0123456789abcdef", layers, "", {}};
}

Layer linear(int64_t in, int64_t out, torch::ScalarType dtype, double bias_scale = 0.5, double gain = 1) {
  return Layer{LayerKind::Linear, torch::randn({out, in}, dtype) * (gain / std::sqrt(static_cast<double>(in))),
               torch::randn({out}, dtype) * bias_scale};
}

// A ReLU MLP in -> hidden... -> classes; the first layer's weights times
// `gain` (larger: the classes change over shorter distances).
Model relu_mlp(const std::vector<int64_t>& widths, torch::ScalarType dtype, uint64_t seed, const std::string& name,
               double gain = 1) {
  torch::manual_seed(seed);
  LayerList layers;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    if (i > 0) {
      layers.push_back(Layer{LayerKind::ReLU, {}, {}});
    }
    layers.push_back(linear(widths[i], widths[i + 1], dtype, 0.5, i == 0 ? gain : 1.0));
  }
  return chain_model(layers, {widths.front()}, widths.back(), name);
}

ExactResult solve(const Model& model, const torch::Tensor& x, Norm p, MilpOptions options = {},
                  const torch::Tensor& index = {}) {
  ExactMilp exact(p, options, AttackOptions{});
  exact.check(model);
  return exact.run(model, x, model.classifier.predict(x), AttackContext{0, index});
}

// Linear models: rho_p(x) = min_j g_j(x) / ||w_c - w_j||_q where the free
// minimiser stays in D (here: the samples where it does), through a
// normalisation layer and a flatten (the dense composition of the chain).
TEST(ExactMilp, EqualsTheClosedFormOnLinearModels) {
  int checked = 0;
  for (uint64_t seed : {1, 2, 3}) {
    torch::manual_seed(seed);
    const int64_t classes = 4;
    Layer normalise{LayerKind::ChannelAffine, torch::tensor({2.0, 0.5}, torch::kFloat64),
                    torch::tensor({-1.0, 0.25}, torch::kFloat64)};
    Layer flatten{LayerKind::Flatten, {}, {}};
    Layer last = linear(6, classes, torch::kFloat64, 0.3);
    const Model model = chain_model({normalise, flatten, last}, {2, 3}, classes, "linear");
    // The effective map on the raw input: W diag(scale per channel).
    auto scale = torch::tensor({2.0, 2.0, 2.0, 0.5, 0.5, 0.5}, torch::kFloat64);
    auto W = last.weight * scale;
    auto x = 0.3 + 0.4 * torch::rand({12, 2, 3}, torch::kFloat64);
    auto c = model.classifier.predict(x);
    auto logits = model.classifier.logits(x);
    for (Norm p : {Norm::Linf, Norm::L1}) {
      const ExactResult r = solve(model, x, p);
      for (int64_t i = 0; i < x.size(0); ++i) {
        const int64_t ci = c[i].item<int64_t>();
        double best = kInf;
        int64_t best_j = -1;
        for (int64_t j = 0; j < classes; ++j) {
          if (j == ci) {
            continue;
          }
          auto w = W[ci] - W[j];
          const double g = (logits[i][ci] - logits[i][j]).item<double>();
          const double distance = g / lp_norm(w.unsqueeze(0), dual(p)).item<double>();
          if (distance < best) {
            best = distance;
            best_j = j;
          }
        }
        // The free minimiser in D: Linf moves every coordinate by rho, L1 one.
        const double room = torch::minimum(x[i], 1 - x[i]).min().item<double>();
        if (best > room) {
          continue;
        }
        ASSERT_TRUE(r.proven[i].item<bool>())
            << "seed " << seed << " sample " << i << " " << norm_name(p) << " " << r.details[i].dump();
        EXPECT_NEAR(r.value[i].item<double>(), best, 1e-6 * best)
            << "seed " << seed << " sample " << i << " " << norm_name(p);
        EXPECT_EQ(r.target[i].item<int64_t>(), best_j);
        EXPECT_DOUBLE_EQ(r.lower[i].item<double>(), r.value[i].item<double>());
        EXPECT_DOUBLE_EQ(r.upper[i].item<double>(), r.value[i].item<double>());
        // The minimiser: in D, at that distance, on the boundary.
        auto delta = (r.x_adv[i] - x[i]).reshape({1, -1});
        EXPECT_NEAR(lp_norm(delta, p).item<double>(), best, 1e-6 * best);
        EXPECT_EQ(r.details[i].at("recheck"), "ok");
        EXPECT_LT(std::abs(r.details[i].at("margin64").get<double>()), 1e-6);
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 30);
}

// The distance from x of the nearest grid point [G, 2] whose logits [G, k]
// put some class j != c at or above c (+inf if none).
double nearest_misclassified(const torch::Tensor& grid, const torch::Tensor& logits, const torch::Tensor& x,
                             int64_t c, Norm p) {
  auto fc = logits.select(1, c).unsqueeze(1);
  auto others = logits.index_fill(1, torch::tensor({c}), -kInf);
  auto adversarial = (others >= fc).any(1);
  auto chosen = lp_norm(grid - x, p).masked_select(adversarial);
  return chosen.numel() > 0 ? chosen.min().item<double>() : kInf;
}

// The minimal distortion over a grid of points of D: the smallest distance
// of a point where some f_j >= f_c. An upper bound on rho; the grid spans
// the box [x - radius, x + radius] ∩ D.
double grid_minimum(const Model& model, const torch::Tensor& x, int64_t c, Norm p, double radius, int64_t steps) {
  torch::NoGradGuard no_grad;
  auto lo = (x - radius).clamp(0, 1);
  auto hi = (x + radius).clamp(0, 1);
  auto a = torch::linspace(lo[0].item<double>(), hi[0].item<double>(), steps, torch::kFloat64);
  auto b = torch::linspace(lo[1].item<double>(), hi[1].item<double>(), steps, torch::kFloat64);
  auto grid = torch::stack(torch::meshgrid({a, b}, "ij"), -1).reshape({-1, 2});
  return nearest_misclassified(grid, model.classifier.logits(grid), x, c, p);
}

// Tiny ReLU networks on the square: the exact value is never above a grid
// point that is misclassified, and the grid finds one within a few grid
// steps of it (a fine grid over the ball of a coarse grid's minimum).
TEST(ExactMilp, MatchesADenseGridOnTheSquare) {
  int checked = 0;
  for (uint64_t seed : {11, 12, 13}) {
    const Model model = relu_mlp({2, 10, 10, 3}, torch::kFloat64, seed, "square", 8);
    torch::manual_seed(seed + 100);
    auto x = torch::rand({4, 2}, torch::kFloat64);
    auto c = model.classifier.predict(x);
    for (Norm p : {Norm::Linf, Norm::L1}) {
      MilpOptions options;
      options.preactivation = seed == 12 ? "ibp" : "crown";
      const ExactResult r = solve(model, x, p, options);
      for (int64_t i = 0; i < x.size(0); ++i) {
        const int64_t ci = c[i].item<int64_t>();
        const double coarse = grid_minimum(model, x[i], ci, p, 2.0, 401);
        if (!std::isfinite(coarse)) {
          continue;  // no other class anywhere on the square
        }
        const double radius = coarse + 2.0 / 400;
        const int64_t steps = 601;
        const double fine = grid_minimum(model, x[i], ci, p, radius, steps);
        const double spacing = 2 * radius / (steps - 1);
        ASSERT_TRUE(r.proven[i].item<bool>())
            << "seed " << seed << " sample " << i << " " << norm_name(p) << " " << r.details[i].dump();
        const double exact = r.value[i].item<double>();
        EXPECT_LE(exact, fine * (1 + 1e-9)) << "seed " << seed << " sample " << i << " " << norm_name(p);
        EXPECT_GE(exact, fine - 5 * spacing) << "seed " << seed << " sample " << i << " " << norm_name(p);
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 16);
}

// On the faces of the square (edges and corners, where the interval sources
// count only the directions into D): every certified bound stays at or
// below a misclassified grid point's distance, and the face rule makes the
// interval bounds larger than without it on some of them.
TEST(CertifiedBounds, OnTheFacesOfTheSquareStayBelowTheGrid) {
  auto x = torch::tensor(
      {{0.0, 0.0}, {1.0, 1.0}, {0.0, 1.0}, {1.0, 0.0}, {0.0, 0.37}, {0.62, 0.0}, {1.0, 0.55}, {0.28, 1.0}},
      torch::kFloat64);
  const int64_t n = x.size(0);
  auto index = torch::arange(n, torch::kInt64);
  int checked = 0;
  int raised = 0;
  for (uint64_t seed : {11, 12, 13}) {
    const Model model = relu_mlp({2, 10, 10, 3}, torch::kFloat64, seed, "square", 8);
    auto c = model.classifier.predict(x);
    // The square's grid, classified once: which points are adversarial for each sample.
    auto axis = torch::linspace(0, 1, 801, torch::kFloat64);
    auto points = torch::stack(torch::meshgrid({axis, axis}, "ij"), -1).reshape({-1, 2});
    auto logits = model.classifier.logits(points).detach();
    for (Norm p : {Norm::Linf, Norm::L2, Norm::L1}) {
      std::vector<double> grid(n);
      for (int64_t i = 0; i < n; ++i) {
        grid[i] = nearest_misclassified(points, logits, x[i], c[i].item<int64_t>(), p);
      }
      for (const auto& name : bound_names()) {
        BoundOptions options;
        options.local_ball.bisection_steps = 8;
        options.shells.shells = 3;
        options.shells.rounds = 2;
        options.crown_radius.bisection_steps = 10;
        std::unique_ptr<Bound> bound;
        try {
          bound = make_bound(name, p, options);
          bound->check(model);
        } catch (const Error&) {
          continue;
        }
        if (!bound->certified()) {
          continue;
        }
        auto value = bound->run(model, x, c, {0, index, {}}).value;
        for (int64_t i = 0; i < n; ++i) {
          EXPECT_LE(value[i].item<double>(), grid[i] * (1 + 1e-9))
              << name << " seed " << seed << " " << norm_name(p) << " at " << x[i];
          checked += std::isfinite(grid[i]) ? 1 : 0;
        }
        if (name.find("interval") != std::string::npos) {
          // Faces against none, without the room: the Linf local ball with
          // the room counts only radii shown whole, so at 8 bisection steps
          // it can end up to a step (2^(20/256), 5.6%) below the ratio that
          // the ball without faces offers at a radius not shown.
          if (p == Norm::Linf && name.rfind("local-ball-interval", 0) == 0) {
            options.local_ball.room = false;
            value = make_bound(name, p, options)->run(model, x, c, {0, index, {}}).value;
          }
          options.interval.faces = false;
          auto free = make_bound(name, p, options)->run(model, x, c, {0, index, {}}).value;
          EXPECT_TRUE((value >= free * (1 - 1e-9)).all().item<bool>()) << name << "\n" << value << free;
          raised += (value > free * 1.01).any().item<bool>() ? 1 : 0;
        }
      }
    }
  }
  EXPECT_GE(checked, 200);
  EXPECT_GE(raised, 30);
}

// Near the faces of the square (within a few hundredths), in Linf: the shells
// and the local ball that weigh each direction by its room toward the face
// (shells.room, local_ball.room) stay at or below a misclassified grid
// point's distance, and end above those without it on some samples.
TEST(CertifiedBounds, RoomNearTheFacesStaysBelowTheGrid) {
  auto x = torch::tensor(
      {{0.01, 0.02}, {0.99, 0.97}, {0.03, 0.985}, {0.975, 0.005}, {0.015, 0.37}, {0.62, 0.02}, {0.98, 0.55},
       {0.28, 0.995}, {0.05, 0.5}, {0.5, 0.96}},
      torch::kFloat64);
  const int64_t n = x.size(0);
  auto index = torch::arange(n, torch::kInt64);
  int checked = 0;
  int raised = 0;
  for (uint64_t seed : {11, 12, 13, 14}) {
    const Model model = relu_mlp({2, 10, 10, 3}, torch::kFloat64, seed, "square", 8);
    auto c = model.classifier.predict(x);
    auto axis = torch::linspace(0, 1, 1001, torch::kFloat64);
    auto points = torch::stack(torch::meshgrid({axis, axis}, "ij"), -1).reshape({-1, 2});
    auto logits = model.classifier.logits(points).detach();
    std::vector<double> grid(n);
    for (int64_t i = 0; i < n; ++i) {
      grid[i] = nearest_misclassified(points, logits, x[i], c[i].item<int64_t>(), Norm::Linf);
    }
    for (const char* name : {"local-ball-shells-interval-ibp", "local-ball-shells-interval-crown",
                             "local-ball-interval-ibp", "local-ball-interval-crown"}) {
      BoundOptions options;
      options.shells.shells = 4;
      options.shells.rounds = 3;
      options.local_ball.bisection_steps = 10;
      auto value = make_bound(name, Norm::Linf, options)->run(model, x, c, {0, index, {}}).value;
      options.shells.room = false;
      options.local_ball.room = false;
      auto without = make_bound(name, Norm::Linf, options)->run(model, x, c, {0, index, {}}).value;
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_LE(value[i].item<double>(), grid[i] * (1 + 1e-9)) << name << " seed " << seed << " at " << x[i];
        checked += std::isfinite(grid[i]) ? 1 : 0;
      }
      raised += (value > without * 1.01).any().item<bool>() ? 1 : 0;
    }
  }
  EXPECT_GE(checked, 120);
  EXPECT_GE(raised, 8);
}

// Zoo-like MLPs 20-16-16-4 on [0, 1]^20: every certified bound of the
// registry is at most the exact value, which is at most every attack's
// distortion. In float64 up to the solver's tolerance; in float32 (the
// zoo's dtype) up to the rounding of the model's own logits, whose boundary
// lies elsewhere by up to a few 1e-6 relative (kExactTolerance).
struct SoundnessCase {
  torch::ScalarType dtype;
  std::vector<Norm> norms;
  double tolerance;
};

class ExactSoundness : public ::testing::TestWithParam<SoundnessCase> {};

TEST_P(ExactSoundness, LiesBetweenTheCertifiedBoundsAndEveryAttack) {
  const SoundnessCase& row = GetParam();
  const Model model = relu_mlp({20, 16, 16, 4}, row.dtype, 5, "mlp20", 4);
  torch::manual_seed(6);
  const int64_t n = 6;
  // Like images: a third of the coordinates at 0, a sixth at 1 (the interval
  // sources then count only the directions into D there), a sixth within
  // 0.05 of 0 (the Linf shells weigh their room toward it).
  auto x = torch::rand({n, 20}, row.dtype);
  auto u = torch::rand({n, 20}, row.dtype);
  x = torch::where(
      u < 1.0 / 3, torch::zeros_like(x),
      torch::where(u > 5.0 / 6, torch::ones_like(x), torch::where(u < 0.5, x * 0.05, x)));
  auto c = model.classifier.predict(x);
  auto index = torch::arange(n, torch::kInt64);
  BoundOptions options;
  options.local_ball.bisection_steps = 6;
  options.shells.shells = 3;
  options.shells.rounds = 2;
  options.crown_radius.bisection_steps = 10;
  for (Norm p : row.norms) {
    const ExactResult r = solve(model, x, p, {}, index);
    ASSERT_TRUE(r.proven.all().item<bool>()) << norm_name(p) << " " << r.proven;
    const auto exact = r.value;
    int bounds = 0;
    for (const auto& name : bound_names()) {
      std::unique_ptr<Bound> bound;
      try {
        bound = make_bound(name, p, options);
        bound->check(model);
      } catch (const Error&) {
        continue;  // a norm or a network the bound does not take
      }
      if (!bound->certified()) {
        continue;
      }
      auto value = bound->run(model, x, c, {0, index, {}}).value.to(torch::kFloat64);
      auto above = value > exact * (1 + row.tolerance);
      EXPECT_FALSE(above.any().item<bool>())
          << bound->name() << " above the exact value at " << above.nonzero().flatten() << ": bound / exact "
          << (value / exact).masked_select(above) - 1 << " + 1";
      ++bounds;
    }
    EXPECT_GE(bounds, 5) << norm_name(p);
    for (const auto& name : attack_names()) {
      auto a = make_attack(name, p)->run(model.classifier, x, c, {0, index});
      auto below = a.success & (a.distance < exact * (1 - row.tolerance));
      EXPECT_FALSE(below.any().item<bool>()) << name << " below the exact value: " << a.distance << exact;
    }
    // The minimiser: a tie or over the boundary in float64, at the exact distance.
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(r.details[i].at("recheck"), "ok");
      EXPECT_GE(r.details[i].at("margin64").get<double>(), -1e-5);
      EXPECT_NEAR(r.details[i].at("distance64").get<double>(), exact[i].item<double>(), 1e-6 * exact[i].item<double>());
      EXPECT_LE(r.details[i].at("milp_seconds").get<double>(), 60.0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Dtypes, ExactSoundness,
    ::testing::Values(SoundnessCase{torch::kFloat64, {Norm::Linf, Norm::L1}, 1e-8},
                      SoundnessCase{torch::kFloat32, {Norm::Linf}, kExactTolerance}),
    [](const ::testing::TestParamInfo<SoundnessCase>& info) {
      return info.param.dtype == torch::kFloat64 ? std::string("float64") : std::string("float32");
    });

// The zoo's small MLP (784-32-32-10, input normalisation inside): on two
// MNIST test images in L1 (a fraction of a second each; Linf takes seconds,
// scripts/exact_vs_attacks.sh), proven, between CROWN's radius and the
// attacks.
TEST(ExactMilp, ZooSmallMlpL1) {
  const auto dir = default_data_dir();
  if (!std::filesystem::exists(std::filesystem::path(dir) / "mnist" / "t10k-images-idx3-ubyte")) {
    GTEST_SKIP() << "MNIST not fetched (scripts/setup.sh)";
  }
  const Model model = load_model("mnist-mlp-small-relu", "", torch::kCPU);
  auto x = load_dataset("mnist", "test", dir).images.slice(0, 0, 2);
  auto c = model.classifier.predict(x);
  auto index = torch::arange(2, torch::kInt64);
  const ExactResult r = solve(model, x, Norm::L1, {}, index);
  ASSERT_TRUE(r.proven.all().item<bool>()) << r.details[0].dump() << r.details[1].dump();
  for (const char* name : {"deepfool", "pgd"}) {
    auto a = make_attack(name, Norm::L1)->run(model.classifier, x, c, {0, index});
    EXPECT_FALSE((a.success & (a.distance < r.value * (1 - kExactTolerance))).any().item<bool>())
        << name << a.distance << r.value;
  }
  BoundOptions options;
  options.crown_radius.bisection_steps = 10;
  auto crown = make_bound("crown-radius", Norm::L1, options)->run(model, x, c, {0, index, {}});
  EXPECT_FALSE((crown.value > r.value * (1 + kExactTolerance)).any().item<bool>()) << crown.value << r.value;
  EXPECT_TRUE((crown.value > 0).all().item<bool>());
}

// A convolution is encoded as its dense matrix (the minimiser's re-check
// runs the layers themselves): proven, between CROWN's radius and the attacks.
TEST(ExactMilp, ConvolutionsAreEncodedDensely) {
  torch::manual_seed(31);
  Layer conv{LayerKind::Conv2d, torch::randn({2, 1, 3, 3}, torch::kFloat64), torch::randn({2}, torch::kFloat64) * 0.2};
  conv.stride = {2, 2};
  conv.padding = {1, 1};
  Layer normalise{LayerKind::ChannelAffine, torch::tensor({3.0}, torch::kFloat64), torch::tensor({-1.5}, torch::kFloat64)};
  const Model model = chain_model(
      {normalise, conv, Layer{LayerKind::ReLU, {}, {}}, Layer{LayerKind::Flatten, {}, {}},
       linear(18, 3, torch::kFloat64)},
      {1, 5, 5}, 3, "conv");
  auto x = torch::rand({3, 1, 5, 5}, torch::kFloat64);
  auto c = model.classifier.predict(x);
  auto index = torch::arange(3, torch::kInt64);
  for (Norm p : {Norm::Linf, Norm::L1}) {
    const ExactResult r = solve(model, x, p, {}, index);
    ASSERT_TRUE(r.proven.all().item<bool>()) << r.details[0].dump();
    for (int64_t i = 0; i < 3; ++i) {
      EXPECT_EQ(r.details[i].at("recheck"), "ok");
    }
    for (const char* name : {"deepfool", "pgd"}) {
      auto a = make_attack(name, p)->run(model.classifier, x, c, {0, index});
      EXPECT_FALSE((a.success & (a.distance < r.value * (1 - 1e-8))).any().item<bool>()) << name;
    }
    auto crown = make_bound("crown-radius", p)->run(model, x, c, {0, index, {}});
    EXPECT_FALSE((crown.value > r.value * (1 + 1e-8)).any().item<bool>()) << crown.value << r.value;
  }
}

// A sample's result does not depend on the batch it is solved in.
TEST(ExactMilp, ASampleGivesTheSameResultInAnyBatch) {
  const Model model = relu_mlp({10, 12, 12, 4}, torch::kFloat32, 8, "mlp10", 4);
  torch::manual_seed(9);
  auto x = torch::rand({4, 10});
  auto index = torch::arange(100, 104, torch::kInt64);
  for (Norm p : {Norm::Linf, Norm::L1}) {
    const ExactResult whole = solve(model, x, p, {}, index);
    for (auto rows : {torch::tensor({3}, torch::kInt64), torch::tensor({2, 0}, torch::kInt64)}) {
      const ExactResult part = solve(model, x.index_select(0, rows), p, {}, index.index_select(0, rows));
      auto expected = whole.value.index_select(0, rows);
      EXPECT_TRUE(torch::allclose(part.value, expected, 1e-8, 0)) << part.value << expected;
      EXPECT_TRUE(torch::equal(part.proven, whole.proven.index_select(0, rows)));
      EXPECT_TRUE(torch::equal(part.target, whole.target.index_select(0, rows)));
      EXPECT_TRUE(torch::equal(part.gradients, whole.gradients.index_select(0, rows)));
    }
    EXPECT_TRUE(whole.proven.all().item<bool>());
  }
}

// A time-out is a result: not proven, a bracket around the true value
// whose lower end is at least CROWN's radius.
TEST(ExactMilp, ATimeOutGivesABracket) {
  const Model model = relu_mlp({20, 16, 16, 6}, torch::kFloat32, 21, "mlp16", 4);
  torch::manual_seed(22);
  auto x = torch::rand({3, 20});
  const ExactResult full = solve(model, x, Norm::Linf);
  ASSERT_TRUE(full.proven.all().item<bool>());
  MilpOptions hurried;
  hurried.time_limit = 1e-6;
  const ExactResult r = solve(model, x, Norm::Linf, hurried);
  int open = 0;
  for (int64_t i = 0; i < 3; ++i) {
    if (r.proven[i].item<bool>()) {
      continue;
    }
    ++open;
    EXPECT_TRUE(std::isnan(r.value[i].item<double>()));
    EXPECT_LE(r.lower[i].item<double>(), full.value[i].item<double>() * (1 + 1e-9));
    EXPECT_GT(r.lower[i].item<double>(), 0);  // at least CROWN's certified radius
    EXPECT_GE(r.upper[i].item<double>(), full.value[i].item<double>() * (1 - 1e-9));
    EXPECT_TRUE(std::isfinite(r.upper[i].item<double>()));
  }
  EXPECT_GE(open, 1);
}

// Refusals: one line each, naming the problem.
TEST(ExactMilp, RefusesL2NonReluChainsAndLargeNetworks) {
  const Model relu = relu_mlp({6, 8, 3}, torch::kFloat32, 1, "relu");
  testing::expect_error([&] { ExactMilp(Norm::L2, {}, {}).check(relu); }, {"exact-milp", "L2", "quadratic"});
  testing::expect_error([&] { make_method("exact-milp", Norm::L2)->check(relu); }, {"L2"});
  torch::manual_seed(2);
  Layer act{LayerKind::Softplus, {}, {}};
  act.beta = 2;
  const Model smooth = chain_model({linear(6, 8, torch::kFloat32), act, linear(8, 3, torch::kFloat32)}, {6}, 3,
                                   "smooth");
  testing::expect_error([&] { ExactMilp(Norm::Linf, {}, {}).check(smooth); },
                        {"exact-milp", "smooth", "affine layers and ReLUs", "Softplus"});
  MilpOptions small;
  small.max_relus = 4;
  testing::expect_error([&] { ExactMilp(Norm::Linf, small, {}).check(relu); }, {"8 ReLUs", "milp.max_relus = 4"});
  MilpOptions bad;
  bad.preactivation = "lp";
  testing::expect_error([&] { ExactMilp(Norm::Linf, bad, {}); }, {"--milp.preactivation", "lp", "crown, ibp"});
  bad = {};
  bad.incumbent = "deepfool+cw";
  testing::expect_error([&] { ExactMilp(Norm::Linf, bad, {}); }, {"--milp.incumbent", "cw", "pgd"});
  bad = {};
  bad.time_limit = 0;
  testing::expect_error([&] { ExactMilp(Norm::Linf, bad, {}); }, {"--milp.time_limit", "positive"});
  MethodOptions keys;
  set_option(keys, "milp.time_limit", "5");
  set_option(keys, "milp.preactivation", "ibp");
  EXPECT_EQ(option_text(keys, "milp.time_limit"), "5");
  const std::string name = make_method("exact-milp", Norm::Linf, keys)->name();
  EXPECT_NE(name.find("exact-milp-Linf(milp.time_limit=5,milp.preactivation=ibp"), std::string::npos) << name;
  EXPECT_EQ(kind_name(make_method("exact-milp", Norm::L1)->kind()), std::string("exact"));
}

// Through the harness: proven samples carry a value, the bracket and the
// solver's figures.
TEST(ExactMilp, HarnessRecordsTheBracket) {
  const Model model = relu_mlp({10, 12, 12, 4}, torch::kFloat32, 8, "mlp10", 4);
  torch::manual_seed(9);
  auto x = torch::rand({2, 10});
  auto method = make_method("exact-milp", Norm::L1);
  method->check(model);
  auto batch = method->run(model, x, model.classifier.predict(x), MethodContext{0, torch::arange(2), {}});
  ASSERT_EQ(batch.extra.size(), 2u);
  for (int64_t i = 0; i < 2; ++i) {
    const auto& e = batch.extra[i];
    ASSERT_TRUE(e.at("proven").get<bool>());
    EXPECT_TRUE(batch.success[i].item<bool>());
    EXPECT_DOUBLE_EQ(e.at("lower").get<double>(), batch.value[i].item<double>());
    EXPECT_DOUBLE_EQ(e.at("upper").get<double>(), batch.value[i].item<double>());
    for (const char* key : {"target", "milp_seconds", "nodes", "classes", "skipped", "binaries", "incumbent",
                            "margin64", "margin_model"}) {
      EXPECT_TRUE(e.contains(key)) << key;
    }
    EXPECT_GT(batch.gradients[i].item<int64_t>(), 0);  // the incumbent attacks
  }
}

nlohmann::json record(const std::string& method, const std::string& kind, bool certified, int64_t sample,
                      double value) {
  return {{"model", "m"}, {"norm", "Linf"}, {"sample", sample}, {"method", method}, {"name", method + "(a=1)"},
          {"kind", kind}, {"certified", certified}, {"success", std::isfinite(value)},
          {"value", std::isfinite(value) ? nlohmann::json(value) : nlohmann::json()},
          {"seconds", 0.5}, {"gradients", 10}};
}

// The summary: an exact row's tightness is exact / smallest attack; a
// certified bound above a proven exact value is a violation even below the
// attacks; an exact value above an attack is one too; rounding is not.
TEST(ExactMilp, SummaryFlagsBoundsAboveExactAndExactAboveAttacks) {
  std::vector<nlohmann::json> records{
      record("pgd", "attack", false, 0, 0.2), record("pgd", "attack", false, 1, 0.2),
      record("pgd", "attack", false, 2, 0.2),
      record("exact-milp", "exact", true, 0, 0.1), record("exact-milp", "exact", true, 1, 0.2 * (1 + 1e-7)),
      record("exact-milp", "exact", true, 2, 0.25), record("exact-milp", "exact", true, 3, std::numeric_limits<double>::quiet_NaN()),
      record("crown-radius", "bound", true, 0, 0.15), record("crown-radius", "bound", true, 1, 0.1),
      record("crown-radius", "bound", true, 2, 0.1),
  };
  const Summary summary = summarise(records);
  ASSERT_EQ(summary.rows.size(), 3u);
  EXPECT_EQ(summary.rows[0].kind, "attack");
  EXPECT_EQ(summary.rows[1].kind, "exact");
  const SummaryRow& exact = summary.rows[1];
  EXPECT_EQ(exact.samples, 4);
  EXPECT_EQ(exact.succeeded, 3);
  EXPECT_NEAR(exact.median_tightness, 1.0, 1e-6);  // 0.5, 1, 1.25
  EXPECT_EQ(exact.violations, 1);                  // sample 2 only: sample 1 is rounding
  EXPECT_EQ(summary.rows[2].violations, 1);        // crown-radius at sample 0: above exact, below pgd
  ASSERT_EQ(summary.violations.size(), 2u);
  bool bound_above_exact = false;
  bool exact_above_attack = false;
  for (const auto& v : summary.violations) {
    if (v.method == "crown-radius") {
      bound_above_exact = v.sample == 0 && v.against == "exact" && v.reference == 0.1;
      EXPECT_NE(describe(v).find("proven exact minimum 0.1"), std::string::npos) << describe(v);
    } else {
      exact_above_attack = v.method == "exact-milp" && v.sample == 2 && v.against == "attack";
      EXPECT_NE(describe(v).find("exact minimum 0.25 > smallest attack distortion 0.2"), std::string::npos)
          << describe(v);
    }
  }
  EXPECT_TRUE(bound_above_exact);
  EXPECT_TRUE(exact_above_attack);
  // The CSV reads back, and an exact row with violations regresses.
  const SummaryFile base = parse_summary_csv(summary_csv(summarise({records[0], records[3]})), "base.csv");
  const SummaryFile now = parse_summary_csv(summary_csv(summary), "new.csv");
  ASSERT_EQ(now.summary.rows[1].kind, "exact");
  const Comparison comparison = compare_summaries(base, now, CompareOptions{});
  bool regressed = false;
  for (const auto& row : comparison.rows) {
    if (row.any().method == "exact-milp") {
      regressed = !row.regressions.empty() && row.regressions[0] == "1 exact value above an attack";
    }
  }
  EXPECT_TRUE(regressed);
}

}  // namespace
}  // namespace bb
