// Every method the harness runs, attacks and bounds alike, behind one
// interface and one registry, with one table of option keys. An attack's
// value is the distortion it reached (an upper bound on rho_p(x)); a bound's
// value is its lower bound. The command line, the configuration files and the
// benchmarks set options through the keys below ("pgd.steps",
// "clever.batches", ...), the same keys each method's name prints.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "attacks/attack.h"
#include "bounds/bound.h"
#include "bounds/exact_milp.h"
#include "bounds/options.h"
#include "core/norm.h"
#include "models/model.h"

namespace bb {

struct MethodOptions {
  AttackOptions attack;
  BoundOptions bound;
  MilpOptions milp;  // exact-milp (bounds/exact_milp.h)
};

// Attack keys (pgd.*, deepfool.*, fmn.*, search.*, refine.*), then the bound keys of
// bounds/options.h, then the exact MILP's (milp.*).
std::vector<OptionField> option_fields(MethodOptions& options);
// An unknown key lists every valid one; a bad value names the key.
void set_option(MethodOptions& options, const std::string& key, const std::string& text);
std::string option_text(const MethodOptions& options, const std::string& key);
void validate(const MethodOptions& options);

// Exact: the exact minimal distortion (exact-milp), a value only where proven.
enum class MethodKind { Attack, Bound, Exact };
const char* kind_name(MethodKind kind);  // "attack", "bound", "exact"

// One batch of one method.
struct MethodBatch {
  torch::Tensor value;      // float64 [N] on the CPU: distortion (NaN where it failed), bound, or exact minimum
  torch::Tensor success;    // bool [N]: attack succeeded / bound finite / exact minimum proven
  torch::Tensor gradients;  // int64 [N]
  double seconds = 0;       // wall time of the batch (device synchronised)
  std::vector<nlohmann::json> extra;  // per sample: fields only this kind has (bounds: target, radius, ...)
};

// What a batch is run with besides the inputs.
struct MethodContext {
  uint64_t seed = 0;
  torch::Tensor index;   // int64 [N]: each sample's index in its data set (keys its random stream)
  torch::Tensor starts;  // training images for searches over D (Theorem 1's sampled source)
};

class Method {
 public:
  virtual ~Method() = default;
  const std::string& key() const { return key_; }  // the registry name
  virtual std::string name() const = 0;            // with every option
  virtual MethodKind kind() const = 0;
  virtual bool certified() const = 0;
  // Throws a bb::Error when the method cannot serve `model`.
  virtual void check(const Model& model) const {}
  // Whether run() wants training images in MethodContext::starts.
  virtual bool wants_starts() const { return false; }
  virtual MethodBatch run(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const MethodContext& context) const = 0;

 protected:
  explicit Method(std::string key) : key_(std::move(key)) {}

 private:
  std::string key_;
};

// Attacks (attack_names(): minimal-distortion forms), bounds (bound_names()),
// then the exact MILP (exact-milp).
std::vector<std::string> method_names();
bool is_attack(const std::string& name);
// An unknown name is a bb::Error listing every valid one. With
// fixed_epsilon > 0, an attack runs at that budget (fixed-budget attacks
// only: fgsm, pgd) instead of searching for the minimal distortion.
std::unique_ptr<Method> make_method(
    const std::string& name,
    Norm p,
    const MethodOptions& options = {},
    double fixed_epsilon = 0);

}  // namespace bb
