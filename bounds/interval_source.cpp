// Certified: the interval Jacobian over the region. Pre-activation bounds
// over B_p(x, R) ∩ D (or D) from IBP or CROWN (bounds/preactivation.h) give
// an interval for every activation's derivative; the gradients of all the
// margins are then pushed backward through the layers in interval
// arithmetic (bounds/interval_jacobian.h), and the q-norm of the largest
// magnitude of each coordinate bounds ||grad g_j(z)||_q at every z of the
// region (with interval.faces, only the directions a path from the centre
// into D can take count where the centre sits on a face of D, and for
// p = inf with a room radius each direction weighs the room toward its
// face). No gradient
// evaluations: its cost is the bounds' passes.
#include <map>
#include <mutex>

#include <torch/torch.h>

#include "bounds/interval_jacobian.h"
#include "bounds/operator_norm.h"
#include "bounds/preactivation.h"
#include "bounds/sources.h"
#include "core/error.h"
#include "core/runtime.h"

namespace bb {
namespace {

// Certified sources read the layer chain: a model without one is refused.
class LayerChainSource : public GradNormSource {
 public:
  bool certified() const override { return true; }
  void check(const Model& model, Norm p, const std::string& method) const override {
    require_layers(model, method);
  }
};

class IntervalSource : public LayerChainSource {
 public:
  IntervalSource(bool crown, const IntervalOptions& options) : crown_(crown), options_(options) {}

  std::string name() const override {
    BoundOptions all;
    all.interval = options_;
    std::vector<std::string> keys = {"interval.backward", "interval.faces"};
    if (options_.refine) {
      keys.push_back("interval.refine");  // only when on: names from before it stay
    }
    return fmt::format("interval-{}({})", crown_ ? "crown" : "ibp", describe_options(all, keys));
  }

  bool weighs_room() const override { return options_.faces; }

  GradNormResult estimate(const GradNormRequest& request) const override {
    const Model& model = *request.model;
    const LayerList& layers = require_layers(model, name());
    Stopwatch watch(model.classifier.device());
    const Region& region = *request.region;
    PreActivationBounds bounds = crown_ ? crown_bounds(layers, region) : ibp_bounds(layers, region);
    GradNormResult result;
    result.value = interval_jacobian_norm(
        layers, bounds, request.c, request.targets, dual(region.norm()),
        parse_relaxation(options_.backward, "interval.backward"),
        model.classifier.spec().shape,
        options_.faces ? box_room(region.center(), region.box(), request.room_radius) : torch::Tensor(),
        options_.refine);
    result.gradients = torch::zeros({request.c.size(0)}, request.c.options().dtype(torch::kInt64));
    result.seconds = watch.seconds();
    return result;
  }

 private:
  bool crown_;
  IntervalOptions options_;
};

// Certified: the global Lipschitz constant of every g_j, a product of layer
// operator norms (bounds/operator_norm.h), the same for every region.
// Computed once per model and norm.
class OperatorNormSource : public LayerChainSource {
 public:
  std::string name() const override { return "operator-norms"; }

  GradNormResult estimate(const GradNormRequest& request) const override {
    const Model& model = *request.model;
    const LayerList& layers = require_layers(model, name());
    Stopwatch watch(model.classifier.device());
    const Norm p = request.region->norm();
    std::lock_guard<std::mutex> lock(mutex_);
    auto& table = tables_[model.sha256 + "/" + norm_name(p)];
    if (!table.defined()) {
      table = global_lipschitz(layers, model.classifier.spec().shape, p);
    }
    auto device = request.c.device();
    GradNormResult result;
    result.value = table.to(device).index({request.c.unsqueeze(1), request.targets});
    result.gradients = torch::zeros({request.c.size(0)}, request.c.options().dtype(torch::kInt64));
    result.seconds = watch.seconds();
    return result;
  }

 private:
  mutable std::mutex mutex_;
  mutable std::map<std::string, torch::Tensor> tables_;
};

}  // namespace

std::unique_ptr<GradNormSource> make_interval_source(bool crown, const IntervalOptions& options) {
  return std::make_unique<IntervalSource>(crown, options);
}

std::unique_ptr<GradNormSource> make_operator_norm_source() {
  return std::make_unique<OperatorNormSource>();
}

}  // namespace bb
