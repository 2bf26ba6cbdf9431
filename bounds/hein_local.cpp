// Hein & Andriushchenko's closed form for one-hidden-layer networks with a
// smooth activation: ||grad g_j(y)||_q <= a_j + b_j ||y - x||_p
// (bounds/hein.h), so min(g_j / (a_j + b_j R), R) is largest at
// R*_j = (-a + sqrt(a^2 + 4 b g)) / (2b), and min_j R*_j is certified.
// Refused for any other network.
#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/hein.h"
#include "bounds/sources.h"
#include "core/error.h"

namespace bb {
namespace {

class HeinOneLayer : public Bound {
 public:
  explicit HeinOneLayer(Norm p) : Bound(p) {}

  std::string name() const override { return fmt::format("hein-one-layer-{}", norm_name(norm())); }
  bool certified() const override { return true; }
  void check(const Model& model) const override {
    const LayerList& layers = require_layers(model, "hein-one-layer");
    std::vector<std::string> found;
    for (const auto& layer : layers) {
      found.push_back(layer.describe());
    }
    BB_CHECK(
        is_one_hidden_layer_smooth(layers),
        "hein-one-layer: model {} is not a one-hidden-layer network with a smooth activation "
        "(Linear, Softplus or Tanh, Linear): its layers are {}",
        model.source,
        fmt::join(found, ", "));
  }

 protected:
  BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const override {
    auto targets = other_classes(c, model.classifier.num_classes());
    HeinTerms terms = hein_terms(*model.layers, x, c, targets, norm());
    auto [value, at] = terms.radius.min(1);
    BoundResult result;
    result.value = value;
    result.target = targets.gather(1, at.unsqueeze(1)).squeeze(1);
    auto column = at.unsqueeze(1);
    result.grad_norm = (terms.a + terms.b * terms.radius).gather(1, column).squeeze(1);
    result.radius = value;
    result.gradients = torch::full({x.size(0)}, targets.size(1), c.options().dtype(torch::kInt64));
    (void)context;
    return result;
  }
};

}  // namespace

std::unique_ptr<Bound> make_hein_one_layer(Norm p) {
  return std::make_unique<HeinOneLayer>(p);
}

}  // namespace bb
