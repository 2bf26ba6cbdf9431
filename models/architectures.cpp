#include "models/architectures.h"

#include "core/error.h"
#include "datasets/dataset.h"
#include "models/layers.h"

namespace bb {
namespace {

// Per-channel statistics of the training sets, for the normalisation layer.
const std::vector<double> kMnistMean{0.1307};
const std::vector<double> kMnistStd{0.3081};
const std::vector<double> kCifarMean{0.4914, 0.4822, 0.4465};
const std::vector<double> kCifarStd{0.2470, 0.2435, 0.2616};

Architecture make(
    const std::string& dataset,
    const std::string& family,
    Activation activation) {
  Architecture arch;
  arch.name = fmt::format("{}-{}-{}", dataset, family, activation_name(activation));
  arch.dataset = dataset;
  arch.family = family;
  arch.activation = activation;
  const bool cifar = dataset == "cifar10";
  arch.mean = cifar ? kCifarMean : kMnistMean;
  arch.stddev = cifar ? kCifarStd : kMnistStd;
  if (cifar) {
    arch.batch_norm = true;
    arch.epochs = 18;
    arch.batch_size = 128;
    arch.learning_rate = 0.1;
    arch.augment = true;
    arch.softplus_beta = activation == Activation::Softplus ? 10.0 : 1.0;
  } else {
    arch.epochs = family == "cnn" ? 8 : 12;
    arch.batch_size = 128;
    arch.learning_rate = 1e-3;
  }
  return arch;
}

void add_activation(torch::nn::Sequential& net, const Architecture& arch) {
  if (arch.activation == Activation::ReLU) {
    net->push_back(torch::nn::ReLU());
  } else {
    net->push_back(torch::nn::Softplus(torch::nn::SoftplusOptions().beta(arch.softplus_beta)));
  }
}

// Conv2d (+ BatchNorm2d when training a batch-norm network) + activation.
void add_conv(
    torch::nn::Sequential& net,
    const Architecture& arch,
    bool for_training,
    int64_t in,
    int64_t out,
    int64_t kernel,
    int64_t stride,
    int64_t padding) {
  const bool bn = arch.batch_norm && for_training;
  net->push_back(torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(!bn)));
  if (bn) {
    net->push_back(torch::nn::BatchNorm2d(out));
  }
  add_activation(net, arch);
}

}  // namespace

std::string activation_name(Activation activation) {
  return activation == Activation::ReLU ? "relu" : "softplus";
}

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> table{
      make("mnist", "mlp", Activation::ReLU),
      make("mnist", "mlp", Activation::Softplus),
      // One hidden layer: Hein & Andriushchenko's closed form (hein-one-layer)
      // applies to it.
      make("mnist", "mlp1", Activation::Softplus),
      // Small enough for an exact mixed-integer ground truth.
      make("mnist", "mlp-small", Activation::ReLU),
      make("mnist", "cnn", Activation::ReLU),
      make("mnist", "cnn", Activation::Softplus),
      make("cifar10", "cnn", Activation::ReLU),
      make("cifar10", "cnn", Activation::Softplus),
  };
  return table;
}

const Architecture& architecture(const std::string& name, const std::string& what) {
  std::vector<std::string> names;
  for (const auto& arch : architectures()) {
    if (arch.name == name) {
      return arch;
    }
    names.push_back(arch.name);
  }
  throw Error(fmt::format(
      "{}: unknown model '{}' (valid: {}, or a TorchScript file *.pt)",
      what,
      name,
      fmt::join(names, ", ")));
}

torch::nn::Sequential build_network(const Architecture& arch, bool for_training) {
  const DatasetInfo& info = dataset_info(arch.dataset);
  const int64_t channels = info.shape[0];
  const int64_t classes = static_cast<int64_t>(info.class_names.size());
  torch::nn::Sequential net;
  auto mean = torch::tensor(arch.mean, torch::kFloat32);
  auto stddev = torch::tensor(arch.stddev, torch::kFloat32);
  net->push_back(ChannelAffine(1 / stddev, -mean / stddev));
  if (arch.family.rfind("mlp", 0) == 0) {
    // mlp: 512-512; mlp1: one hidden layer of 1024; mlp-small: 32-32.
    std::vector<int64_t> hidden{512, 512};
    if (arch.family == "mlp1") {
      hidden = {1024};
    } else if (arch.family == "mlp-small") {
      hidden = {32, 32};
    }
    int64_t width = channels * info.shape[1] * info.shape[2];
    net->push_back(torch::nn::Flatten());
    for (int64_t next : hidden) {
      net->push_back(torch::nn::Linear(width, next));
      add_activation(net, arch);
      width = next;
    }
    net->push_back(torch::nn::Linear(width, classes));
  } else if (arch.dataset != "cifar10") {
    // 28x28 -> 14x14 -> 7x7 by strided convolutions (no pooling, so the
    // softplus network stays continuously differentiable).
    add_conv(net, arch, for_training, channels, 32, 5, 2, 2);
    add_conv(net, arch, for_training, 32, 64, 5, 2, 2);
    net->push_back(torch::nn::Flatten());
    net->push_back(torch::nn::Linear(64 * 7 * 7, 256));
    add_activation(net, arch);
    net->push_back(torch::nn::Linear(256, classes));
  } else {
    // 32x32 -> 16 -> 8 -> 4, about 0.96 M parameters.
    add_conv(net, arch, for_training, channels, 32, 3, 1, 1);
    add_conv(net, arch, for_training, 32, 32, 4, 2, 1);
    add_conv(net, arch, for_training, 32, 64, 3, 1, 1);
    add_conv(net, arch, for_training, 64, 64, 4, 2, 1);
    add_conv(net, arch, for_training, 64, 128, 3, 1, 1);
    add_conv(net, arch, for_training, 128, 128, 4, 2, 1);
    net->push_back(torch::nn::Flatten());
    net->push_back(torch::nn::Linear(128 * 4 * 4, 256));
    add_activation(net, arch);
    net->push_back(torch::nn::Linear(256, classes));
  }
  return net;
}

}  // namespace bb
