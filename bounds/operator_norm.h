// A certified global Lipschitz constant of every margin g_j = f_c - f_j: the
// product of layer operator norms. For a chain f = A_K o s_{K-1} o ... o A_1
// (affine maps A, activations s acting elementwise),
//   grad g_j(z) = J_1^T D_1 J_2^T ... D_{K-1} (w_c - w_j),
// with J the linear parts and D = diag(s'), so for every z
//   ||grad g_j(z)||_q <= ||w_c - w_j||_q * prod ||J^T||_{q->q} * prod max|s'|,
// and ||J^T||_{q->q} = ||J||_{p->p} (1/p + 1/q = 1). The bound holds on the
// whole input space, hence on every region: Theorem 1 and the local ball
// read it as a (loose) certified gradient-norm source.
//
// Per layer (layer_operator_norm):
//  - Linear, p = inf / 1: the largest absolute row / column sum of W, exact;
//    p = 2: the largest singular value by an SVD in float64, times 1 + 1e-9.
//  - Conv2d, p = inf / 1: the largest absolute row / column sum of the
//    convolution's matrix on the actual input shape (strides and zero
//    padding included), exact: |K| convolved with (transposed onto) a tensor
//    of ones. p = 2: a proven upper bound. The zero-padded convolution on an
//    H x W input is a restriction of the circular convolution on an
//    (H + kh - 1) x (W + kw - 1) grid (larger when the padding is wider than
//    the kernel), and a stride only drops output rows; the circular one is
//    block diagonal in the Fourier basis, so its norm is the largest
//    singular value over the c_out x c_in matrices of the kernel's 2-D DFT at
//    every frequency (Sedghi et al. 2019; bounds-anchors §4): rfft2 of the
//    zero-padded kernel, batched svdvals in float64, times 1 + 1e-9.
//  - ChannelAffine: max |scale|, exact for every p. Flatten: 1.
//  - ReLU, Softplus, Tanh: max |s'| = 1.
// Every sum of n terms is widened by n ulps of 1.0 (the worst-case rounding
// of a float64 sum of non-negative terms); the 1e-9 of an SVD covers its
// backward error (about max(m, n) ulps of the largest singular value).
// Power iteration is never used: it estimates the norm from below.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "core/norm.h"
#include "models/layers.h"

namespace bb {

// The input shape of every layer of the chain, one sample (no batch
// dimension), and the output shape last: layers.size() + 1 entries. Found by
// running a zero input of `input_shape` through the chain; a shape the chain
// cannot take is a bb::Error naming the layer.
std::vector<std::vector<int64_t>> layer_input_shapes(
    const LayerList& layers,
    const std::vector<int64_t>& input_shape);

struct LayerNormBound {
  double value = 0;
  // What was computed: "max |row sum| (exact)", "circular FFT bound, grid
  // 34x34", ...
  std::string method;
};

// An upper bound on ||J||_{p->p} of the layer's linear part (max |s'| for an
// activation) on inputs of `input_shape` (one sample, no batch dimension).
LayerNormBound layer_operator_norm(
    const Layer& layer,
    const std::vector<int64_t>& input_shape,
    Norm p);

// L[c][j] >= sup_z ||grad g_j(z)||_q for g_j = f_c - f_j: float64 [k, k] on
// the weights' device, 0 on the diagonal. The chain must end with a Linear
// layer (its rows w are the classes). `input_shape` is one input's shape
// (InputSpec::shape). `report`, when given, receives one line per layer: the
// layer, the bound used and its value.
torch::Tensor global_lipschitz(
    const LayerList& layers,
    const std::vector<int64_t>& input_shape,
    Norm p,
    std::vector<std::string>* report = nullptr);

}  // namespace bb
