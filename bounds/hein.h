// Hein & Andriushchenko's closed form (2017, Proposition 2.1; bounds-anchors
// §3) for one-hidden-layer networks with a smooth activation:
//   f_r(x) = sum_l u_rl s(<w_l, x> + b_l) + d_r,
// recognised as the chain [ChannelAffine | Flatten]*, Linear, Softplus or
// Tanh, Linear. The leading channel affine maps are folded into W (and b):
// they are diagonal, x -> scale o x + shift.
//
// For g = f_c - f_j, du = u_c - u_j, z(y) = W y + b and h = y - x:
//   grad g(y) = W^T (s'(z(y)) o du),
//   grad g(y) - grad g(x) = sum_l du_l (s'(z_l(y)) - s'(z_l(x))) w_l,
// and |s'(z_l(y)) - s'(z_l(x))| <= rho |<w_l, h>| with rho = sup |s''|
// (softplus_beta: beta / 4; tanh: 4 / (3 sqrt 3), at tanh^2 = 1/3). Hence
// ||grad g(y)||_q <= a + b ||h||_p with a = ||grad g(x)||_q and:
//  - p = 2: for a unit v, <grad g(y) - grad g(x), v>
//      <= rho sum_l |du_l| |<w_l, h>| |<w_l, v>|
//      <= rho sqrt(h^T M h) sqrt(v^T M v)       (Cauchy-Schwarz, weights |du_l|)
//      <= rho lambda_max(M) ||h||_2,   M = W^T diag(|du|) W;
//    b = rho lambda_max(M), computed as the largest eigenvalue of the smaller
//    of M and D^1/2 W W^T D^1/2 (D = diag(|du|); same non-zero spectrum).
//  - p = inf (q = 1) and p = 1 (q = inf): by the triangle inequality and
//    Hoelder |<w_l, h>| <= ||w_l||_q ||h||_p,
//      ||grad g(y) - grad g(x)||_q <= rho sum_l |du_l| |<w_l, h>| ||w_l||_q
//                                  <= rho sum_l |du_l| ||w_l||_q^2 ||h||_p;
//    b = rho sum_l |du_l| ||w_l||_q^2.
// These are the anchors' formulas; the derivation confirms them for all
// three norms. (For q = inf a tighter b = rho max_i sum_l |du_l| |W_li|
// ||w_l||_inf also holds; it is not used.)
//
// Torch's softplus is linear above beta z > 20, so its derivative jumps from
// sigmoid(20) to 1 there: |s'(z) - s'(z')| <= rho |z - z'| + J with
// J = 1 - sigmoid(20) ~ 2.1e-9. For softplus networks `a` therefore carries
// J sum_l |du_l| ||w_l||_q on top of ||grad g(x)||_q (the function value also
// jumps by ~2.1e-9 / beta there, below float32 resolution; not counted).
//
// Over B_p(x, R) the gradient norm is at most a + bR, so g stays positive
// while R < g / (a + bR); the crossing is
//   R* = (-a + sqrt(a^2 + 4 b g)) / (2 b) = 2 g / (a + sqrt(a^2 + 4 b g)),
// the second form without cancellation, which gives g / a at b = 0. The
// local-ball bound is min_j R*_j.
#pragma once

#include <torch/types.h>

#include "core/norm.h"
#include "models/layers.h"

namespace bb {

struct HeinTerms {
  torch::Tensor g;       // float64 [N, m]: the margins g_j(x), in float64
  torch::Tensor a;       // float64 [N, m]: ||grad g_j(x)||_q (softplus: + the threshold jump term)
  torch::Tensor b;       // float64 [N, m]: the curvature term
  torch::Tensor radius;  // float64 [N, m]: R*_j; 0 where g_j <= 0, +inf where g_j > 0 = a = b
};

// Whether the chain is [ChannelAffine | Flatten]*, Linear, Softplus or Tanh,
// Linear.
bool is_one_hidden_layer_smooth(const LayerList& layers);

// The terms for x [N, ...] (one input's shape), c int64 [N] and targets int64
// [N, m]. A chain of another form is a bb::Error that names its layers. In
// float64 on the weights' device.
HeinTerms hein_terms(
    const LayerList& layers,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    Norm p);

}  // namespace bb
