// Projected gradient descent (Madry et al.) on the margin loss
// max_{j != c} f_j - f_c, for p in {1, 2, inf}: steps along the steepest-ascent
// direction of the norm, exact projection onto B_p(x, eps) ∩ D. FGSM is the
// same engine with one step of size eps and no random start.
#pragma once

#include "attacks/attack.h"

namespace bb {

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
      torch::Tensor& gradients) const override;

 private:
  Pgd(Norm p, PgdOptions options, std::string family);

  PgdOptions options_;
  std::string family_;
};

}  // namespace bb
