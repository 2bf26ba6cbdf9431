// The interval Jacobian: a certified upper bound on
//   G_j(S) = max_{z in S} ||grad g_j(z)||_q,   g_j = f_c - f_j,
// from pre-activation bounds over the region S (bounds/preactivation.h).
// This is Fast-Lip's interval propagation of the backward pass
// (bounds-anchors §1), for ReLU, Softplus and Tanh.
//
// 1. Each activation's derivative over its pre-activation interval [l, u]
//    (derivative_interval): ReLU {1} (l > 0), {0} (u < 0), else [0, 1];
//    softplus_beta' = sigmoid(beta z), increasing, so [s(beta l), s(beta u)],
//    and 1 on top where beta u >= 20 (torch's softplus is linear there);
//    tanh' = 1 / cosh^2 is even and falls with |z|: [t(u), t(l)] for l >= 0,
//    [t(l), t(u)] for u <= 0, else [t(max(-l, u)), 1]. Computed in float64
//    and widened outward by a relative 1e-12 (thousands of ulps, far above
//    the few-ulp error of sigmoid and cosh), then clipped to [0, 1].
// 2. The gradients of all m margins of every sample go backward together,
//    rows [N * m, ...], as intervals in centre/radius form starting at the
//    point e_c - e_j on the logits: Linear mid' = W^T mid, rad' = |W|^T rad;
//    Conv2d by conv_transpose2d (|K| for the radius); ChannelAffine by scale
//    (|scale|); Flatten by a reshape; an activation multiplies by its
//    derivative interval [dl, du], dl >= 0, exactly:
//    [min(lo dl, lo du), max(hi dl, hi du)] (the four-endpoint rule when the
//    second factor is non-negative).
// 3. The bound is ||max(|lo|, |hi|)||_q over the input coordinates.
//
// sign_aware adds RecurJac's merging (Zhang et al. 2019; bounds-anchors §1,
// bound_recurjac.py), which the elementwise interval product cannot express:
// interval arithmetic treats the entries of the upstream gradient as
// independent, though they are all the same function of the downstream
// derivatives. For a linear functional v . gamma_0 of the input gradient,
// walk the chain forward: a linear layer maps v exactly (v . J^T gamma =
// (J v) . gamma); at an activation, v . (s' o gamma) = sum_i v_i s'_i gamma_i
// where gamma is the upstream gradient with interval [lo, hi]. Where the sign
// of gamma_i is known (or s'_i is exact) the term is at most a_i gamma_i, with
// a_i the endpoint product v_i dl_i or v_i du_i that matches the sign, and
// those terms merge into a new functional a . gamma that goes on to the
// next layers; the others take their interval maximum as a constant. At the
// logits gamma = e_c - e_j is a point. This bounds sum_i of the merged terms
// jointly instead of each term on its own, so it is never looser than
// interval arithmetic (max of a sum <= sum of maxes), and the result is
// intersected with the plain bound anyway. The norms use it as follows,
// with [lo_k, hi_k] the plain interval of input coordinate k,
// m_k = max(|lo_k|, |hi_k|), s_k the sign of its larger side, w_k =
// min(-lo_k, hi_k) where it straddles 0 (else 0: the sign is known), K the
// coordinates of known sign and U the others:
//   q = 1:   ||gamma||_1 <= min of
//            (A) sum_U m_k + min(sum_K m_k, max (s . gamma_K)) and
//            (B) max (s . gamma) + 2 sum_k w_k, as |gamma_k| <= s_k gamma_k + 2 w_k;
//   q = 2:   the same for ||gamma||_2^2 with the weights s_k m_k, since
//            gamma_k^2 <= m_k |gamma_k| <= m_k (s_k gamma_k + 2 w_k):
//            (A) sum_U m_k^2 + min(sum_K m_k^2, max ((s m) . gamma_K)),
//            (B) max ((s m) . gamma) + 2 sum_k m_k w_k;
//   q = inf: the kTopCoordinates largest m_k are refined one by one through
//            the functionals +e_k and -e_k.
// Each functional costs one forward pass of the chain per row (two for
// q = 1 and 2, 2 * kTopCoordinates for q = inf).
//
// linear (JacobianRelaxation::Linear) replaces the constant taken for a
// sign-unknown term by a linear relaxation in gamma_i, after Shi et al.
// 2022 (bounds-anchors §2, auto_LiRPA's BoundReluGrad): with s'_i in
// [a, b] and gamma_i in [lo, hi], lo < 0 < hi,
//   max over s'_i of v_i s'_i gamma_i = v_i e gamma_i + |v_i| (b - a) relu(gamma_i),
// e = a where v_i >= 0 and b where v_i < 0, and relu(gamma) is at most its
// chord hi (gamma - lo) / (hi - lo) over [lo, hi]. The term then stays a
// function of gamma_i, merged into the functional with the coefficient
// v_i e + |v_i| (b - a) hi / (hi - lo) and the constant
// -|v_i| (b - a) hi lo / (hi - lo), so its correlation with the other terms
// through the downstream derivatives survives. Over gamma_i in [lo, hi]
// alone its maximum is the constant's, v_i b hi or v_i a lo: never looser
// (the relaxed upper bound is subadditive in v, so merging never loses).
// The norms then use the tightest linear upper bounds of |gamma_k| and
// gamma_k^2 over [lo_k, hi_k], their chords:
//   q = 1: |gamma_k| <= alpha_k gamma_k + beta_k, alpha_k = (hi + lo) / (hi - lo),
//          beta_k = -2 hi lo / (hi - lo) where lo < 0 < hi (else the sign, 0);
//   q = 2: gamma_k^2 <= (lo_k + hi_k) gamma_k - lo_k hi_k,
// so (B) becomes max (alpha . gamma) + sum beta (q = 1) and
// sqrt(max ((lo + hi) . gamma) - sum lo hi) (q = 2); (A) stays. RecurJac also re-bounds the
// intermediate layers' intervals by the same recursion, one functional per
// neuron; that is out of reach for convolutional layers and is not done, so
// the signs come from the plain pass.
//
// refine (every coordinate on its own): the norms above start from the plain
// pass's interval [lo_k, hi_k] of each input coordinate, which treats the
// entries of each upstream gradient as independent. With refine, the upper
// bounds of the functionals +e_k and -e_k (the merged forms, as for q = inf's
// top coordinates) tighten every coordinate's interval first, for every q:
// both are upper bounds over the region, so the intersection holds, and
// each norm form above only gets tighter with a narrower interval. The unit
// functionals share their walk up to the first activation (the layers'
// linear parts applied to the identity once per chunk), then go on as
// [N, m, 2d] functionals: 2d walks per margin through the layers after the
// first activation (on the MNIST MLP the 512 x 512 product dominates, and
// the CROWN shells cost about 10 times as much; see the README), too much
// for convolutional inputs of thousands of coordinates. For q = inf the bound is then the
// largest refined coordinate. RecurJac re-bounds the intermediate layers'
// intervals this way too; here only the input's are, and on an MLP with two
// hidden layers the intermediate ones are exact per coordinate already (the
// upstream gradient there has met only one layer of derivative intervals).
//
// Room toward the faces of D (the `room` argument, from box_room). Every
// formula uses the gradient norm to bound how fast g_j can fall along a path
// from the centre x inside D (g_j(x + delta) >= g_j(x) - G ||delta||_p). Such
// a path moves coordinate k down by at most x_k - lo and up by at most
// hi - x_k: none at all from a face. The bound is on the q-norm of
// h_k(gamma) = down_k relu(gamma) + up_k relu(-gamma):
//   - faces (no weight radius): down_k = 0 on the lower face, up_k = 0 on
//     the upper one, 1 elsewhere; then -gamma_k delta_k <= h_k(gamma_k)
//     |delta_k| and -gamma . delta <= ||h(gamma)||_q ||delta||_p for every p;
//   - p = inf, weight radius rho > 0: down_k = min(1, (x_k - lo) / rho),
//     up_k = min(1, (hi - x_k) / rho). For ||delta||_inf = R,
//     |delta_k| toward the lower face <= min(R, x_k - lo) <= max(R, rho) down_k,
//     so -gamma . delta <= max(R, rho) ||h(gamma)||_1: the figure counts
//     fully only for R >= rho (see bounds/local_ball_shells.cpp for how the
//     shells use it). For q != 1 only whether the room is 0 counts.
// So the bound returned is on max_z ||h(grad g_j(z))||_q, which is at most
// G_j(S). The plain bound takes the larger endpoint of h over [lo_k, hi_k];
// the merged forms use h's exact slope where the sign of gamma_k is known and
// the chord of h (q = 1) or of h^2 (q = 2, linear) over [lo_k, hi_k] where it
// straddles 0; q = inf refines max h_k with the same weights on the upper
// bounds of gamma_k and -gamma_k. On MNIST most pixels are 0 (and some 1)
// and many others within a few hundredths of a face, so this matters: see
// the README.
//
// Rounding: on the CPU, the plain backward pass runs in float32 from the
// first activation (counted from the logits) on, with every operation
// rounded outward: a product of n terms per output widens the radius by
// gamma_{n+4} |W|^T |mid| (Higham's bound for any order of summation), each
// elementwise step by 4 ulps plus 1e-36 for underflow (see
// float32_activation in interval_jacobian.cpp). The rows before it, the
// derivative intervals and the merged forms' forward passes are float64;
// there the derivative intervals are widened as above and the rounding of
// the matrix products (relative ~1e-16 per operation) is not tracked. On
// other devices everything is float64: cuDNN may use algorithms (FFT,
// Winograd, TF32) outside that rounding bound.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "bounds/preactivation.h"
#include "core/norm.h"
#include "models/layers.h"

namespace bb {

// How the backward pass is bounded (see above): plain interval arithmetic,
// RecurJac's sign-aware merging, or that merging with Shi et al.'s linear
// relaxation of the sign-unknown terms.
enum class JacobianRelaxation { Interval, SignAware, Linear };
const char* relaxation_name(JacobianRelaxation relaxation);  // "interval", "recurjac", "linear"
// From "interval", "recurjac" or "linear"; anything else is a bb::Error naming `key`.
JacobianRelaxation parse_relaxation(const std::string& text, const std::string& key);

// The coordinates refined one by one for q = inf under sign_aware.
constexpr int64_t kTopCoordinates = 4;

// [dl, du] with dl <= s'(z) <= du for every z in [lower, upper], elementwise,
// float64, 0 <= dl <= du <= 1, for an activation layer (ReLU, Softplus, Tanh).
std::pair<torch::Tensor, torch::Tensor> derivative_interval(
    const Layer& activation,
    const torch::Tensor& lower,
    const torch::Tensor& upper);

// Float64 [N, m]: an upper bound on max_{z in S_n} ||grad g_j(z)||_q for every
// sample n and class j = targets[n][i] (g_j = f_c - f_j, c = c[n]), where
// `bounds` bound every activation's input over the regions S_n. c int64 [N],
// targets int64 [N, m]. `input_shape` is one input's shape (InputSpec::shape);
// when empty it is inferred from the bounds where that is unambiguous (not
// across a strided convolution before the first activation: then a
// bb::Error asks for it). `room` (optional, [N, 2, ...input], from box_room)
// weighs each coordinate's two signs by the room a path from the centre has
// (see above). `refine` bounds every input coordinate on its own first (see
// above; needs a merged relaxation, else a bb::Error). Runs on the device of
// the layers' weights.
torch::Tensor interval_jacobian_norm(
    const LayerList& layers,
    const PreActivationBounds& bounds,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    Norm q,
    JacobianRelaxation relaxation,
    const std::vector<int64_t>& input_shape = {},
    const torch::Tensor& room = {},
    bool refine = false);

namespace detail {
// The float32 backward pass with outward rounding on the CPU (default on);
// off, float64 as on other devices. For the tests, which compare the two.
void use_float32_interval_backward(bool on);
}  // namespace detail

// Float64 [N, 2, ...input]: the room a path from center (in D) has toward
// the box's lower face ([:, 0], moving down) and upper face ([:, 1]), as a
// fraction of the radius. Without weight_radius: 0 on the face, 1 elsewhere.
// With weight_radius rho (float64 [N]): min(1, room / rho) rounded up, and
// where rho is 0 as without it.
torch::Tensor box_room(const torch::Tensor& center, Box box, const torch::Tensor& weight_radius = {});

}  // namespace bb
