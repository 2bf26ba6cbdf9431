// The gradient-norm sources (one file each) and what they share.
#pragma once

#include <memory>

#include <torch/types.h>

#include "bounds/grad_norm.h"
#include "bounds/options.h"

namespace bb {

// Estimated: the largest ||grad g_j||_q over the region's centre, uniform
// draws and (smooth activations) gradient-ascent iterates (bounds/sampled.cpp).
std::unique_ptr<GradNormSource> make_sampled_source(const SampledOptions& options);
// Estimated: CLEVER's extreme-value fit of batch maxima (bounds/clever.cpp).
std::unique_ptr<GradNormSource> make_clever_source(const CleverOptions& options);

// Certified: the interval Jacobian over IBP (crown = false) or CROWN
// pre-activation bounds (bounds/interval_source.cpp).
std::unique_ptr<GradNormSource> make_interval_source(bool crown, const IntervalOptions& options);
// Certified: the product of layer operator norms, a global Lipschitz
// constant of each g_j (bounds/interval_source.cpp).
std::unique_ptr<GradNormSource> make_operator_norm_source();

// ||grad g_j(z)||_q at points [N, P, ...] for each sample's classes targets
// [N, m]: float64 [N, P, m]. Batched over points and classes in sub-batches
// of bounded memory; P * m gradient evaluations per sample.
torch::Tensor gradient_norms(
    const Classifier& model,
    const torch::Tensor& points,
    const torch::Tensor& c,
    const torch::Tensor& targets,
    Norm q);

// Whether the model is known to be piecewise linear (a layer chain whose
// activations are all ReLU): its gradient is piecewise constant, so gradient
// ascent on its norm does not move, and sampled sources use draws only.
bool piecewise_linear(const Model& model);

// The classes j != c of every sample, in increasing order: int64 [N, k - 1].
torch::Tensor other_classes(const torch::Tensor& c, int64_t num_classes);

// The diameter of the box D in the norm p for inputs of d coordinates.
double domain_diameter(Box box, Norm p, int64_t d);

}  // namespace bb
