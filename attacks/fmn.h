// FMN, the fast minimum-norm attack of Pintor et al. (2021, "Fast
// Minimum-norm Adversarial Attacks through Adaptive Norm Constraints"), for
// p in {1, 2, inf}. From x, each step ascends the margin loss
// max_{j != c} f_j - f_c along its L2-normalised gradient (the coordinates
// pinned at a face of D left out), with step alpha_k, and projects onto
// B_p(x, epsilon_k) ∩ D. The budget epsilon_k adapts every step:
//   - adversarial point: epsilon_k = min(epsilon_{k-1} (1 - gamma_k), best)
//     (best: the smallest ||delta||_p of an adversarial point so far);
//   - no adversarial point yet: the linear estimate of the boundary,
//     (||delta||_p + |loss| / ||grad||_q) (1 + gamma_k) (the paper takes the
//     estimate itself, which on a linear model puts every step exactly on
//     the boundary, a tie that never counts as adversarial);
//   - not adversarial, one found before: epsilon_{k-1} (1 + gamma_k);
// capped at the farthest point of D from x. alpha_k and gamma_k anneal from
// their initial to their final values by a cosine. The result is the
// adversarial point of smallest norm met (the last point where none was),
// clipped, re-checked and refined to the boundary by the base class. Each
// run starts from a uniform point of B_p(x, fmn.start_radius) ∩ D drawn from
// the sample's own stream (one draw per targeted run), so a sample's result
// does not depend on its batch; from x itself where the radius is 0.
// fmn.restarts R > 1 then adds R - 1 runs per target from uniform points of
// B_p(x, d) ∩ D, d the distance the first runs found (one draw per run,
// batched), and keeps the closest example. One gradient
// evaluation per step, run and sample.
#pragma once

#include "attacks/attack.h"

namespace bb {

class Fmn : public MinimalAttack {
 public:
  // Throws a bb::Error naming the option for steps < 1 or step sizes and
  // gammas that are not finite, positive and (gamma) below 1.
  Fmn(Norm p, FmnOptions options, RefineOptions refine);
  std::string name() const override;
  const FmnOptions& options() const { return options_; }

 protected:
  torch::Tensor search(
      const Classifier& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      RandomStreams& streams,
      torch::Tensor& gradients) const override;

 private:
  // One FMN run per row (against targets[i], or untargeted where targets is
  // undefined): the closest adversarial point met (the last point where
  // none was) and its distance (inf where none was found).
  struct Run {
    torch::Tensor example;
    torch::Tensor distance;
  };
  Run descend(
      const Classifier& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const torch::Tensor& targets,
      const torch::Tensor& start) const;

  FmnOptions options_;
};

// fmn.start_radius as used under norm p (a negative one: the norm's default).
double fmn_start_radius(const FmnOptions& options, Norm p);
// Checks FmnOptions: a bb::Error naming the key (--fmn.steps, ...).
void validate(const FmnOptions& options);
// The targeted runs per sample that fmn.targets asks for on a model with k
// classes: 0 (untargeted: one untargeted run), k - 1 ("all") or min(m, k - 1).
// A bad value is a bb::Error naming --fmn.targets.
int64_t fmn_targeted_runs(const std::string& targets, int64_t k);

}  // namespace bb
