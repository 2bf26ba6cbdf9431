// The bound registry: formula x gradient-norm source, by name. A method that
// is not implemented is not listed.
#include <functional>

#include "bounds/bound.h"
#include "bounds/formulas.h"
#include "bounds/sources.h"
#include "core/error.h"

namespace bb {
namespace {

using SourceFactory = std::function<std::unique_ptr<GradNormSource>(const BoundOptions&)>;
using FormulaFactory = std::function<std::unique_ptr<Bound>(
    const std::string&, Norm, std::unique_ptr<GradNormSource>, const BoundOptions&)>;

struct Entry {
  std::string name;
  FormulaFactory formula;
  SourceFactory source;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = [] {
    const std::vector<std::pair<std::string, FormulaFactory>> formulas{
        {"theorem1", make_theorem1},
        {"local-ball", make_local_ball},
        {"lipschitz", make_lipschitz},
    };
    const std::vector<std::pair<std::string, SourceFactory>> estimated{
        {"sampled", [](const BoundOptions& o) { return make_sampled_source(o.sampled); }},
        {"clever", [](const BoundOptions& o) { return make_clever_source(o.clever); }},
    };
    const std::vector<std::pair<std::string, SourceFactory>> interval{
        {"interval-ibp", [](const BoundOptions& o) { return make_interval_source(false, o.interval); }},
        {"interval-crown", [](const BoundOptions& o) { return make_interval_source(true, o.interval); }},
    };
    std::vector<Entry> all;
    for (const auto& [formula, make_formula] : formulas) {
      for (const auto& [source, make_source] : estimated) {
        all.push_back({formula + "-" + source, make_formula, make_source});
      }
    }
    // Certified: the interval Jacobian over D (Theorem 1) and over the
    // local ball; the global Lipschitz constant over D.
    for (const auto& [source, make_source] : interval) {
      all.push_back({"theorem1-" + source, make_theorem1, make_source});
      all.push_back({"local-ball-" + source, make_local_ball, make_source});
    }
    for (const auto& [source, make_source] : interval) {
      all.push_back({"local-ball-shells-" + source, make_local_ball_shells, make_source});
    }
    all.push_back({"lipschitz-global", make_theorem1, [](const BoundOptions&) { return make_operator_norm_source(); }});
    // References and closed forms that are not formula x source.
    all.push_back({"crown-radius", [](const std::string&, Norm p, std::unique_ptr<GradNormSource>,
                                      const BoundOptions& o) { return make_crown_radius(p, o); },
                   [](const BoundOptions&) { return std::unique_ptr<GradNormSource>(); }});
    all.push_back({"hein-one-layer", [](const std::string&, Norm p, std::unique_ptr<GradNormSource>,
                                        const BoundOptions&) { return make_hein_one_layer(p); },
                   [](const BoundOptions&) { return std::unique_ptr<GradNormSource>(); }});
    return all;
  }();
  return table;
}

}  // namespace

std::vector<std::string> bound_names() {
  std::vector<std::string> names;
  for (const auto& entry : entries()) {
    names.push_back(entry.name);
  }
  return names;
}

std::unique_ptr<Bound> make_bound(const std::string& name, Norm p, const BoundOptions& options) {
  validate(options);
  for (const auto& entry : entries()) {
    if (entry.name == name) {
      return entry.formula(entry.name, p, entry.source(options), options);
    }
  }
  throw Error(fmt::format("--bound: unknown bound '{}' (valid: {})", name, fmt::join(bound_names(), ", ")));
}

}  // namespace bb
