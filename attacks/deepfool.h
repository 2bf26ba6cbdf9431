// DeepFool (Moosavi-Dezfooli et al.): repeatedly step to the nearest
// boundary of the classifier linearised at the current point. Under norm p
// the step to the hyperplane g_j + <w_j, delta> = 0 is
// -(g_j / ||w_j||_q) * v, v the steepest-ascent unit vector of w_j, so the
// variants differ only through the norm policy (L1 takes the dual Linf step).
// The gradients of all candidate classes come from one batched backward.
#pragma once

#include "attacks/attack.h"

namespace bb {

class DeepFool : public MinimalAttack {
 public:
  DeepFool(Norm p, DeepFoolOptions options, RefineOptions refine);
  std::string name() const override;

 protected:
  torch::Tensor search(
      const Classifier& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      RandomStreams& streams,
      torch::Tensor& gradients) const override;

 private:
  DeepFoolOptions options_;
};

}  // namespace bb
