// The stronger attacks (issue 13): PGD's losses and restarts, and FMN. Exact
// answers on linear classifiers, the losses on hand-made logits, restarts
// against one start, the invariants of every result, batch independence and
// refusal of bad options.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attacks/attack.h"
#include "attacks/fmn.h"
#include "attacks/pgd.h"
#include "harness/methods.h"
#include "tests/helpers.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// f(x) = W x + b on a box large enough never to bind: rho_p(x) =
// min_j g_j(x) / ||w_c - w_j||_q.
struct Linear {
  torch::Tensor w;
  torch::Tensor b;
  Classifier model;

  static Linear make(const torch::Tensor& w, const torch::Tensor& b) {
    const int64_t k = w.size(0);
    const int64_t d = w.size(1);
    Classifier model(
        [w, b](const torch::Tensor& x) { return torch::addmm(b, x.flatten(1), w.t()); },
        InputSpec{{d}, k, Box{-50, 50}},
        torch::kCPU,
        "linear");
    return {w, b, model};
  }

  // Random rows.
  static Linear random(int64_t k, int64_t d, uint64_t seed) {
    torch::manual_seed(seed);
    return make(torch::randn({k, d}, torch::kFloat64), torch::randn({k}, torch::kFloat64) * 0.1);
  }

  // Rows all multiples of one vector a (w_j = s_j a): every loss's gradient
  // is a multiple of a, so each loss decides only the sign of the step, and
  // the nearest boundary lies along a. Class 2's bias keeps it far below the
  // others (the third logit of DLR's denominator).
  static Linear collinear(int64_t d, uint64_t seed) {
    torch::manual_seed(seed);
    auto a = torch::randn({d}, torch::kFloat64);
    auto scale = torch::tensor({1.0, -1.0, 0.2}, torch::kFloat64).view({3, 1});
    return make(scale * a, torch::tensor({0.0, 0.0, -30.0}, torch::kFloat64));
  }

  torch::Tensor exact(const torch::Tensor& x, const torch::Tensor& c, Norm p) const {
    auto g = model.margins(x, c);
    auto diff = w.index_select(0, c).unsqueeze(1) - w.unsqueeze(0);
    auto q = lp_norm(diff.reshape({-1, w.size(1)}), dual(p)).view({x.size(0), -1});
    auto ratio = g / q;
    ratio.masked_fill_(torch::arange(w.size(0)).unsqueeze(0) == c.unsqueeze(1), kInf);
    return std::get<0>(ratio.min(1));
  }
};

struct OracleCase {
  std::string attack;
  std::string loss;  // PGD's
  Norm norm;
  std::string model;  // "two": two random classes; "collinear": three collinear ones; "five": five random
};

void PrintTo(const OracleCase& r, std::ostream* os) {
  *os << r.attack << (r.loss.empty() ? "" : " loss=" + r.loss) << " " << norm_name(r.norm) << " " << r.model;
}

std::string oracle_name(const ::testing::TestParamInfo<OracleCase>& info) {
  const auto& r = info.param;
  return fmt::format("{}{}_{}_{}", r.attack, r.loss.empty() ? "" : "_" + r.loss, norm_name(r.norm), r.model);
}

class StrengthOracle : public ::testing::TestWithParam<OracleCase> {};

// After refinement to the boundary the distortion is the exact minimum (1e-4
// relative, as the other attacks' oracle tests), and never below it. PGD
// starts at x here (the budget search then bisects to the boundary); FMN has
// no random numbers.
TEST_P(StrengthOracle, ReachesTheExactMinimalDistortion) {
  const OracleCase& row = GetParam();
  const Linear linear = row.model == "collinear" ? Linear::collinear(12, 5)
      : row.model == "two"                       ? Linear::random(2, 12, 21)
                                                 : Linear::random(5, 12, 21);
  torch::manual_seed(6);
  auto x = torch::rand({16, 12}, torch::kFloat64);
  auto c = linear.model.predict(x);
  AttackOptions options;
  options.pgd.random_start = false;
  if (!row.loss.empty()) {
    options.pgd.loss = row.loss;
  }
  auto attack = make_attack(row.attack, row.norm, options);
  auto result = attack->run(linear.model, x, c);
  auto rho = linear.exact(x, c, row.norm);
  ASSERT_TRUE(result.success.all().item<bool>()) << attack->name();
  auto relative = (result.distance - rho) / rho;
  EXPECT_GE(relative.min().item<double>(), -1e-9) << attack->name() << ": below the exact minimum";
  EXPECT_LE(relative.max().item<double>(), 1e-4) << attack->name();
}

// PGD follows its loss's gradient, which on many-class models need not point
// to the nearest boundary; FMN is checked on five random classes too.
INSTANTIATE_TEST_SUITE_P(
    Attacks,
    StrengthOracle,
    ::testing::Values(
        OracleCase{"pgd", "ce", Norm::L1, "two"},
        OracleCase{"pgd", "ce", Norm::L2, "two"},
        OracleCase{"pgd", "ce", Norm::Linf, "two"},
        OracleCase{"pgd", "margin", Norm::L1, "two"},
        OracleCase{"pgd", "margin", Norm::L2, "two"},
        OracleCase{"pgd", "margin", Norm::Linf, "two"},
        OracleCase{"pgd", "dlr", Norm::L1, "two"},
        OracleCase{"pgd", "dlr", Norm::L2, "two"},
        OracleCase{"pgd", "dlr", Norm::Linf, "two"},
        OracleCase{"pgd", "ce", Norm::L1, "collinear"},
        OracleCase{"pgd", "ce", Norm::L2, "collinear"},
        OracleCase{"pgd", "ce", Norm::Linf, "collinear"},
        OracleCase{"pgd", "margin", Norm::L1, "collinear"},
        OracleCase{"pgd", "margin", Norm::L2, "collinear"},
        OracleCase{"pgd", "margin", Norm::Linf, "collinear"},
        OracleCase{"pgd", "dlr", Norm::L1, "collinear"},
        OracleCase{"pgd", "dlr", Norm::L2, "collinear"},
        OracleCase{"pgd", "dlr", Norm::Linf, "collinear"},
        OracleCase{"fmn", "", Norm::L1, "two"},
        OracleCase{"fmn", "", Norm::L2, "two"},
        OracleCase{"fmn", "", Norm::Linf, "two"},
        OracleCase{"fmn", "", Norm::L1, "collinear"},
        OracleCase{"fmn", "", Norm::L2, "collinear"},
        OracleCase{"fmn", "", Norm::Linf, "collinear"},
        OracleCase{"fmn", "", Norm::L1, "five"},
        OracleCase{"fmn", "", Norm::L2, "five"},
        OracleCase{"fmn", "", Norm::Linf, "five"}),
    oracle_name);

// The losses on hand-made logits: values by hand, and the seeded gradient
// equal to autograd through the formula.
TEST(PgdLoss, ValuesOnHandMadeLogits) {
  // Class 0 ahead: margin 2 - 3 = -1; sorted 3, 2, 1, 0: DLR -1 / (3 - 1).
  // Class 0 behind: margin 4 - 1 = 3; sorted 4, 2, 1, 0: DLR 3 / (4 - 1).
  auto logits = torch::tensor({{3.0, 1.0, 2.0, 0.0}, {1.0, 4.0, 2.0, 0.0}}, torch::kFloat64);
  auto c = torch::tensor({0, 0}, torch::kInt64);
  auto dlr = pgd_loss_value(logits, c, PgdLoss::Dlr);
  EXPECT_NEAR(dlr[0].item<double>(), -0.5, 1e-12);
  EXPECT_NEAR(dlr[1].item<double>(), 1.0, 1e-12);
  auto margin = pgd_loss_value(logits, c, PgdLoss::Margin);
  EXPECT_DOUBLE_EQ(margin[0].item<double>(), -1.0);
  EXPECT_DOUBLE_EQ(margin[1].item<double>(), 3.0);
  auto ce = pgd_loss_value(logits, c, PgdLoss::CrossEntropy);
  const double e = std::exp(1.0);
  EXPECT_NEAR(ce[0].item<double>(), std::log(e * e * e + e + e * e + 1) - 3, 1e-12);
  EXPECT_NEAR(ce[1].item<double>(), std::log(e + e * e * e * e + e * e + 1) - 1, 1e-12);
  // DLR is invariant to the logits' scale and shift; the margin is not.
  auto moved = logits * 7.0 + 3.0;
  EXPECT_TRUE(torch::allclose(pgd_loss_value(moved, c, PgdLoss::Dlr), dlr, 1e-12, 1e-12));
  // Two classes: DLR is the margin loss (its f_pi3 does not exist).
  auto two = torch::tensor({{3.0, 1.0}, {1.0, 4.0}}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(pgd_loss_value(two, c, PgdLoss::Dlr), pgd_loss_value(two, c, PgdLoss::Margin)));
}

TEST(PgdLoss, SeededGradientIsTheGradientOfTheFormula) {
  const Linear linear = Linear::random(5, 7, 3);
  torch::manual_seed(4);
  auto z = torch::randn({10, 7}, torch::kFloat64);
  auto predicted = linear.model.predict(z);
  auto c = torch::where(torch::arange(10) < 5, predicted, (predicted + 2) % 5);
  for (PgdLoss loss : {PgdLoss::CrossEntropy, PgdLoss::Margin, PgdLoss::Dlr}) {
    auto at = loss_gradient(linear.model, z, c, loss);
    // The formula written out with autograd.
    auto zg = z.clone().requires_grad_(true);
    auto f = linear.model.logits_with_grad(zg);
    auto own = f.gather(1, c.view({-1, 1})).squeeze(1);
    auto others = f.scatter(1, c.view({-1, 1}), -kInf).amax(1);
    torch::Tensor value;
    if (loss == PgdLoss::CrossEntropy) {
      value = torch::logsumexp(f, 1) - own;
    } else if (loss == PgdLoss::Margin) {
      value = others - own;
    } else {
      auto top = std::get<0>(f.topk(3, 1));
      value = (others - own) / (top.select(1, 0) - top.select(1, 2) + 1e-12);
    }
    auto expected = torch::autograd::grad({value.sum()}, {zg})[0];
    EXPECT_LE((at.grad - expected).abs().max().item<double>(), 1e-10) << pgd_loss_name(loss);
    EXPECT_LE((at.value - value.detach()).abs().max().item<double>(), 1e-12) << pgd_loss_name(loss);
    EXPECT_TRUE(torch::equal(at.misclassified, linear.model.misclassified(z, c)));
  }
}

// A 16 -> 20 -> 3 tanh network on [0, 1]^16 (float64).
Classifier small_network() {
  torch::manual_seed(2);
  auto net = torch::nn::Sequential(
      torch::nn::Flatten(), torch::nn::Linear(16, 20), torch::nn::Tanh(), torch::nn::Linear(20, 3));
  net->to(torch::kFloat64);
  return Classifier::from_module(net, InputSpec{{1, 4, 4}, 3, Box{0, 1}}, torch::kCPU, "small");
}

// Exposes PGD's perturb, to run it on streams of the test's choosing (the
// public run keys them by the full name, which prints the restarts).
class ExposedPgd : public Pgd {
 public:
  using Pgd::Pgd;
  using Pgd::perturb;
};

// Restarts keep the first run as it is (the same first start from the same
// streams) and add runs only where it failed: never fewer successes, the
// same examples where one start succeeded, and here strictly more successes.
TEST(PgdRestarts, NeverWorseThanOneStartOnTheSameStreams) {
  auto model = small_network();
  torch::manual_seed(9);
  auto x = torch::rand({40, 1, 4, 4}, torch::kFloat64);
  auto c = model.predict(x);
  const AttackContext context{17, torch::arange(40, torch::kInt64)};
  for (Norm p : all_norms()) {
    // Budgets at which restarts help on this network (three steps a run).
    const double eps = p == Norm::Linf ? 0.3 : 0.6;
    auto radius = torch::full({40}, eps, torch::kFloat64);
    for (const std::string loss : {"ce", "margin", "dlr"}) {
      SCOPED_TRACE(norm_name(p) + " " + loss);
      PgdOptions options;
      options.steps = 3;
      options.loss = loss;
      auto run = [&](int restarts, torch::Tensor& gradients) {
        options.restarts = restarts;
        auto streams = attack_streams("restarts", context, 40, x.device());
        gradients = torch::zeros({40}, torch::kInt64);
        return ExposedPgd(p, options).perturb(model, x, c, radius, streams, gradients);
      };
      torch::Tensor one_gradients;
      torch::Tensor six_gradients;
      auto one = run(1, one_gradients);
      auto six = run(6, six_gradients);
      auto one_success = model.misclassified(one, c);
      auto six_success = model.misclassified(six, c);
      EXPECT_TRUE((six_success | ~one_success).all().item<bool>());
      auto kept = per_sample(one_success, x);
      EXPECT_TRUE(torch::equal(torch::where(kept, six, x), torch::where(kept, one, x)));
      EXPECT_GT(six_success.sum().item<int64_t>(), one_success.sum().item<int64_t>());
      // Inside the ball and D.
      EXPECT_LE(lp_norm(six - x, p).max().item<double>(), eps * (1 + 1e-9));
      EXPECT_GE(six.min().item<double>(), 0.0);
      EXPECT_LE(six.max().item<double>(), 1.0);
      // Three steps per run: one run where the first succeeded, at most six.
      EXPECT_TRUE(torch::equal(one_gradients, torch::full({40}, 3, torch::kInt64)));
      EXPECT_TRUE(torch::where(one_success, six_gradients == 3, six_gradients > 3).all().item<bool>());
      EXPECT_LE(six_gradients.max().item<int64_t>(), 18);
    }
  }
}

// Every result, fixed budget or minimal distortion: inside D (and the
// budget), misclassified exactly where it claims success, at the distance it
// reports.
TEST(StrongerAttacks, ResultsAreCheckedExamplesInsideDAndTheBudget) {
  auto model = small_network();
  torch::manual_seed(11);
  auto x = torch::rand({24, 1, 4, 4}, torch::kFloat64);
  auto c = model.predict(x);
  auto check = [&](const AttackResult& r, Norm p, const std::string& name) {
    SCOPED_TRACE(name);
    EXPECT_GE(r.x_adv.min().item<double>(), 0.0);
    EXPECT_LE(r.x_adv.max().item<double>(), 1.0);
    EXPECT_TRUE(torch::equal(model.misclassified(r.x_adv, c), r.success));
    auto measured = lp_norm(r.x_adv - x, p);
    EXPECT_TRUE(torch::allclose(measured.masked_select(r.success), r.distance.masked_select(r.success)));
    EXPECT_TRUE(torch::isnan(r.distance.masked_select(~r.success)).all().item<bool>());
    EXPECT_GT(r.success.sum().item<int64_t>(), 0);
  };
  for (Norm p : all_norms()) {
    const double eps = p == Norm::Linf ? 0.08 : p == Norm::L2 ? 0.25 : 0.6;
    for (const std::string loss : {"ce", "margin", "dlr"}) {
      AttackOptions options;
      options.pgd.steps = 10;
      options.pgd.loss = loss;
      options.pgd.restarts = 3;
      options.pgd.rel_stepsize = 0.5;  // steps that leave the ball unless projected
      auto pgd = make_fixed_budget_attack("pgd", p, options);
      auto r = pgd->run(model, x, c, torch::tensor(eps, torch::kFloat64));
      check(r, p, pgd->name());
      EXPECT_LE(r.distance.masked_select(r.success).max().item<double>(), eps * (1 + 1e-9)) << pgd->name();
    }
    // Untargeted: one run of 30 steps; all targets: one per class != c (2).
    for (const auto& [targets, runs] : {std::pair<std::string, int>{"untargeted", 1}, {"all", 2}, {"1", 1}}) {
      for (int restarts : {1, 2}) {
        AttackOptions options;
        options.fmn.steps = 30;
        options.fmn.targets = targets;
        options.fmn.restarts = restarts;
        auto fmn = make_attack("fmn", p, options);
        auto r = fmn->run(model, x, c);
        check(r, p, fmn->name());
        EXPECT_TRUE(torch::equal(r.gradients, torch::full({24}, 30 * runs * restarts, torch::kInt64))) << fmn->name();
      }
    }
  }
}

// A sample's result does not depend on its batch, with restarts (whose
// starts come from the per-sample streams) and for FMN.
TEST(StrongerAttacks, ASampleGivesTheSameResultInAnyBatch) {
  auto model = small_network();
  torch::manual_seed(12);
  auto x = torch::rand({9, 1, 4, 4}, torch::kFloat64);
  auto c = model.predict(x);
  auto index = torch::arange(200, 209, torch::kInt64);
  MethodOptions options;
  options.attack.pgd.steps = 4;
  options.attack.pgd.restarts = 3;
  options.attack.pgd.loss = "dlr";
  options.attack.search.bisection_steps = 8;
  options.attack.fmn.steps = 20;
  const Model wrapped{model, "small", "0123456789abcdef", std::nullopt, "", {}};
  // FMN from x and from a random start (each sample's own stream).
  for (const std::string name : {"pgd", "fmn", "fmn+start", "fmn+restarts"}) {
    options.attack.fmn.start_radius = name == "fmn+start" ? -1 : 0;
    options.attack.fmn.restarts = name == "fmn+restarts" ? 3 : 1;
    for (Norm p : all_norms()) {
      auto method = make_method(name == "pgd" ? name : "fmn", p, options);
      auto whole = method->run(wrapped, x, c, MethodContext{5, index, {}});
      EXPECT_GT(whole.success.sum().item<int64_t>(), 0) << method->name();
      for (auto rows : {torch::tensor({3}, torch::kInt64), torch::tensor({8, 1, 5, 0}, torch::kInt64)}) {
        auto part = method->run(
            wrapped, x.index_select(0, rows), c.index_select(0, rows),
            MethodContext{5, index.index_select(0, rows), {}});
        auto expected = whole.value.index_select(0, rows);
        auto same = ((part.value - expected).abs() <= 1e-12 * expected.abs()) |
            (torch::isnan(part.value) & torch::isnan(expected));
        EXPECT_TRUE(same.all().item<bool>()) << method->name();
        EXPECT_TRUE(torch::equal(part.success, whole.success.index_select(0, rows))) << method->name();
        EXPECT_TRUE(torch::equal(part.gradients, whole.gradients.index_select(0, rows))) << method->name();
      }
    }
  }
}

// Bad options: one line naming the key, through the option table and
// through the registry alike.
TEST(StrongerAttacks, RejectBadOptionsNamingTheKey) {
  MethodOptions o;
  set_option(o, "pgd.loss", "hinge");
  testing::expect_error([&] { make_method("pgd", Norm::L2, o); }, {"--pgd.loss", "'hinge'", "ce, margin, dlr"});
  o = MethodOptions{};
  set_option(o, "pgd.restarts", "0");
  testing::expect_error([&] { make_method("pgd", Norm::L2, o); }, {"--pgd.restarts", "at least 1", "0"});
  o = MethodOptions{};
  set_option(o, "fmn.steps", "0");
  testing::expect_error([&] { make_method("fmn", Norm::Linf, o); }, {"--fmn.steps", "at least 1"});
  o = MethodOptions{};
  set_option(o, "fmn.gamma", "1.5");
  testing::expect_error([&] { make_method("fmn", Norm::L1, o); }, {"--fmn.gamma", "(0, 1)"});
  o = MethodOptions{};
  set_option(o, "fmn.alpha", "-1");
  testing::expect_error([&] { make_method("fmn", Norm::L2, o); }, {"--fmn.alpha", "positive"});
  o = MethodOptions{};
  set_option(o, "fmn.start_radius", "nan");
  testing::expect_error([&] { make_method("fmn", Norm::L2, o); }, {"--fmn.start_radius", "finite"});
  o = MethodOptions{};
  set_option(o, "fmn.restarts", "0");
  testing::expect_error([&] { make_method("fmn", Norm::L2, o); }, {"--fmn.restarts", "at least 1", "0"});
  for (const std::string bad : {"0", "-1", "some", "3x", ""}) {
    o = MethodOptions{};
    set_option(o, "fmn.targets", bad);
    testing::expect_error(
        [&] { make_method("fmn", Norm::L2, o); }, {"--fmn.targets", "untargeted, all or a number", "'" + bad + "'"});
  }
  testing::expect_error([&] { set_option(o, "fmn.steps", "few"); }, {"--fmn.steps", "an integer", "few"});
  testing::expect_error([&] { set_option(o, "fmn.step", "3"); }, {"fmn.step", "fmn.steps"});
  // The attacks' own constructors check the same.
  AttackOptions a;
  a.pgd.loss = "xent";
  testing::expect_error([&] { make_attack("pgd", Norm::Linf, a); }, {"--pgd.loss", "'xent'"});
  a = AttackOptions{};
  a.pgd.restarts = -2;
  testing::expect_error([&] { make_fixed_budget_attack("pgd", Norm::Linf, a); }, {"--pgd.restarts", "-2"});
  a = AttackOptions{};
  a.fmn.steps = 0;
  testing::expect_error([&] { make_attack("fmn", Norm::L2, a); }, {"--fmn.steps"});
  testing::expect_error([&] { make_fixed_budget_attack("fmn", Norm::L2); }, {"'fmn'", "not a fixed-budget attack"});
}

// The names print every key (the harness's keys, in the names' spelling).
TEST(StrongerAttacks, NamesPrintEveryKey) {
  MethodOptions o;
  set_option(o, "pgd.loss", "dlr");
  set_option(o, "pgd.restarts", "5");
  set_option(o, "fmn.steps", "50");
  set_option(o, "fmn.alpha", "2");
  set_option(o, "fmn.alpha_final", "0.02");
  set_option(o, "fmn.gamma", "0.1");
  set_option(o, "fmn.gamma_final", "0.002");
  set_option(o, "fmn.targets", "3");
  set_option(o, "fmn.restarts", "2");
  EXPECT_EQ(option_text(o, "pgd.loss"), "dlr");
  EXPECT_EQ(option_text(o, "fmn.gamma"), "0.1");
  const std::string pgd = make_method("pgd", Norm::L2, o)->name();
  EXPECT_NE(pgd.find("loss=dlr,restarts=5"), std::string::npos) << pgd;
  const std::string fmn = make_method("fmn", Norm::L1, o)->name();
  EXPECT_EQ(fmn, "fmn-L1(steps=50,alpha=2,alpha_final=0.02,gamma=0.1,gamma_final=0.002,targets=3,start=0,restarts=2)+refine(steps=20)");
}

}  // namespace
}  // namespace bb
