// Turns a fixed-budget attack into a minimal-distortion one: per sample,
// double epsilon from a norm-specific start until the attack succeeds (up to
// the diameter of D), then bisect between the largest failing and the
// smallest succeeding budget, keeping the closest example seen at any budget
// (success need not be monotone in epsilon).
#pragma once

#include <memory>

#include "attacks/attack.h"

namespace bb {

// The norm's first budget: Linf 0.03, L2 0.5, L1 5 (pixel scale [0, 1]).
double default_initial_epsilon(Norm p);

class BudgetSearch : public MinimalAttack {
 public:
  BudgetSearch(std::unique_ptr<FixedBudgetAttack> attack, SearchOptions search, RefineOptions refine);
  std::string name() const override;

 protected:
  torch::Tensor search(
      const Classifier& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      RandomStreams& streams,
      torch::Tensor& gradients) const override;

 private:
  std::unique_ptr<FixedBudgetAttack> attack_;
  SearchOptions options_;
};

}  // namespace bb
