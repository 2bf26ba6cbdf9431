// Bounds: exact answers on linear models for every formula with every
// estimated source, the sampled maximum against a certified analytic bound
// and against a dense grid on a 2-D network, per-sample seeding, and refusal
// of bad options.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bounds/bound.h"
#include "bounds/formulas.h"
#include "bounds/hein.h"
#include "bounds/sources.h"
#include "tests/helpers.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// f(x) = W x + b on a box [-50, 50]^d that never binds; with or without its
// layer list (without one the sampled source also runs gradient ascent).
struct LinearModel {
  torch::Tensor w;
  torch::Tensor b;
  Model model;

  static LinearModel make(int64_t classes, int64_t d, uint64_t seed, bool with_layers) {
    torch::manual_seed(seed);
    auto w = torch::randn({classes, d}, torch::kFloat64);
    auto b = torch::randn({classes}, torch::kFloat64) * 0.1;
    Classifier classifier(
        [w, b](const torch::Tensor& x) { return torch::addmm(b, x.flatten(1), w.t()); },
        InputSpec{{d}, classes, Box{-50, 50}},
        torch::kCPU,
        "linear");
    std::optional<LayerList> layers;
    if (with_layers) {
      Layer linear{LayerKind::Linear, w, b};
      layers = LayerList{linear};
    }
    return {w, b, Model{classifier, "linear", "0123456789abcdef0123", layers, "", {}}};
  }

  // min_j g_j(x) / ||w_c - w_j||_q: the exact minimal distortion on R^d.
  torch::Tensor exact(const torch::Tensor& x, const torch::Tensor& c, Norm p) const {
    auto g = model.classifier.margins(x, c);
    auto diff = w.index_select(0, c).unsqueeze(1) - w.unsqueeze(0);
    auto q = lp_norm(diff.reshape({-1, w.size(1)}), dual(p)).view({x.size(0), -1});
    auto ratio = g / q;
    ratio.masked_fill_(torch::arange(w.size(0)).unsqueeze(0) == c.unsqueeze(1), kInf);
    return std::get<0>(ratio.min(1));
  }
};

// g_j(x) = f_c(x) - f_j(x) for one class j per sample: [N].
torch::Tensor target_margin(
    const LinearModel& linear, const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& j) {
  auto logits = linear.model.classifier.logits(x);
  return (logits.gather(1, c.view({-1, 1})) - logits.gather(1, j.view({-1, 1}))).squeeze(1);
}

// Small sample counts: the figures are exact on linear models anyway.
BoundOptions small_options() {
  BoundOptions o;
  o.sampled.draws = 24;
  o.sampled.chunk = 10;
  o.sampled.ascent_steps = 3;
  o.sampled.ascent_starts = 2;
  o.clever.batches = 6;
  o.clever.batch_size = 8;
  o.local_ball.bisection_steps = 6;
  // The CROWN radius approaches the linear model's exact value from below by
  // bisection: 24 halvings of 20 octaves leave 1e-6. The shells reach it in
  // closed form at the end of their first round's grid, R0.
  o.shells.shells = 3;
  o.shells.rounds = 1;
  o.crown_radius.bisection_steps = 24;
  return o;
}

struct LinearCase {
  std::string bound;
  Norm norm;
  bool with_layers;
};

class LinearBoundTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearBoundTest, EqualsTheExactMinimalDistortion) {
  const LinearCase& row = GetParam();
  auto linear = LinearModel::make(5, 7, 3, row.with_layers);
  torch::manual_seed(4);
  auto x = torch::rand({6, 7}, torch::kFloat64) * 2 - 1;
  auto c = linear.model.classifier.predict(x);
  auto rho = linear.exact(x, c, row.norm);
  BoundOptions options = small_options();
  options.lipschitz.radius = 1e3;  // never binds: the exact value
  auto bound = make_bound(row.bound, row.norm, options);
  const bool certified = bound->certified();
  auto result = bound->run(linear.model, x, c, {});
  ASSERT_EQ(result.value.sizes(), (std::vector<int64_t>{6}));
  EXPECT_TRUE(torch::allclose(result.value, rho, 1e-5, 0)) << bound->name() << "\n"
                                                             << result.value << "\n" << rho;
  if (certified) {
    EXPECT_TRUE((result.value <= rho * (1 + 1e-12)).all().item<bool>()) << bound->name() << ": above the exact value";
  }
  if (!certified) {
    EXPECT_TRUE((result.gradients > 0).all().item<bool>());
  }
  EXPECT_EQ(result.certified, certified);
  if (row.bound == "crown-radius" || row.bound.rfind("local-ball-shells", 0) == 0) {
    return;  // no gradient-norm figure (CROWN) or one from the last shell
  }
  // The minimising class attains the minimum, with its gradient norm.
  auto diff = linear.w.index_select(0, c) - linear.w.index_select(0, result.target);
  auto at_target = target_margin(linear, x, c, result.target) / lp_norm(diff, dual(row.norm));
  EXPECT_TRUE(torch::allclose(at_target, rho, 1e-5, 0));
  EXPECT_TRUE(torch::allclose(result.grad_norm, lp_norm(diff, dual(row.norm)), 1e-9, 0));

  // A radius below the exact value caps the Lipschitz bound at R.
  if (row.bound.rfind("lipschitz", 0) == 0 && row.bound != "lipschitz-global") {
    options.lipschitz.radius = rho.min().item<double>() / 2;
    auto capped = make_bound(row.bound, row.norm, options)->run(linear.model, x, c, {});
    EXPECT_TRUE(torch::allclose(capped.value, torch::full_like(rho, options.lipschitz.radius), 1e-12, 0));
  }
}

std::vector<LinearCase> linear_cases() {
  std::vector<LinearCase> cases;
  for (const auto& name : bound_names()) {
    if (name == "hein-one-layer") {
      continue;  // one hidden layer only: its own tests
    }
    const bool needs_layers = make_bound(name, Norm::L2)->certified();
    for (Norm p : all_norms()) {
      for (bool layers : {false, true}) {
        if (layers || !needs_layers) {
          cases.push_back({name, p, layers});
        }
      }
    }
  }
  return cases;
}

std::string linear_case_name(const ::testing::TestParamInfo<LinearCase>& info) {
  std::string name = info.param.bound + "_" + norm_name(info.param.norm) +
      (info.param.with_layers ? "_layers" : "_graph");
  for (char& ch : name) {
    if (ch == '-') {
      ch = '_';
    }
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Registry, LinearBoundTest, ::testing::ValuesIn(linear_cases()), linear_case_name);

// A one-hidden-layer softplus network d -> h -> k in float64.
Model softplus_network(int64_t d, int64_t h, int64_t k, double beta, uint64_t seed, Box box) {
  torch::manual_seed(seed);
  Layer first{LayerKind::Linear, torch::randn({h, d}, torch::kFloat64), torch::randn({h}, torch::kFloat64) * 0.5};
  Layer act{LayerKind::Softplus};
  act.beta = beta;
  Layer last{LayerKind::Linear, torch::randn({k, h}, torch::kFloat64) / std::sqrt(h), torch::zeros({k}, torch::kFloat64)};
  LayerList layers{first, act, last};
  Classifier classifier(
      [layers](const torch::Tensor& x) { return run_layers(layers, x); },
      InputSpec{{d}, k, box},
      torch::kCPU,
      "softplus");
  return Model{classifier, "softplus", "fedcba9876543210", layers, "", {}};
}

// The sampled maximum (draws and gradient ascent) can only under-estimate:
// it never passes Hein's certified a + bR over the ball.
TEST(SampledSource, NeverAboveHeinsCertifiedBound) {
  const Model model = softplus_network(6, 12, 4, 2.0, 5, Box{-10, 10});
  ASSERT_TRUE(is_one_hidden_layer_smooth(*model.layers));
  torch::manual_seed(6);
  auto x = torch::rand({5, 6}, torch::kFloat64) * 2 - 1;
  auto c = model.classifier.predict(x);
  auto targets = other_classes(c, 4);
  SampledOptions options;
  options.draws = 200;
  options.ascent_steps = 30;
  auto source = make_sampled_source(options);
  for (Norm p : all_norms()) {
    auto terms = hein_terms(*model.layers, x, c, targets, p);
    for (double radius : {0.05, 0.5, 2.0}) {
      Region region = Region::ball(x, torch::full({5}, radius, torch::kFloat64), p, Box{-10, 10});
      auto random = RandomStreams::derive(1, "hein", torch::arange(5), torch::kCPU);
      GradNormRequest request{&model, &region, c, targets, &random, {}, {}};
      auto found = source->estimate(request).value;
      auto certified = terms.a + terms.b * radius;
      EXPECT_TRUE((found <= certified * (1 + 1e-9)).all().item<bool>())
          << norm_name(p) << " R " << radius << "\n" << found << "\n" << certified;
      // And at least the norm at the centre.
      EXPECT_TRUE((found >= gradient_norms(model.classifier, x.unsqueeze(1), c, targets, dual(p)).select(1, 0) - 1e-12)
                      .all().item<bool>());
    }
  }
}

// On a 2-D network a dense grid of the square gives max ||grad g_j||_q over
// D; draws plus ascent reach it, draws alone fall short of it or meet it,
// and neither passes it by more than the grid's resolution allows.
TEST(SampledSource, ReachesTheGridMaximumOnATwoDimensionalNetwork) {
  const Box box{0, 1};
  const Model model = softplus_network(2, 16, 3, 4.0, 9, box);
  const int64_t steps = 801;
  auto axis = torch::linspace(0, 1, steps, torch::kFloat64);
  auto grid = torch::stack(torch::meshgrid({axis, axis}, "ij"), 2).reshape({-1, 2});
  auto c = torch::zeros({1}, torch::kInt64);
  auto targets = torch::tensor({{1, 2}}, torch::kInt64);
  for (Norm p : all_norms()) {
    const Norm q = dual(p);
    auto on_grid = gradient_norms(model.classifier, grid.unsqueeze(0), c, targets, q).select(0, 0);  // [G, 2]
    auto grid_max = std::get<0>(on_grid.max(0));
    Region region = Region::domain(torch::full({1, 2}, 0.5, torch::kFloat64), p, box);
    SampledOptions options;
    options.draws = 64;
    options.ascent_steps = 60;
    options.ascent_rel_step = 0.02;
    auto random = RandomStreams::derive(2, "grid", torch::zeros({1}, torch::kInt64), torch::kCPU);
    GradNormRequest request{&model, &region, c, targets, &random, {}, {}};
    auto found = make_sampled_source(options)->estimate(request).value.select(0, 0);
    options.ascent_steps = 0;
    auto random_again = RandomStreams::derive(2, "grid", torch::zeros({1}, torch::kInt64), torch::kCPU);
    GradNormRequest again{&model, &region, c, targets, &random_again, {}, {}};
    auto draws_only = make_sampled_source(options)->estimate(again).value.select(0, 0);
    EXPECT_TRUE((found >= grid_max * 0.995).all().item<bool>()) << norm_name(p) << found << grid_max;
    EXPECT_TRUE((found <= grid_max * 1.001).all().item<bool>()) << norm_name(p) << found << grid_max;
    EXPECT_TRUE((draws_only <= found).all().item<bool>());
  }
}

// A sample's bound depends on the seed, the method and its index only.
// The shell integral in closed form: hand-computed grids.
TEST(ShellIntegral, HandComputedGrids) {
  auto f64 = torch::kFloat64;
  // Radii out of order; G grows: I(1) = 1, I(2) = 3, then slope 4, so
  // g = 4 runs out at 2 + 1/4.
  auto r = shell_integral(
      torch::tensor({{2.0, 1.0, 3.0}}, f64), torch::tensor({{{2.0}, {1.0}, {4.0}}}, f64),
      torch::tensor({{4.0}}, f64));
  EXPECT_NEAR(r.radius.item<double>(), 2.25, 1e-15);
  EXPECT_EQ(r.index.item<int64_t>(), 0);
  EXPECT_DOUBLE_EQ(r.grad_norm.item<double>(), 4.0);
  EXPECT_DOUBLE_EQ(r.exhausted.item<double>(), 3.0);
  // A larger ball's smaller bound holds on the smaller ball too: G = {3, 1}
  // at {1, 2} integrates as 1 throughout; g = 1.5 runs out at 1.5.
  r = shell_integral(torch::tensor({{1.0, 2.0}}, f64), torch::tensor({{{3.0}, {1.0}}}, f64), torch::tensor({{1.5}}, f64));
  EXPECT_NEAR(r.radius.item<double>(), 1.5, 1e-15);
  EXPECT_DOUBLE_EQ(r.grad_norm.item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(r.exhausted.item<double>(), 2.0);
  // Two samples, two classes. Sample 0: class 1 (g 1, G 2) runs out at 0.5
  // before class 0 (g 5, G 1, never within the grid). Sample 1: a margin
  // <= 0 gives 0; nothing runs out within the grid of sample 0's class 0,
  // so the budget lasts to the grid's end there.
  r = shell_integral(
      torch::tensor({{1.0, 2.0}, {1.0, 2.0}}, f64),
      torch::tensor({{{1.0, 2.0}, {1.0, 2.0}}, {{1.0, 1.0}, {1.0, 1.0}}}, f64),
      torch::tensor({{5.0, 1.0}, {-0.5, 3.0}}, f64));
  EXPECT_NEAR(r.radius[0].item<double>(), 0.5, 1e-15);
  EXPECT_EQ(r.index[0].item<int64_t>(), 1);
  EXPECT_DOUBLE_EQ(r.grad_norm[0].item<double>(), 2.0);
  EXPECT_DOUBLE_EQ(r.exhausted[0].item<double>(), 1.0);
  EXPECT_EQ(r.radius[1].item<double>(), 0.0);
  EXPECT_EQ(r.index[1].item<int64_t>(), 0);
  r = shell_integral(torch::tensor({{1.0, 2.0}}, f64), torch::tensor({{{1.0}, {1.0}}}, f64), torch::tensor({{5.0}}, f64));
  EXPECT_DOUBLE_EQ(r.radius.item<double>(), 2.0);
  EXPECT_DOUBLE_EQ(r.exhausted.item<double>(), 2.0);
}

// G(r) = a + b r sampled on grids: the crossing of g = a R + b R^2 / 2 is
// the exact integral's; the grid's never exceeds it (each shell takes its
// outer bound) and approaches it as the grid gets finer, within b R h.
TEST(ShellIntegral, ApproachesTheExactIntegralFromBelow) {
  const double a = 0.7;
  const double b = 3.0;
  const double g = 2.0;
  const double exact = (-a + std::sqrt(a * a + 2 * b * g)) / b;
  double previous = 0;
  for (int64_t shells : {4, 16, 64, 256}) {
    auto radii = torch::linspace(1.0 / shells, 1.0, shells, torch::kFloat64).unsqueeze(0);
    auto bounds = (a + b * radii).unsqueeze(2);
    const double value =
        shell_integral(radii, bounds, torch::full({1, 1}, g, torch::kFloat64)).radius.item<double>();
    EXPECT_LE(value, exact) << shells;
    EXPECT_GE(value, exact - b * exact / shells / a) << shells;
    EXPECT_GT(value, previous) << shells;
    previous = value;
  }
  EXPECT_NEAR(previous, exact, 2e-3);
}

TEST(Bounds, ASampleGivesTheSameResultInAnyBatch) {
  const Model model = softplus_network(6, 12, 4, 2.0, 7, Box{0, 1});
  torch::manual_seed(8);
  auto x = torch::rand({6, 6}, torch::kFloat64);
  auto c = model.classifier.predict(x);
  BoundOptions options = small_options();
  for (const auto& name : bound_names()) {
    auto bound = make_bound(name, Norm::L2, options);
    BoundContext all{5, torch::arange(6), {}};
    auto whole = bound->run(model, x, c, all);
    auto rows = torch::tensor({4, 1}, torch::kInt64);
    BoundContext some{5, rows, {}};
    auto part = make_bound(name, Norm::L2, options)->run(model, x.index_select(0, rows), c.index_select(0, rows), some);
    EXPECT_TRUE(torch::equal(part.value, whole.value.index_select(0, rows))) << name;
    EXPECT_TRUE(torch::equal(part.gradients, whole.gradients.index_select(0, rows))) << name;
    BoundContext other_seed{6, torch::arange(6), {}};
    auto reseeded = make_bound(name, Norm::L2, options)->run(model, x, c, other_seed);
    // Estimated bounds draw from the seed; certified ones draw nothing.
    EXPECT_EQ(torch::equal(reseeded.value, whole.value), bound->certified()) << name;
  }
}

// Certified bounds need the layer chain: a model without one is refused
// naming why; estimated bounds still run on it.
TEST(Bounds, CertifiedBoundsRefuseAModelWithoutALayerChain) {
  auto linear = LinearModel::make(3, 4, 1, false);
  linear.model.layers_unavailable = "unsupported operations: aten::max_pool2d, aten::sigmoid";
  auto x = torch::zeros({2, 4}, torch::kFloat64);
  auto c = linear.model.classifier.predict(x);
  for (const auto& name : bound_names()) {
    auto bound = make_bound(name, Norm::L2, small_options());
    if (bound->certified()) {
      testing::expect_error([&] { bound->run(linear.model, x, c, {}); }, {"aten::max_pool2d", "aten::sigmoid"});
    } else {
      EXPECT_NO_THROW(bound->run(linear.model, x, c, {})) << name;
    }
  }
}

// Theorem 1 keeps G_j(D) per class on disk when asked: a new bound object
// reads it back (the same figures without drawing again), and a damaged
// cache file is refused by name.
TEST(Bounds, TheoremOneCacheOnDisk) {
  testing::TempDir dir;
  const Model model = softplus_network(6, 12, 4, 2.0, 7, Box{0, 1});
  torch::manual_seed(9);
  auto x = torch::rand({5, 6}, torch::kFloat64);
  auto c = model.classifier.predict(x);
  BoundOptions options = small_options();
  options.theorem1.cache_dir = dir.path().string();
  auto first = make_bound("theorem1-sampled", Norm::L2, options)->run(model, x, c, {});
  int files = 0;
  std::string cache;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    cache = entry.path().string();
  }
  ASSERT_EQ(files, 1);
  // Change the figures on disk: a new bound must take them from there.
  std::ifstream in(cache);
  nlohmann::json doc;
  in >> doc;
  in.close();
  for (auto& [cls, row] : doc["rows"].items()) {
    for (auto& value : row) {
      if (!value.is_null()) {
        value = value.get<double>() * 2;
      }
    }
  }
  std::ofstream(cache) << doc.dump();
  auto second = make_bound("theorem1-sampled", Norm::L2, options)->run(model, x, c, {});
  EXPECT_TRUE(torch::allclose(second.value, first.value / 2, 1e-12, 0));
  EXPECT_TRUE(torch::equal(second.gradients, first.gradients));
  std::ofstream(cache) << "{ not json";
  testing::expect_error(
      [&] { make_bound("theorem1-sampled", Norm::L2, options)->run(model, x, c, {}); }, {cache, "Theorem 1 cache"});
}

TEST(Bounds, RefusesBadNamesAndOptions) {
  testing::expect_error([] { make_bound("theorem2-sampled", Norm::L2); }, {"--bound", "theorem2-sampled", "local-ball-clever"});
  BoundOptions options;
  testing::expect_error([&] { set_option(options, "lipschitz.radius", "0"); }, {"--lipschitz.radius"});
  testing::expect_error([&] { set_option(options, "lipschitz.radius", "-1"); }, {"--lipschitz.radius"});
  testing::expect_error([&] { set_option(options, "lipschitz.radius", "inf"); }, {"--lipschitz.radius"});
  testing::expect_error([&] { set_option(options, "lipschitz.radius", "nan"); }, {"--lipschitz.radius"});
  testing::expect_error([&] { set_option(options, "clever.batches", "1.5"); }, {"--clever.batches"});
  testing::expect_error([&] { set_option(options, "clever.nope", "1"); }, {"clever.nope", "clever.batches"});
  testing::expect_error([&] { set_option(options, "lipschitz.targets", "top3"); make_bound("lipschitz-clever", Norm::L2, options); },
                        {"--lipschitz.targets", "top3"});
  options.lipschitz.targets = "all";
  for (const char* key : {"sampled.draws", "clever.batch_size", "local_ball.octaves", "sampled.chunk"}) {
    BoundOptions bad;
    set_option(bad, key, "0");
    testing::expect_error([&] { make_bound("lipschitz-sampled", Norm::L2, bad); }, {std::string("--") + key});
  }
  {
    BoundOptions refine;
    set_option(refine, "interval.refine", "true");
    EXPECT_NE(make_bound("local-ball-shells-interval-crown", Norm::Linf, refine)->name().find("interval.refine=true"),
              std::string::npos);
    EXPECT_EQ(make_bound("local-ball-shells-interval-crown", Norm::Linf, BoundOptions{})->name().find("interval.refine"),
              std::string::npos);
    set_option(refine, "interval.backward", "interval");
    testing::expect_error([&] { make_bound("local-ball-interval-crown", Norm::L2, refine); },
                          {"--interval.refine", "--interval.backward"});
  }
  set_option(options, "clever.batches", "64");
  EXPECT_EQ(options.clever.batches, 64);
  EXPECT_EQ(option_text(options, "clever.batches"), "64");
  EXPECT_NE(make_bound("lipschitz-clever", Norm::Linf, options)->name().find("clever.batches=64"), std::string::npos);
}

}  // namespace
}  // namespace bb
