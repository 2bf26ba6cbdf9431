// A loaded model: the classifier every method calls, and the layer chain the
// certified bounds read (when the network is such a chain). Kept apart from
// the zoo's manifest code so that bounds need only this.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/classifier.h"
#include "models/layers.h"

namespace bb {

struct Model {
  Classifier classifier;
  std::string source;               // zoo name, or the TorchScript file's path
  std::string sha256;               // of the checkpoint file
  std::optional<LayerList> layers;  // the layer chain, for certified bounds
  std::string layers_unavailable;   // why there is none (every unsupported op)
  nlohmann::json metadata;          // the zoo manifest entry; {} for TorchScript
};

// The layer chain of `model`, or a bb::Error naming `method` and every
// unsupported operation (certified bounds need the chain).
const LayerList& require_layers(const Model& model, const std::string& method);

}  // namespace bb
