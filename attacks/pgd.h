// Projected gradient descent (Madry et al.) on the margin loss
// max_{j != c} f_j - f_c, for p in {1, 2, inf}: steps along the steepest-ascent
// direction of the norm, exact projection onto B_p(x, eps) ∩ D. FGSM is the
// same engine with one step of size eps and no random start.
#pragma once

#include "attacks/attack.h"

namespace bb {

// The input gradient of PGD's margin loss max_{j != c} f_j(z) - f_c(z), taken
// through the maximising class j* (one of them, on a tie), and whether each
// sample is misclassified (the loss is > 0).
struct MarginLossGradient {
  torch::Tensor grad;           // like z
  torch::Tensor misclassified;  // bool [N]
};
MarginLossGradient margin_loss_gradient(const Classifier& model, const torch::Tensor& z, const torch::Tensor& c);

class Pgd : public FixedBudgetAttack {
 public:
  Pgd(Norm p, PgdOptions options);
  // One step of size epsilon from x, no random start (Goodfellow et al.).
  static Pgd fgsm(Norm p);
  std::string name() const override;
  const PgdOptions& options() const { return options_; }

 protected:
  torch::Tensor perturb(
      const Classifier& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const torch::Tensor& epsilon,
      RandomStreams& streams,
      torch::Tensor& gradients) const override;

 private:
  Pgd(Norm p, PgdOptions options, std::string family);

  PgdOptions options_;
  std::string family_;
};

}  // namespace bb
