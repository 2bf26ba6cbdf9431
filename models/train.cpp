#include "models/train.h"

#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "models/layers.h"

namespace bb {
namespace {

constexpr double kPi = 3.14159265358979323846;
// SGD recipe for the batch-norm (CIFAR-10) networks.
constexpr double kMomentum = 0.9;
constexpr double kWeightDecay = 5e-4;
// Fraction of the steps spent warming the learning rate up (one-cycle).
constexpr double kWarmup = 0.15;

// One-cycle schedule: linear warm-up, then cosine decay to zero.
double scheduled_rate(double base, int64_t step, int64_t steps) {
  const double t = static_cast<double>(step) / static_cast<double>(steps);
  if (t < kWarmup) {
    return base * t / kWarmup;
  }
  return base * 0.5 * (1 + std::cos(kPi * (t - kWarmup) / (1 - kWarmup)));
}

template <typename OptionsType>
void set_rate(torch::optim::Optimizer& optimizer, double rate) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<OptionsType&>(group.options()).lr(rate);
  }
}

}  // namespace

torch::Tensor random_crop_flip(const torch::Tensor& x, int64_t pad) {
  namespace F = torch::nn::functional;
  const int64_t n = x.size(0);
  const int64_t c = x.size(1);
  const int64_t h = x.size(2);
  const int64_t w = x.size(3);
  auto padded = F::pad(x, F::PadFuncOptions({pad, pad, pad, pad}));
  auto index = torch::TensorOptions().dtype(torch::kInt64).device(x.device());
  auto dy = torch::randint(0, 2 * pad + 1, {n, 1}, index);
  auto dx = torch::randint(0, 2 * pad + 1, {n, 1}, index);
  auto rows = (dy + torch::arange(h, index)).view({n, 1, h, 1}).expand({n, c, h, w + 2 * pad});
  auto cols = (dx + torch::arange(w, index)).view({n, 1, 1, w}).expand({n, c, h, w});
  auto cropped = padded.gather(2, rows).gather(3, cols);
  auto flip = (torch::rand({n, 1, 1, 1}, x.options()) < 0.5);
  return torch::where(flip, cropped.flip(3), cropped);
}

torch::nn::Sequential train_network(
    const Architecture& arch,
    const torch::Tensor& images,
    const torch::Tensor& labels,
    const TrainOptions& options) {
  BB_CHECK(images.size(0) == labels.size(0), "training data: {} images, {} labels", images.size(0), labels.size(0));
  const int64_t epochs = options.epochs > 0 ? options.epochs : arch.epochs;
  seed_all(options.seed);
  auto net = build_network(arch, /*for_training=*/true);
  net->to(options.device);
  net->train();

  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (arch.batch_norm) {
    optimizer = std::make_unique<torch::optim::SGD>(
        net->parameters(),
        torch::optim::SGDOptions(arch.learning_rate)
            .momentum(kMomentum)
            .nesterov(true)
            .weight_decay(kWeightDecay));
  } else {
    optimizer = std::make_unique<torch::optim::Adam>(
        net->parameters(), torch::optim::AdamOptions(arch.learning_rate));
  }
  const int64_t n = images.size(0);
  const int64_t batches = (n + arch.batch_size - 1) / arch.batch_size;
  const int64_t steps = epochs * batches;
  Stopwatch watch(options.device);
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    auto order = torch::randperm(n, torch::kInt64);
    Progress progress(
        fmt::format("{} epoch {}/{}", arch.name, epoch, epochs), n, options.show_progress);
    auto loss_sum = torch::zeros({}, torch::TensorOptions().device(options.device));
    for (int64_t b = 0; b < batches; ++b, ++step) {
      const double rate = scheduled_rate(arch.learning_rate, step, steps);
      if (arch.batch_norm) {
        set_rate<torch::optim::SGDOptions>(*optimizer, rate);
      } else {
        set_rate<torch::optim::AdamOptions>(*optimizer, rate);
      }
      auto index = order.slice(0, b * arch.batch_size, std::min(n, (b + 1) * arch.batch_size));
      auto x = images.index_select(0, index).to(options.device);
      auto y = labels.index_select(0, index).to(options.device);
      if (arch.augment) {
        x = random_crop_flip(x, /*pad=*/4);
      }
      optimizer->zero_grad();
      auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
      loss.backward();
      optimizer->step();
      loss_sum += loss.detach() * index.size(0);
      progress.advance(index.size(0));
    }
    progress.finish();
    if (options.on_epoch) {
      options.on_epoch(epoch, loss_sum.item<double>() / static_cast<double>(n), watch.seconds());
    }
  }
  net->eval();
  auto folded = fold_batch_norm(net);
  folded->eval();
  return folded;
}

double accuracy(
    torch::nn::Sequential& network,
    const torch::Tensor& images,
    const torch::Tensor& labels,
    torch::Device device) {
  torch::NoGradGuard no_grad;
  network->eval();
  constexpr int64_t kChunk = 1000;
  auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  for (int64_t start = 0; start < images.size(0); start += kChunk) {
    auto x = images.slice(0, start, start + kChunk).to(device);
    auto y = labels.slice(0, start, start + kChunk).to(device);
    correct += (network->forward(x).argmax(1) == y).sum();
  }
  return static_cast<double>(correct.item<int64_t>()) / static_cast<double>(images.size(0));
}

}  // namespace bb
