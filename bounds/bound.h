// Lower bounds on the minimal adversarial distortion rho_p(x): a formula
// (Theorem 1, local ball, Lipschitz, ...) applied to a gradient-norm source
// (bounds/grad_norm.h). A bound is certified when its source is: never above
// rho_p(x). An estimated bound may exceed rho_p(x); that is reported, never
// hidden. The base class validates, times and counts; a formula implements
// compute(). Registry by name: bounds/registry.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "bounds/grad_norm.h"
#include "bounds/options.h"
#include "core/norm.h"
#include "models/model.h"

namespace bb {

// What every run of a bound is told besides the inputs.
struct BoundContext {
  uint64_t seed = 0;
  // int64 [N]: each sample's index in its data set. With the seed and the
  // method's name it keys the sample's random stream, so a sample's result
  // does not depend on the batch it runs in.
  torch::Tensor index;
  // Optional points in D (training images, [P, ...]) where sampled searches
  // over the whole domain also start (Theorem 1).
  torch::Tensor starts;
};

struct BoundResult {
  torch::Tensor value;      // float64 [N]: the bound (estimate when not certified)
  torch::Tensor target;     // int64 [N]: the class j that gives the minimum
  torch::Tensor grad_norm;  // float64 [N]: the gradient-norm figure used for that j
  torch::Tensor radius;     // float64 [N]: R (the local ball's R*, CLEVER's cap); NaN where none
  torch::Tensor gradients;  // int64 [N]: gradient evaluations per sample
  torch::Tensor fit_rejected;  // bool [N]: CLEVER's fit rejected for that j (else undefined)
  bool certified = false;
  double seconds = 0;       // wall time for the batch (device synchronised)
};

class Bound {
 public:
  virtual ~Bound() = default;
  // "local-ball-sampled-L2(local_ball.bisection_steps=16,sampled.draws=256,...)":
  // every hyper-parameter with the keys of its options (bounds/options.h).
  virtual std::string name() const = 0;
  virtual bool certified() const = 0;
  Norm norm() const { return norm_; }
  // Throws a bb::Error when the bound cannot serve `model` (a certified bound
  // on a model without a layer chain names every unsupported operation).
  virtual void check(const Model& model) const {}

  // Validates the inputs (shape, inside D, one index per sample), then
  // computes. c: the predicted classes, int64 [N].
  BoundResult run(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const;

 protected:
  explicit Bound(Norm p) : norm_(p) {}
  virtual BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const = 0;

 private:
  Norm norm_;
};

// The registry: `boundbench bound`, the harness, the benchmarks and the tests
// all make bounds here. An unknown name is a bb::Error listing every valid
// one; a norm the bound does not support is a bb::Error naming it.
std::vector<std::string> bound_names();
std::unique_ptr<Bound> make_bound(const std::string& name, Norm p, const BoundOptions& options = {});

}  // namespace bb
