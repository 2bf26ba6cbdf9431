// The exact minimal distortion of a small ReLU network, by mixed-integer
// linear programming (COIN-OR CBC): the ground truth that certified bounds
// (below it) and attacks (above it) must straddle, for p = inf and p = 1.
//
//   rho_p(x) = min ||delta||_p  s.t.  x + delta in D,
//                                     f_j(x + delta) >= f_c(x + delta) for some j != c
//
// The network must be a chain of affine layers (ChannelAffine, Linear,
// Conv2d, Flatten: consecutive ones are composed into one dense float64 map)
// and ReLUs. Per sample:
//  1. an incumbent: the registry's minimal-distortion attacks (milp.incumbent,
//     default deepfool, pgd and fmn, with the attack options), on the same random
//     streams as the harness's own attack records. Its distortion U bounds
//     rho from above, so the minimiser lies in the ball B_p(x, R) ∩ D with
//     R = U (1 + 1e-6) (D itself when every attack failed);
//  2. pre-activation bounds over that ball (milp.preactivation: crown or ibp,
//     bounds/preactivation.h): a ReLU whose input is known to be >= 0 or <= 0
//     there is linear; each other one gets a binary and the big-M encoding
//     with its bounds [l, u] (a >= z, a <= z - l (1 - b), a <= u b, a >= 0);
//  3. one MILP per class j != c, skipping the classes whose margin
//     f_c - f_j the bounds prove positive on the ball; classes in order of
//     promise (the attack's class first), each with the cutoff of the best
//     value found so far, so that a class that cannot beat it ends at once.
//     delta = R (u - v) with u, v >= 0 inside the ball's box; Linf minimises
//     t with u_i, v_i <= t, L1 minimises sum(u + v) with sum(u + v) <= 1:
//     columns and objective in units of R, and CBC's allowable gaps, cutoff
//     increment, integer and primal tolerances set to 1e-9 (CbcModel's own
//     defaults for the increment and gaps are about 1e-5, its driver's
//     integer and primal tolerances 1e-7; with all five at 1e-4 the float64
//     checks of tests/test_exact_milp.cpp fail).
//     CBC's primal heuristics and preprocessing are off: the cutoff does the
//     heuristics' work, and on these small dense models both cost more than
//     they save (about half the time on the zoo's 784-32-32-10 MLP, Linf).
//     With milp.lp_bounds, each unstable ReLU's bounds are first tightened by
//     LP (CLP) over the relaxation of the layers before it, and a class is
//     also skipped when the LP relaxation proves its margin positive: sound
//     (the LP values are widened by 1e-6 relative) but rarely worth its cost
//     on the zoo's small MLP (1 ReLU stabilised over 3 samples), so off by
//     default;
//  4. the minimiser re-checked in float64 through the layer chain: its
//     distance equals the objective and f_j >= f_c there, both to 1e-6
//     (relative to the distance; absolute on the logits, relative to their
//     scale). A solution that fails it is not used (recheck "failed").
//
// Time: per sample, milp.time_limit seconds of wall clock for its MILPs (the
// batch's incumbent attacks and bounds, and the CROWN radius below, come on
// top) over its classes in two passes: the first gives each class at most an equal share of half
// the limit (what one leaves goes to the next), the second shares what is
// left among the classes still open, each re-solved with the best cutoff.
//
// Proven: every class not skipped ended within the time limit, optimal or
// unable to beat the cutoff, and the best value comes from a re-checked
// point. Otherwise the result is a bracket: lower (the smallest of the
// classes' best possible objectives, the cutoffs of those that could not beat
// them, 0 for a class the time limit left unexamined; then raised to CROWN's
// certified radius where that is larger) and upper (the best re-checked
// point or the incumbent attack's distortion).
//
// Ties: the optimum lies on the decision boundary f_j = f_c, where the
// minimiser is a tie (attacks count strict misclassification only, see
// attacks/attack.h). The value is the infimum of the distortions of strictly
// misclassified points (the minimum over the closure of that set), equal to
// it unless f_j - f_c touches 0 from below without crossing (a degenerate
// case, where the value is still <= rho_p).
//
// L2 would need a quadratic objective, which CBC lacks: refused.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "attacks/attack.h"
#include "bounds/options.h"
#include "core/norm.h"
#include "models/model.h"

namespace bb {

struct MilpOptions {
  double time_limit = 60;               // seconds of MILP per sample (all its classes), wall clock
  std::string preactivation = "crown";  // bounds over the ball for the big-M constants: crown or ibp
  std::string incumbent = "deepfool+pgd+fmn";  // attacks for the ball's radius, '+'-separated ("none": D itself)
  int threads = 1;                      // CBC threads (> 1: CBC's deterministic parallel mode)
  int max_relus = 256;                  // larger networks are refused (the MILP is for small ones)
  bool lp_bounds = false;               // tighten unstable ReLUs' bounds (and exclude classes) by LP
};

// The milp.* keys (milp.time_limit, ...), and their checks.
std::vector<OptionField> option_fields(MilpOptions& options);
void validate(const MilpOptions& options);

struct ExactResult {
  torch::Tensor value;      // float64 [N]: the proven minimum; NaN where not proven (or no example exists)
  torch::Tensor proven;     // bool [N]
  torch::Tensor lower;      // float64 [N]: lower end of the bracket (= value when proven; inf: none in D)
  torch::Tensor upper;      // float64 [N]: upper end (inf where no adversarial point is known)
  torch::Tensor target;     // int64 [N]: the class of the best point (-1: none)
  torch::Tensor x_adv;      // [N, ...] the best re-checked point (x where none), the model's dtype
  torch::Tensor gradients;  // int64 [N]: gradient evaluations of the incumbent attacks
  std::vector<nlohmann::json> details;  // per sample: seconds, nodes, classes, re-check figures
  double seconds = 0;       // wall time of the batch
};

class ExactMilp {
 public:
  ExactMilp(Norm p, const MilpOptions& options, const AttackOptions& attack);
  // "exact-milp-Linf(milp.time_limit=60,milp.preactivation=crown,...)".
  std::string name() const;
  Norm norm() const { return norm_; }
  // A bb::Error for L2 (no quadratic objective in CBC), a model without a
  // layer chain, layers other than affine ones and ReLU (all named), and a
  // network with more than milp.max_relus ReLUs.
  void check(const Model& model) const;
  // Validates the inputs (shape, inside D), then solves every sample.
  ExactResult run(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const AttackContext& context = {}) const;

 private:
  Norm norm_;
  MilpOptions options_;
  AttackOptions attack_;
};

}  // namespace bb
