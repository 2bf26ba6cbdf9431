// The CPU row kernels behind project_ball_box, ascent_step and
// feasible_descent_norms (core/norm.h), and the tensor solvers other devices
// use, exposed for the tests and the benchmarks. Frozen: one variant per
// vector unit (SSE2, AVX2, AVX-512) and no further per-ISA work; they buy a
// few percent of a PGD step at most.
//
// The tensor path, the code a GPU runs, can run on the CPU too:
// use_row_kernel_isa("tensor"), or BB_ROW_KERNELS=tensor in the environment
// for a whole process (the ctest `tensor_path` runs the norm, attack and
// harness tests that way), so CPU-only CI exercises it.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "core/norm.h"

namespace bb::detail {

// The solvers behind project_ball_box. Each returns the offset d = y - center
// for w = z - center, box offsets l <= 0 <= u and the radius r as an [N, 1]
// column, all [N, d]. The sorted ones are tensor code for any device (no host
// read); the CPU one solves row by row (L1 or L2).
torch::Tensor project_l2_offset_sorted(
    const torch::Tensor& w, const torch::Tensor& l, const torch::Tensor& u, const torch::Tensor& r);
torch::Tensor project_l1_offset_sorted(
    const torch::Tensor& w, const torch::Tensor& l, const torch::Tensor& u, const torch::Tensor& r);
// The L1 solver takes at most `newton_passes` Newton passes before it
// finishes by median selection (the tests set 0 to check that path alone).
constexpr int kL1NewtonPasses = 24;
torch::Tensor project_offset_cpu(
    const torch::Tensor& w, const torch::Tensor& l, const torch::Tensor& u, const torch::Tensor& r,
    Norm p, int newton_passes = kL1NewtonPasses);

// The CPU kernels behind ascent_step and feasible_descent_norms.
struct AscentStepArgs {
  torch::Tensor x, z, grad;  // [N, ...] alike
  torch::Tensor radius;      // [N] or a scalar tensor
  torch::Tensor step;        // [N] or a scalar tensor
  Norm p = Norm::L2;
  Box box;
  torch::Tensor keep;  // bool [N] (rows that keep z), optional
};
torch::Tensor ascent_step_cpu(const AscentStepArgs& args);
torch::Tensor feasible_descent_norms_cpu(const torch::Tensor& grads, const torch::Tensor& z, Norm q, Box box);

// The CPU kernels come in one variant per vector unit: "avx512", "avx2" and
// "sse2" on x86-64 ("generic" elsewhere). The widest one this CPU has runs;
// use_row_kernel_isa picks another (tests and benchmarks compare them), ""
// the widest again, and "tensor" makes the CPU take the tensor path of other
// devices in project_ball_box, ascent_step and feasible_descent_norms (the
// *_cpu functions above still run the widest variant). At start-up the
// environment variable BB_ROW_KERNELS, when set, is passed to it. An
// unsupported name is a bb::Error listing the others.
std::vector<std::string> row_kernel_isas();  // this CPU's vector units, widest first
std::string row_kernel_isa();                // the one in use, or "tensor"
void use_row_kernel_isa(const std::string& name);
// Whether a tensor on this device goes through the row kernels: on the CPU,
// unless "tensor" was chosen.
bool use_row_kernels(const torch::Tensor& like);

}  // namespace bb::detail
