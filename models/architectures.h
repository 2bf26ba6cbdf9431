// The zoo's architectures and their training recipes, by name. A model name
// such as "mnist-cnn-relu" fixes the network, the data set whose input shape it
// takes, the input normalisation (the network's first layer, so distortions
// are measured in pixel space) and how it is trained.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace bb {

enum class Activation { ReLU, Softplus };

struct Architecture {
  std::string name;      // "mnist-mlp-relu"
  std::string dataset;   // whose input shape and classes it takes
  std::string family;    // "mlp" (512-512), "mlp1" (1024), "mlp-small" (32-32) or "cnn"
  Activation activation;
  // Softplus sharpness: log(1 + exp(beta x)) / beta. The CIFAR-10 network
  // uses beta 10 (after batch norm, pre-activations are of order 1, and at
  // beta 1 it trained 4 points below its ReLU twin); the MNIST ones use 1.
  double softplus_beta = 1.0;
  std::vector<double> mean;    // per-channel input normalisation
  std::vector<double> stddev;
  bool batch_norm = false;     // trained with batch norm, folded for evaluation
  // Training recipe (boundbench train uses it unless told otherwise).
  int64_t epochs = 10;
  int64_t batch_size = 128;
  double learning_rate = 1e-3;  // Adam; SGD (Nesterov, one-cycle) when batch_norm
  bool augment = false;         // random crop (pad 4) + horizontal flip
};

std::string activation_name(Activation activation);
const std::vector<Architecture>& architectures();
// An unknown name is a bb::Error listing every valid one.
const Architecture& architecture(const std::string& name, const std::string& what = "--model");

// The network of `arch`. With `for_training` and a batch-norm architecture the
// convolutions are followed by BatchNorm2d; otherwise the evaluation form,
// which is what checkpoints hold (batch norm folded into the convolutions).
torch::nn::Sequential build_network(const Architecture& arch, bool for_training);

}  // namespace bb
