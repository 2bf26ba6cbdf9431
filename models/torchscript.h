// Users' own models: TorchScript modules exported from Python with
// torch.jit.trace or torch.jit.script.
#pragma once

#include <string>

#include <torch/script.h>
#include <torch/torch.h>

#include "models/zoo.h"

namespace bb {

// Loads the module at `path` in eval mode on `device` for inputs of `spec`.
// The layer list is built from the module's TorchScript graph when it is a
// chain of supported operations; otherwise model.layers stays empty and
// model.layers_unavailable names every unsupported operation.
Model load_torchscript(const std::string& path, const InputSpec& spec, torch::Device device);

// The layer chain of a (frozen, inlined) TorchScript forward graph; a graph
// that is not such a chain is a bb::Error listing every unsupported operation.
LayerList layers_from_torchscript(const torch::jit::Module& module);

}  // namespace bb
