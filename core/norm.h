// The l_p norm policy: everything in which L1, L2 and Linf differ lives here,
// so that attacks and bounds are written once for all three norms.
//
// All tensor functions are batched: the first dimension is the batch, every
// other dimension is flattened into one vector per sample. They run on the
// device of their arguments and never synchronise with the host.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

namespace bb {

class RandomStreams;

enum class Norm { L1, L2, Linf };

// The input domain D = [lo, hi]^d (pixel space: [0, 1]).
struct Box {
  double lo = 0.0;
  double hi = 1.0;
};

// Accepts "1", "2", "inf" and "l1", "l2", "linf" (any case). Anything else is
// a bb::Error that names `what` (the option or field) and lists the valid names.
Norm parse_norm(const std::string& text, const std::string& what = "--norm");
// "L1", "L2", "Linf": used in method names and result rows.
std::string norm_name(Norm p);
// The dual norm q with 1/p + 1/q = 1.
Norm dual(Norm p);
std::vector<Norm> all_norms();

// ||v_n||_p for each sample n: shape [N].
torch::Tensor lp_norm(const torch::Tensor& v, Norm p);

// v of shape [N] viewed as [N, 1, ..., 1] to broadcast against `like` [N, ...].
torch::Tensor per_sample(const torch::Tensor& v, const torch::Tensor& like);

// The steepest-ascent direction: for each sample a v with ||v||_p = 1 that
// maximises <g, v>, so that <g, v> = ||g||_q (Hölder's equality). Zero where
// g is zero. L1: the signed unit vector at the largest-magnitude coordinate;
// L2: g / ||g||_2; Linf: sign(g).
torch::Tensor steepest_direction(const torch::Tensor& g, Norm p);

// The Euclidean projection of z onto B_p(center, radius) ∩ box, exact for all
// three norms. Linf is one clamp. L1 and L2 on the CPU: row kernels (L2 by a
// growing saturated set, two or three passes on images; L1 by Newton steps on
// its piecewise linear threshold equation, finished by median selection if
// needed); on other devices: tensor code in closed form after one sort, with
// no host read. `radius` has shape
// [N] (or is a scalar tensor), may be +inf (then the region is the box), and
// `center` must lie in the box. Computed in z's precision (float64 or float32).
torch::Tensor project_ball_box(
    const torch::Tensor& center,
    const torch::Tensor& z,
    const torch::Tensor& radius,
    Norm p,
    Box box);

// The gradient with the coordinates zeroed along which z cannot move in the
// ascent direction because it sits on the box's face there, so that the
// steepest direction spends its budget on coordinates that can move. z
// broadcasts against grad (DeepFool passes [N, 1, ...] for gradients [N, m, ...]).
torch::Tensor feasible_ascent(const torch::Tensor& grad, const torch::Tensor& z, Box box);
// The same for descent (moving along -grad): -feasible_ascent(-grad, z, box).
torch::Tensor feasible_descent(const torch::Tensor& grad, const torch::Tensor& z, Box box);

// One projected steepest-ascent step for every sample:
//   project_ball_box(x, z + step * steepest_direction(feasible_ascent(grad, z, box), p), radius, p, box)
// with `radius` and `step` of shape [N] (or scalars); rows where `keep`
// (bool [N], optional) is true keep z as it is. On the CPU one fused row
// kernel does it in a few passes over each row; elsewhere it is that
// composition of tensor operations. Both agree to float rounding.
torch::Tensor ascent_step(
    const torch::Tensor& x,
    const torch::Tensor& z,
    const torch::Tensor& grad,
    const torch::Tensor& radius,
    const torch::Tensor& step,
    Norm p,
    Box box,
    const torch::Tensor& keep = {});

// ||feasible_descent(grads[:, j], z, box)||_q for every sample and row j:
// grads [N, m, ...], z [N, ...], result [N, m]. On the CPU one pass over the
// gradients, without materialising the masked copy.
torch::Tensor feasible_descent_norms(const torch::Tensor& grads, const torch::Tensor& z, Norm q, Box box);

// The row kernels behind these (CPU) and the tensor solvers (other devices):
// core/row_kernels.h.

// `draws` points uniformly distributed in B_p(center, radius) for each sample,
// shape [N, draws, ...]. Linf: uniform in the cube; L2: Gaussian direction and
// radius R * U^(1/d); L1: exact (normalised exponential spacings with random
// signs), no rejection. `radius` must be finite. Uses torch's global generator.
torch::Tensor sample_ball(
    const torch::Tensor& center,
    const torch::Tensor& radius,
    Norm p,
    int64_t draws);
// The same with each sample's numbers from its own stream (core/random.h),
// so that a sample's draws do not depend on the batch; computed in center's
// dtype on its device.
torch::Tensor sample_ball(
    const torch::Tensor& center,
    const torch::Tensor& radius,
    Norm p,
    int64_t draws,
    RandomStreams& streams);

}  // namespace bb
