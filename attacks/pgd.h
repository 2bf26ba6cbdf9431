// Projected gradient descent (Madry et al.) for p in {1, 2, inf}: steps along
// the steepest-ascent direction of the norm on a loss of the logits, exact
// projection onto B_p(x, eps) ∩ D, optionally restarted from fresh random
// points. FGSM is the same engine with one step of size eps on the margin
// loss and no random start.
//
// The losses (untargeted, c the class predicted at the clean input), each
// > 0 exactly where some class beats c, except cross-entropy:
//   ce      cross-entropy  log sum_j exp f_j - f_c
//   margin  max_{j != c} f_j - f_c
//   dlr     the difference-of-logits ratio of Croce & Hein (2020),
//           (max_{j != c} f_j - f_c) / (f_pi1 - f_pi3 + 1e-12), pi the
//           classes sorted by decreasing logit: the margin made invariant to
//           the logits' scale. It needs three classes; on models with fewer
//           PGD ascends the margin loss instead (with two classes the ratio
//           is the sign of the margin, whose gradient vanishes).
#pragma once

#include <string>
#include <vector>

#include "attacks/attack.h"

namespace bb {

enum class PgdLoss { CrossEntropy, Margin, Dlr };

// "ce", "margin", "dlr"; anything else is a bb::Error naming `what` and listing them.
PgdLoss parse_pgd_loss(const std::string& text, const std::string& what = "--pgd.loss");
std::string pgd_loss_name(PgdLoss loss);
std::vector<std::string> pgd_loss_names();

// The loss value per sample [N] from logits [N, k] (float64 for DLR's tests;
// any floating type). DLR on fewer than 3 classes is the margin loss.
torch::Tensor pgd_loss_value(const torch::Tensor& logits, const torch::Tensor& c, PgdLoss loss);

// The input gradient of a loss at z, with the loss itself and whether each
// sample is misclassified (some class strictly above c). The gradient is that
// of the logits seeded with d loss / d logits (the margin's through the
// maximising class j*, one of them on a tie), so the loss needs no graph.
struct LossGradient {
  torch::Tensor grad;           // like z
  torch::Tensor value;          // [N], in the logits' type
  torch::Tensor misclassified;  // bool [N]
};
LossGradient loss_gradient(const Classifier& model, const torch::Tensor& z, const torch::Tensor& c, PgdLoss loss);

// The margin loss's gradient (PGD's loss before it took options; the step
// kernel benchmark and FMN use it).
using MarginLossGradient = LossGradient;
MarginLossGradient margin_loss_gradient(const Classifier& model, const torch::Tensor& z, const torch::Tensor& c);
// The margin against one class t per sample (int64 [N], t != c): f_t - f_c,
// its gradient w_t - w_c seeded the same way, and misclassification by any
// class (FMN's targeted runs).
LossGradient target_margin_gradient(
    const Classifier& model,
    const torch::Tensor& z,
    const torch::Tensor& c,
    const torch::Tensor& t);

class Pgd : public FixedBudgetAttack {
 public:
  // Throws a bb::Error naming the option for steps < 1, restarts < 1 or an
  // unknown loss.
  Pgd(Norm p, PgdOptions options);
  // One step of size epsilon from x on the margin loss, no random start
  // (Goodfellow et al.).
  static Pgd fgsm(Norm p);
  std::string name() const override;
  const PgdOptions& options() const { return options_; }
  PgdLoss loss() const { return loss_; }

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
  // One run of options_.steps steps from z0; rows that turn misclassified
  // stay where they are from then on.
  torch::Tensor ascend(
      const Classifier& model,
      const torch::Tensor& x,
      const torch::Tensor& z0,
      const torch::Tensor& c,
      const torch::Tensor& radius,
      const torch::Tensor& step,
      PgdLoss loss) const;

  PgdOptions options_;
  PgdLoss loss_;
  std::string family_;
};

}  // namespace bb
