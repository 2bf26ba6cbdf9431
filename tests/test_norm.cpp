// The norm policy: Hölder's equality for the steepest direction, exactness of
// the ball ∩ box projection against brute force, and the distribution of
// uniform samples in l_p balls.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/norm.h"
#include "core/row_kernels.h"
#include "tests/helpers.h"

namespace bb {
namespace {

class NormTest : public ::testing::TestWithParam<Norm> {};

std::string norm_param_name(const ::testing::TestParamInfo<Norm>& info) {
  return norm_name(info.param);
}

TEST(NormNames, ParseDualAndReject) {
  EXPECT_EQ(parse_norm("1"), Norm::L1);
  EXPECT_EQ(parse_norm("L2"), Norm::L2);
  EXPECT_EQ(parse_norm("inf"), Norm::Linf);
  EXPECT_EQ(parse_norm("linf"), Norm::Linf);
  EXPECT_EQ(dual(Norm::L1), Norm::Linf);
  EXPECT_EQ(dual(Norm::L2), Norm::L2);
  EXPECT_EQ(dual(Norm::Linf), Norm::L1);
  testing::expect_error([] { parse_norm("3", "--norm"); }, {"--norm", "'3'", "1, 2, inf"});
  testing::expect_error([] { parse_norm("", "norms[2]"); }, {"norms[2]"});
}

TEST_P(NormTest, LpNormMatchesDefinition) {
  auto v = torch::tensor({{3.0, -4.0, 0.0}, {0.0, 0.0, -2.0}}, torch::kFloat64);
  auto n = lp_norm(v, GetParam());
  const std::vector<std::vector<double>> expected{
      {7.0, 2.0}, {5.0, 2.0}, {4.0, 2.0}};
  EXPECT_DOUBLE_EQ(n[0].item<double>(), expected[static_cast<int>(GetParam())][0]);
  EXPECT_DOUBLE_EQ(n[1].item<double>(), expected[static_cast<int>(GetParam())][1]);
}

TEST_P(NormTest, SteepestDirectionReachesHoelderEquality) {
  const Norm p = GetParam();
  torch::manual_seed(1);
  auto g = torch::randn({6, 3, 4, 4}, torch::kFloat64);
  g[2].zero_();  // a zero gradient gives the zero direction
  auto v = steepest_direction(g, p);
  ASSERT_EQ(v.sizes(), g.sizes());
  auto inner = (g * v).reshape({6, -1}).sum(1);
  auto dual_norm = lp_norm(g, dual(p));
  EXPECT_TRUE(torch::allclose(inner, dual_norm, 1e-12, 1e-12));
  auto length = lp_norm(v, p);
  for (int64_t n = 0; n < 6; ++n) {
    EXPECT_NEAR(length[n].item<double>(), n == 2 ? 0.0 : 1.0, 1e-12) << "sample " << n;
  }
  // No other unit vector does better than v: random unit directions and small
  // perturbations of v itself stay below <g, v>. (Compared with the dual
  // norm instead, they would stay below by Hoelder's inequality whatever v
  // is.) The best candidate's gain over a direction d at sample n:
  auto gain_over = [&](const torch::Tensor& d, int64_t n) {
    auto candidates = torch::cat(
        {torch::randn({200, 3, 4, 4}, torch::kFloat64),
         d.unsqueeze(0) + 1e-3 * torch::randn({200, 3, 4, 4}, torch::kFloat64)});
    candidates = candidates / lp_norm(candidates, p).view({400, 1, 1, 1});
    auto their_inner = (candidates * g[n].unsqueeze(0)).reshape({400, -1}).sum(1);
    return their_inner.max().item<double>() - (g[n] * d).sum().item<double>();
  };
  for (int64_t n : {0, 3, 5}) {
    EXPECT_LE(gain_over(v[n], n), 1e-12) << "sample " << n;
  }
  // The comparison can fail: another norm's steepest direction, scaled to a
  // unit vector of this norm, is beaten.
  auto other = steepest_direction(g, p == Norm::L2 ? Norm::Linf : Norm::L2);
  other = other / lp_norm(other, p).clamp_min(1e-300).view({6, 1, 1, 1});
  EXPECT_GT(gain_over(other[0], 0), 1e-6);
}

// Brute force: the closest feasible point of a dense grid over the box.
double grid_best_distance(
    const torch::Tensor& center,
    const torch::Tensor& z,
    double radius,
    Norm p,
    int64_t per_axis) {
  const int64_t d = center.numel();
  auto axis = torch::linspace(0, 1, per_axis, torch::kFloat64);
  std::vector<torch::Tensor> axes(d, axis);
  auto mesh = torch::meshgrid(axes, "ij");
  std::vector<torch::Tensor> columns;
  for (auto& m : mesh) {
    columns.push_back(m.reshape({-1}));
  }
  auto points = torch::stack(columns, 1);  // [G, d]
  auto feasible = lp_norm(points - center.view({1, d}), p) <= radius;
  auto distance = (points - z.view({1, d})).norm(2, {1});
  return distance.masked_select(feasible).min().item<double>();
}

TEST_P(NormTest, ProjectionIsFeasibleIdempotentAndOptimal) {
  const Norm p = GetParam();
  torch::manual_seed(7);
  const Box box{0.0, 1.0};
  for (int64_t d : {2, 3}) {
    const int64_t cases = d == 2 ? 24 : 6;
    const int64_t per_axis = d == 2 ? 401 : 81;
    auto center = torch::rand({cases, d}, torch::kFloat64);
    auto z = torch::rand({cases, d}, torch::kFloat64) * 2.4 - 0.7;  // often outside the box
    auto radius = torch::rand({cases}, torch::kFloat64) * 0.6 + 0.05;
    auto y = project_ball_box(center, z, radius, p, box);
    auto again = project_ball_box(center, y, radius, p, box);
    EXPECT_TRUE(torch::allclose(y, again, 1e-9, 1e-9)) << "not idempotent, d=" << d;
    auto inside_box = ((y >= 0) & (y <= 1)).all().item<bool>();
    EXPECT_TRUE(inside_box);
    auto distance = lp_norm(y - center, p);
    EXPECT_TRUE((distance <= radius * (1 + 1e-9) + 1e-12).all().item<bool>());
    const double spacing = 1.0 / static_cast<double>(per_axis - 1);
    for (int64_t n = 0; n < cases; ++n) {
      const double mine = (y[n] - z[n]).norm().item<double>();
      const double best = grid_best_distance(center[n], z[n], radius[n].item<double>(), p, per_axis);
      EXPECT_LE(mine, best + 1e-9) << "a grid point beats the projection, d=" << d << " case " << n;
      EXPECT_GE(mine, best - std::sqrt(static_cast<double>(d)) * spacing)
          << "projection closer than any feasible grid point?";
    }
  }
}

TEST_P(NormTest, ProjectionWithInfiniteRadiusClipsToBox) {
  auto center = torch::full({2, 4}, 0.5, torch::kFloat32);
  auto z = torch::tensor({{-1.0, 0.3, 2.0, 0.9}, {0.1, 0.2, 0.3, 1.5}}, torch::kFloat32);
  auto radius = torch::full({2}, std::numeric_limits<double>::infinity());
  auto y = project_ball_box(center, z, radius, GetParam(), Box{0, 1});
  EXPECT_TRUE(torch::equal(y, z.clamp(0, 1)));
  EXPECT_EQ(y.scalar_type(), torch::kFloat32);
}

TEST(NormProjection, ExactWhereBallThenClipIsNot) {
  // Center at the box corner's edge: projecting onto the L2 ball and then
  // clipping to the box is feasible but not the nearest point.
  auto center = torch::tensor({{0.9, 0.5}}, torch::kFloat64);
  auto z = torch::tensor({{2.0, 1.5}}, torch::kFloat64);
  auto radius = torch::tensor({0.5}, torch::kFloat64);
  auto y = project_ball_box(center, z, radius, Norm::L2, Box{0, 1});
  // The exact answer: x1 is clipped at 1, and x2 takes the rest of the radius.
  const double x2 = 0.5 + std::sqrt(0.25 - 0.01);
  EXPECT_NEAR(y[0][0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(y[0][1].item<double>(), x2, 1e-12);
  auto naive = (center + (z - center) * 0.5 / (z - center).norm()).clamp(0, 1);
  EXPECT_LT((y - z).norm().item<double>(), (naive - z).norm().item<double>() - 1e-3);
}

// Puts back the row-kernel choice it found (the widest variant, or "tensor"
// where BB_ROW_KERNELS=tensor runs these tests: the ctest tensor_path).
struct RestoreRowKernels {
  std::string saved = detail::row_kernel_isa();
  ~RestoreRowKernels() {
    detail::use_row_kernel_isa("");
    detail::use_row_kernel_isa(saved);
  }
};

// The CPU row kernels come in one variant per vector unit; body runs once
// with each variant this CPU has, and the choice found is restored after.
template <typename F>
void for_each_row_kernel_isa(F body) {
  RestoreRowKernels restore;
  for (const auto& isa : detail::row_kernel_isas()) {
    SCOPED_TRACE("row kernels: " + isa);
    detail::use_row_kernel_isa(isa);
    body();
  }
}

TEST(RowKernels, EveryCpuHasTheBaselineAndUnknownVariantsAreRefused) {
  RestoreRowKernels restore;
  detail::use_row_kernel_isa("");
  const auto isas = detail::row_kernel_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_TRUE(isas.back() == "sse2" || isas.back() == "generic");
  EXPECT_EQ(detail::row_kernel_isa(), isas.front());
  detail::use_row_kernel_isa(isas.back());
  EXPECT_EQ(detail::row_kernel_isa(), isas.back());
  try {
    detail::use_row_kernel_isa("avx9000");
    ADD_FAILURE() << "an unknown variant was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("avx9000"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(isas.back()), std::string::npos) << e.what();
  }
  EXPECT_EQ(detail::row_kernel_isa(), isas.back());
  detail::use_row_kernel_isa("");
  EXPECT_EQ(detail::row_kernel_isa(), isas.front());
}

// Image-like cases: pixels at 0 and 1 (which saturate at once), steps of all
// sizes, and radii from tiny to large, so that the CPU's L2 solver needs
// several rounds, some rows fit in the ball as they are, and the others end
// on its surface.
struct HighDimensionCase {
  torch::Tensor w, l, u, r;
  static HighDimensionCase make(double radius_low, double radius_high) {
    torch::manual_seed(5);
    const int64_t n = 64;
    const int64_t d = 784;
    auto x = torch::rand({n, d}, torch::kFloat64);
    x = torch::where(x < 0.3, torch::zeros_like(x), torch::where(x > 0.9, torch::ones_like(x), x));
    auto w = torch::randn({n, d}, torch::kFloat64) * torch::rand({n, 1}, torch::kFloat64) * 0.5;
    auto r = torch::logspace(radius_low, radius_high, n, 10, torch::kFloat64).view({n, 1});
    return {w, -x, 1 - x, r};
  }
};

// Linf has one closed form on every device; L1 and L2 have two solvers each.
class SolverTest : public ::testing::TestWithParam<Norm> {};

TEST_P(SolverTest, CpuAndTensorSolversAgreeInHighDimension) {
  for_each_row_kernel_isa([&] {
    const Norm p = GetParam();
    const auto c = p == Norm::L2 ? HighDimensionCase::make(-3, 1.5) : HighDimensionCase::make(-2, 2.5);
    auto sorted = p == Norm::L2 ? detail::project_l2_offset_sorted(c.w, c.l, c.u, c.r)
                                : detail::project_l1_offset_sorted(c.w, c.l, c.u, c.r);
    auto cpu = detail::project_offset_cpu(c.w, c.l, c.u, c.r, p);
    EXPECT_LE((sorted - cpu).abs().max().item<double>(), 1e-12);
    // Inside the ball up to the rounding of a sum of 784 terms (the same
    // tolerance as the brute-force test above).
    auto length = lp_norm(cpu, p).view({-1, 1});
    EXPECT_TRUE((length <= c.r * (1 + 1e-9)).all().item<bool>());
    EXPECT_TRUE(((cpu >= c.l) & (cpu <= c.u)).all().item<bool>());
    auto fits = lp_norm(torch::min(torch::max(c.w, c.l), c.u), p).view({-1, 1}) <= c.r;
    EXPECT_TRUE(fits.any().item<bool>() && (~fits).any().item<bool>());
    auto on_sphere = ((length - c.r).abs() <= 1e-9 * c.r) | fits;
    EXPECT_TRUE(on_sphere.all().item<bool>());
    // float32 inputs: the same answer within float rounding.
    auto single = detail::project_offset_cpu(
        c.w.to(torch::kFloat32), c.l.to(torch::kFloat32), c.u.to(torch::kFloat32), c.r.to(torch::kFloat32), p);
    EXPECT_EQ(single.scalar_type(), torch::kFloat32);
    EXPECT_LE((single.to(torch::kFloat64) - cpu).abs().max().item<double>(), 1e-5);
  });
}

// The L1 solver's fallback, median selection over the kinks, is exact on
// its own and wherever Newton hands over to it.
TEST(L1Solver, MedianSelectionAgreesAfterAnyNumberOfNewtonPasses) {
  for_each_row_kernel_isa([&] {
    const auto c = HighDimensionCase::make(-2, 2.5);
    auto sorted = detail::project_l1_offset_sorted(c.w, c.l, c.u, c.r);
    for (int passes : {0, 1, 2, 3, detail::kL1NewtonPasses}) {
      auto cpu = detail::project_offset_cpu(c.w, c.l, c.u, c.r, Norm::L1, passes);
      EXPECT_LE((cpu - sorted).abs().max().item<double>(), 1e-12) << passes << " Newton passes";
    }
  });
}

// Image-like rows with pixels on both faces of the box, gradients with
// zeros, per-sample radii and steps, and rows that keep their point. 63
// coordinates, so the kernels' vector loops have a remainder.
struct StepCase {
  torch::Tensor x, z, grad, radius, step, keep;
  static StepCase make(Norm p) {
    torch::manual_seed(3);
    const int64_t n = 40;
    auto x = torch::rand({n, 1, 7, 9}, torch::kFloat64);
    x = torch::where(x < 0.25, torch::zeros_like(x), torch::where(x > 0.85, torch::ones_like(x), x));
    const double scale = p == Norm::Linf ? 0.1 : p == Norm::L2 ? 1.0 : 5.0;
    auto radius = (torch::rand({n}, torch::kFloat64) + 0.1) * scale;
    auto start = x + torch::randn_like(x) * radius.view({n, 1, 1, 1}) * (p == Norm::L1 ? 0.2 : 0.5);
    auto z = project_ball_box(x, start, radius, p, Box{0, 1});
    auto grad = torch::randn_like(x) * (torch::rand_like(x) > 0.2);
    grad[5].zero_();
    auto step = radius * 0.3;
    auto keep = torch::rand({n}, torch::kFloat64) < 0.25;
    return {x, z, grad, radius, step, keep};
  }
};

// project_ball_box onto [0, 1] with the device-independent tensor solvers
// (the CPU path of project_ball_box shares its row solvers with the kernel).
torch::Tensor sorted_projection(const torch::Tensor& x, const torch::Tensor& z, const torch::Tensor& radius, Norm p) {
  if (p == Norm::Linf) {
    return project_ball_box(x, z, radius, p, Box{0, 1});
  }
  const int64_t n = x.size(0);
  auto x0 = x.reshape({n, -1});
  auto zf = z.reshape({n, -1});
  auto r = radius.to(x.options()).view({n, 1});
  auto w = zf - x0;
  auto offset = p == Norm::L2 ? detail::project_l2_offset_sorted(w, -x0, 1 - x0, r)
                              : detail::project_l1_offset_sorted(w, -x0, 1 - x0, r);
  return torch::where(offset == w, zf, x0 + offset).clamp(0, 1).view_as(z);
}

TEST_P(NormTest, FusedAscentStepMatchesTheTensorComposition) {
  for_each_row_kernel_isa([&] {
    const Norm p = GetParam();
    const Box box{0, 1};
    const auto c = StepCase::make(p);
    for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
      auto x = c.x.to(dtype);
      auto z = c.z.to(dtype);
      auto grad = c.grad.to(dtype);
      auto step = c.step.to(dtype);
      auto fused = ascent_step(x, z, grad, c.radius, step, p, box, c.keep);
      ASSERT_EQ(fused.scalar_type(), dtype);
      ASSERT_EQ(fused.sizes(), z.sizes());
      auto moved = z + per_sample(step, z) * steepest_direction(feasible_ascent(grad, z, box), p);
      auto expected = torch::where(per_sample(c.keep, z), z, sorted_projection(x, moved, c.radius, p));
      const double tolerance = dtype == torch::kFloat64 ? 1e-12 : 1e-6;
      EXPECT_LE((fused - expected).abs().max().item<double>(), tolerance) << c10::toString(dtype);
      EXPECT_TRUE(torch::equal(fused.index({c.keep}), z.index({c.keep})));
      if (p == Norm::Linf) {
        // A clamp of z + step sign(g): the same float operations, the same bits.
        EXPECT_TRUE(torch::equal(fused, expected)) << c10::toString(dtype);
      }
      // Moved rows: inside the box and the ball, and somewhere new.
      EXPECT_TRUE(((fused >= 0) & (fused <= 1)).all().item<bool>());
      auto length = lp_norm((fused - x).to(torch::kFloat64), p);
      EXPECT_TRUE((length <= c.radius * (1 + 1e-5)).all().item<bool>());
      auto moved_rows = (fused != z).reshape({z.size(0), -1}).any(1);
      EXPECT_TRUE(torch::equal(moved_rows.index({c.keep}), torch::zeros({c.keep.sum().item<int64_t>()}, torch::kBool)));
      EXPECT_GT(moved_rows.sum().item<int64_t>(), z.size(0) / 2);
    }
  });
}

TEST_P(NormTest, FeasibleDescentNormsMatchTheMaskedNorms) {
  for_each_row_kernel_isa([&] {
    const Norm q = GetParam();
    const Box box{0, 1};
    const auto c = StepCase::make(Norm::L2);
    const int64_t n = c.z.size(0);
    const int64_t m = 3;
    // The layout of Classifier::margin_gradients: [m, N, ...] transposed.
    auto grads = torch::randn({m, n, 1, 7, 9}, torch::kFloat64).transpose(0, 1);
    grads.select(1, 1)[2].zero_();
    for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
      auto g = grads.to(dtype);
      auto z = c.z.to(dtype);
      auto fused = feasible_descent_norms(g, z, q, box);
      ASSERT_EQ(fused.sizes(), (std::vector<int64_t>{n, m}));
      auto expected = lp_norm(feasible_descent(g, z.unsqueeze(1), box).reshape({n * m, -1}), q).view({n, m});
      const double tolerance = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
      EXPECT_TRUE(torch::allclose(fused, expected, tolerance, tolerance)) << c10::toString(dtype);
      EXPECT_EQ(fused[2][1].item<double>(), 0.0);
    }
  });
}

// "tensor" sends the CPU down the tensor path of other devices (the code a
// GPU runs): ascent_step, project_ball_box and feasible_descent_norms then
// agree with the row kernels to float64 rounding, and "" brings the kernels back.
TEST_P(NormTest, TheTensorChoiceRunsTheTensorPathOnTheCpu) {
  RestoreRowKernels restore;
  const Norm p = GetParam();
  const Box box{0, 1};
  const auto c = StepCase::make(p);
  auto far = c.x + torch::randn_like(c.x);  // mostly outside the ball and the box
  auto grads = torch::randn({c.z.size(0), 3, 1, 7, 9}, torch::kFloat64);
  auto run = [&] {
    return std::vector<torch::Tensor>{
        ascent_step(c.x, c.z, c.grad, c.radius, c.step, p, box, c.keep),
        project_ball_box(c.x, far, c.radius, p, box),
        feasible_descent_norms(grads, c.z, dual(p), box)};
  };
  detail::use_row_kernel_isa("");
  const std::string widest = detail::row_kernel_isa();
  ASSERT_TRUE(detail::use_row_kernels(c.z));
  const auto kernels = run();
  detail::use_row_kernel_isa("tensor");
  EXPECT_EQ(detail::row_kernel_isa(), "tensor");
  EXPECT_FALSE(detail::use_row_kernels(c.z));
  const auto tensors = run();
  for (size_t i = 0; i < kernels.size(); ++i) {
    EXPECT_LE((kernels[i] - tensors[i]).abs().max().item<double>(), 1e-12) << "output " << i;
  }
  // The tensor path's step is the composition of tensor operations itself.
  auto moved = c.z + per_sample(c.step, c.z) * steepest_direction(feasible_ascent(c.grad, c.z, box), p);
  auto composed = torch::where(per_sample(c.keep, c.z), c.z, project_ball_box(c.x, moved, c.radius, p, box));
  EXPECT_TRUE(torch::equal(tensors[0], composed));
  detail::use_row_kernel_isa("");
  EXPECT_EQ(detail::row_kernel_isa(), widest);
  EXPECT_TRUE(detail::use_row_kernels(c.z));
}

// Kolmogorov-Smirnov statistic of samples against the uniform law on [0, 1].
double ks_uniform(torch::Tensor u) {
  u = std::get<0>(u.flatten().to(torch::kFloat64).sort());
  const int64_t n = u.numel();
  auto rank = torch::arange(1, n + 1, torch::kFloat64) / n;
  auto below = torch::arange(0, n, torch::kFloat64) / n;
  return std::max((rank - u).max().item<double>(), (u - below).max().item<double>());
}

TEST_P(NormTest, SamplesAreUniformInTheBall) {
  const Norm p = GetParam();
  torch::manual_seed(11);
  const int64_t d = 5;
  const int64_t draws = 4000;
  auto center = torch::tensor({{0.2, -0.1, 0.4, 0.0, 1.0}}, torch::kFloat64).view({1, d});
  const double radius = 2.0;
  auto points = sample_ball(center, torch::tensor({radius}, torch::kFloat64), p, draws);
  ASSERT_EQ(points.sizes(), (std::vector<int64_t>{1, draws, d}));
  auto offset = (points[0] - center).view({draws, d});
  auto r = lp_norm(offset, p) / radius;
  EXPECT_LE(r.max().item<double>(), 1.0 + 1e-12) << "a sample left the ball";
  // Critical value of the KS statistic at level 0.01.
  const double critical = 1.63 / std::sqrt(static_cast<double>(draws));
  if (p == Norm::Linf) {
    // Each coordinate uniform on [-R, R].
    EXPECT_LT(ks_uniform((offset.select(1, 0) / radius + 1) / 2), critical);
    EXPECT_LT(ks_uniform((offset.select(1, 4) / radius + 1) / 2), critical);
  } else {
    // The radius of a uniform point in a d-ball has P(r <= t R) = t^d.
    EXPECT_LT(ks_uniform(r.pow(d)), critical);
  }
  if (p == Norm::L1) {
    // One coordinate of a uniform point in the L1 ball: |y_1| / R ~ Beta(1, d),
    // with CDF 1 - (1 - t)^d.
    auto t = offset.select(1, 0).abs() / radius;
    EXPECT_LT(ks_uniform(1 - (1 - t).pow(d)), critical);
    // Signs balanced.
    EXPECT_NEAR((offset > 0).to(torch::kFloat64).mean().item<double>(), 0.5, 0.02);
  }
}

INSTANTIATE_TEST_SUITE_P(L1AndL2, SolverTest, ::testing::Values(Norm::L1, Norm::L2), norm_param_name);

INSTANTIATE_TEST_SUITE_P(
    Norms,
    NormTest,
    ::testing::Values(Norm::L1, Norm::L2, Norm::Linf),
    norm_param_name);

}  // namespace
}  // namespace bb
