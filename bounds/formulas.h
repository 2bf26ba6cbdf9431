// The formulas (one file each) and what they share. Each takes any
// gradient-norm source; the registry (bounds/registry.cpp) pairs them.
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "bounds/bound.h"
#include "bounds/grad_norm.h"
#include "bounds/options.h"

namespace bb {

// `label` is the registry name ("local-ball-sampled"); the bound's name()
// adds the norm, the formula's options and the source's name.
std::unique_ptr<Bound> make_theorem1(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options);
std::unique_ptr<Bound> make_local_ball(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options);
std::unique_ptr<Bound> make_local_ball_shells(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options);
std::unique_ptr<Bound> make_lipschitz(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options);

// The CROWN certified radius (bounds/crown_radius.cpp) and Hein's closed
// form for one-hidden-layer smooth networks (bounds/hein_local.cpp).
std::unique_ptr<Bound> make_crown_radius(Norm p, const BoundOptions& options);
std::unique_ptr<Bound> make_hein_one_layer(Norm p);

// min over the classes of g_j / G_j (a ratio with G_j = 0 counts as +inf, and
// g_j <= 0 gives 0): value [N], the minimising class of `targets`, and G_j there.
struct MinRatio {
  torch::Tensor value;
  torch::Tensor target;
  torch::Tensor grad_norm;
};
MinRatio min_ratio(const torch::Tensor& g, const torch::Tensor& grad_norm, const torch::Tensor& targets);

// The margins g_j(x) = f_c(x) - f_j(x) of the classes `targets`: float64 [N, m].
torch::Tensor target_margins(const Classifier& model, const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& targets);

}  // namespace bb
