// Bounds on every pre-activation of a layer chain over a region: the input
// of each activation layer (ReLU, Softplus, Tanh) lies in [lower, upper]
// elementwise for every point of B_p(x, R) ∩ D (or of D itself). The
// certified gradient-norm sources turn them into derivative intervals; the
// CROWN radius and the exact MILP use them too.
#pragma once

#include <utility>
#include <vector>

#include <torch/types.h>

#include "core/region.h"
#include "models/layers.h"

namespace bb {

struct PreActivationBounds {
  // One entry per activation layer of the chain, in order: its index in the
  // layer list and the bounds on its input, float64 [N, ...] (that layer's
  // input shape per sample).
  std::vector<int64_t> layer;
  std::vector<torch::Tensor> lower;
  std::vector<torch::Tensor> upper;
};

// Interval bound propagation: the interval hull of the region
// [max(x - R, lo), min(x + R, hi)] pushed through each layer in interval
// (centre/radius) arithmetic, float64. Weights are converted to float64 on
// the centre's device.
PreActivationBounds ibp_bounds(const LayerList& layers, const Region& region);

// CROWN (Zhang et al. 2018): for each activation layer in order, every
// neuron of its input is bounded by linear bounds propagated back to the
// input through the layers before it, each earlier activation replaced by
// its linear relaxation over the bounds already found (ReLU: CROWN-adaptive;
// softplus: tangent below, chord above; tanh: tangent/chord by convexity,
// the tangent through (l, tanh l) across 0), and minimised over the region
// exactly: the hull's corner for D and Linf, and for L1 and L2 the minimum
// over the ball ∩ box through its Lagrangian dual (never looser than the
// better of the hull and the dual-norm bound <a, x> - R ||a||_q).
// Intersected with IBP restarted from each tightened layer, so the result
// lies inside ibp_bounds'. For ReLU only the neurons still unstable are
// bounded by CROWN: a stable ReLU is relaxed exactly (identity or zero)
// whatever its bounds, so theirs stay IBP's. Rows go back in chunks of at
// most 32 MB of backward matrix (peak ~256 MB). float64.
PreActivationBounds crown_bounds(const LayerList& layers, const Region& region);

// CROWN lower bounds on the margins g_j = f_c - f_j over the region, for the
// predicted classes c (int64 [N]) and the classes `targets` (int64 [N, m]):
// float64 [N, m], from the rows e_c - e_j of the last layer, all targets
// together. Uses `bounds` (from crown_bounds on the same region) for the
// activations' relaxations. A target equal to c gives 0.
torch::Tensor crown_margin_lower(
    const LayerList& layers,
    const Region& region,
    const PreActivationBounds& bounds,
    const torch::Tensor& c,
    const torch::Tensor& targets);

namespace detail {
// One layer of interval arithmetic: the interval [lower, upper] of the
// layer's input (float64 [N, ...]) mapped to an interval that holds the
// layer's output for every input in it. Affine layers in centre/radius form
// (W mid + b, |W| rad); activations, which are monotone, map the endpoints.
// Shared by ibp_bounds and by CROWN, which restarts IBP from each layer it
// has tightened.
std::pair<torch::Tensor, torch::Tensor> interval_forward(
    const Layer& layer, const torch::Tensor& lower, const torch::Tensor& upper);
// CROWN's two innermost steps (an activation's backward step, the hull's
// minimum of a row) run as fused row loops on the CPU; off, the tensor code
// that other devices run. For the tests, which compare the two.
void use_fused_crown_kernels(bool on);
}  // namespace detail

}  // namespace bb
