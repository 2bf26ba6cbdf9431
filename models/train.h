// Training the zoo's networks: the recipe of models/architectures.h, batched
// augmentation, deterministic for a fixed seed and thread count on the CPU.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/architectures.h"

namespace bb {

struct TrainOptions {
  int64_t epochs = 0;  // 0: the architecture's recipe
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  bool show_progress = true;
  // Called after each epoch with (epoch, mean training loss, seconds so far).
  std::function<void(int64_t, double, double)> on_epoch;
};

// Trains `arch` on (images, labels) and returns the evaluation network (batch
// norm folded) in eval mode, on options.device.
torch::nn::Sequential train_network(
    const Architecture& arch,
    const torch::Tensor& images,
    const torch::Tensor& labels,
    const TrainOptions& options);

// Fraction of `images` classified as `labels`, batched, without a graph.
double accuracy(
    torch::nn::Sequential& network,
    const torch::Tensor& images,
    const torch::Tensor& labels,
    torch::Device device);

// Random crop after zero padding by `pad` pixels and horizontal flip, one
// draw per image, batched.
torch::Tensor random_crop_flip(const torch::Tensor& x, int64_t pad);

}  // namespace bb
