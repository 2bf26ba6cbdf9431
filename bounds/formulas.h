// The formulas (one file each) and what they share. Each takes any
// gradient-norm source; the registry (bounds/registry.cpp) pairs them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

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

// A formula over a gradient-norm source: certification and the model check
// are the source's; estimate() asks it about a region.
class SourcedBound : public Bound {
 public:
  bool certified() const override { return source_->certified(); }
  void check(const Model& model) const override { source_->check(model, norm(), label_); }

 protected:
  SourcedBound(std::string label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options)
      : Bound(p), label_(std::move(label)), source_(std::move(source)), options_(options) {}
  // "label-L2(keys)+source": the formula's option keys, then the source's name.
  std::string describe(const std::vector<std::string>& keys) const;
  GradNormResult estimate(
      const Model& model,
      const Region& region,
      const torch::Tensor& c,
      const torch::Tensor& targets,
      RandomStreams* random,
      const torch::Tensor& starts = {},
      const torch::Tensor& room_radius = {}) const;

  std::string label_;
  std::unique_ptr<GradNormSource> source_;
  BoundOptions options_;
};

// What the radius searches start from: every class j != c, its margin g_j(x)
// and ||grad g_j(x)||_q (m gradient evaluations), and the linearised
// distance R0 = min_j g_j / ||grad g_j(x)||_q, capped at the diameter of D and
// positive (the diameter where it would be 0 or undefined).
struct Linearised {
  torch::Tensor targets;  // int64 [N, m]
  torch::Tensor g;        // float64 [N, m]
  torch::Tensor slope;    // float64 [N, m]
  torch::Tensor r0;       // float64 [N]
};
Linearised linearise(const Classifier& model, const torch::Tensor& x, const torch::Tensor& c, Norm p);

// The radius search of the local-ball formulas: tries R0, then bisects on
// log R between R0 2^-octaves and R0, every sample taking the same steps
// (so its random draws depend only on its own stream). feasible(R) says, per
// sample, whether R is shown (the crossing lies above it).
void search_log_radius(
    const torch::Tensor& r0,
    int octaves,
    int steps,
    const std::function<torch::Tensor(const torch::Tensor&)>& feasible);

// The best bound a radius search has met: per sample its value, class,
// gradient-norm figure and radius; offer() keeps the larger values.
struct BestSoFar {
  BoundResult result;
  void offer(const torch::Tensor& value, const torch::Tensor& target, const torch::Tensor& grad_norm,
             const torch::Tensor& radius);
};

// min over the classes of g_j / G_j (a ratio with G_j = 0 counts as +inf, and
// g_j <= 0 gives 0): value [N], the minimising class of `targets`, and G_j there.
struct MinRatio {
  torch::Tensor value;
  torch::Tensor target;
  torch::Tensor grad_norm;
};
MinRatio min_ratio(const torch::Tensor& g, const torch::Tensor& grad_norm, const torch::Tensor& targets);

// The shell integral (bounds/local_ball_shells.cpp) over bounds G [N, L, m]
// on ||grad g_j|| over the balls B_p(x, r_l) ∩ D, radii [N, L] (> 0, any
// order), margins g [N, m]: the largest R* <= max_l r_l with
// g_j - int_0^R* min_{r_l >= t} G_j(r_l) dt >= 0 for every j (0 where some
// g_j <= 0), the class index (into m) that limits it, the bound in force
// there, and the first grid radius where some class's budget is spent (the
// largest radius if none is).
struct ShellIntegral {
  torch::Tensor radius;     // float64 [N]
  torch::Tensor index;      // int64 [N]
  torch::Tensor grad_norm;  // float64 [N]
  torch::Tensor exhausted;  // float64 [N]
};
ShellIntegral shell_integral(const torch::Tensor& radii, const torch::Tensor& grad_norm, const torch::Tensor& g);

// The margins g_j(x) = f_c(x) - f_j(x) of the classes `targets`: float64 [N, m].
torch::Tensor target_margins(const Classifier& model, const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& targets);

}  // namespace bb
