// Loading models: the committed zoo (models/zoo/, checked by sha256 against
// models/zoo/manifest.json) and users' own TorchScript files.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/classifier.h"
#include "models/layers.h"
#include "models/model.h"

namespace bb {

// $BOUNDBENCH_ZOO_DIR, else models/zoo of this source tree.
std::string default_zoo_dir();
// The manifest: {"models": [{"name": ..., "file": ..., "sha256": ..., ...}]}.
nlohmann::json read_manifest(const std::string& zoo_dir);
// Adds or replaces the entry of entry["name"], written atomically.
void update_manifest(const std::string& zoo_dir, const nlohmann::json& entry);

// A zoo model by name, or a TorchScript file (a path ending in .pt or .pth,
// or any existing file) for inputs of `dataset`. Checks the checksum (zoo),
// the input shape against the data set, and the logits of a first batch.
Model load_model(
    const std::string& name_or_path,
    const std::string& dataset,
    torch::Device device,
    const std::string& zoo_dir = default_zoo_dir());

// The evaluation network of a zoo architecture with the weights of `path`;
// a checkpoint of another architecture is a bb::Error naming the file.
torch::nn::Sequential load_checkpoint(const std::string& architecture_name, const std::string& path);

}  // namespace bb
