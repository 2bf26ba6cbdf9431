// The model zoo: layer lists that reproduce their networks, batch-norm
// folding, deterministic training, checkpoint and manifest checks, the
// committed checkpoints themselves, and SHA-256 on the FIPS examples.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/sha256.h"
#include "datasets/dataset.h"
#include "models/architectures.h"
#include "models/layers.h"
#include "models/train.h"
#include "models/zoo.h"
#include "tests/helpers.h"

namespace bb {
namespace {

torch::Tensor input_for(const Architecture& arch, int64_t n) {
  std::vector<int64_t> shape{n};
  const auto& s = dataset_info(arch.dataset).shape;
  shape.insert(shape.end(), s.begin(), s.end());
  return torch::rand(shape);
}

TEST(Sha256, FipsExamples) {
  EXPECT_EQ(sha256_bytes(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_bytes("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(
      sha256_bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(
      sha256_bytes(std::string(1000000, 'a')),
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Layers, EveryArchitectureIsAChainThatReproducesItsNetwork) {
  for (const auto& arch : architectures()) {
    torch::manual_seed(1);
    auto net = build_network(arch, /*for_training=*/false);
    net->eval();
    auto layers = layers_of(net);
    auto x = input_for(arch, 3);
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::allclose(run_layers(layers, x), net->forward(x), 1e-5, 1e-6)) << arch.name;
    EXPECT_EQ(layers.front().kind, LayerKind::ChannelAffine) << arch.name;
    const auto act = arch.activation == Activation::ReLU ? LayerKind::ReLU : LayerKind::Softplus;
    for (const auto& layer : layers) {
      if (is_activation(layer.kind)) {
        EXPECT_EQ(layer.kind, act) << arch.name;
        EXPECT_EQ(layer.beta, arch.softplus_beta) << arch.name;
      }
    }
  }
}

TEST(Layers, UnsupportedModulesAreAllNamed) {
  torch::nn::Sequential net(
      torch::nn::Conv2d(1, 2, 3), torch::nn::MaxPool2d(2), torch::nn::ReLU(),
      torch::nn::Dropout(0.5), torch::nn::Flatten(),
      torch::nn::Softplus(torch::nn::SoftplusOptions().threshold(5)));
  testing::expect_error(
      [&] { layers_of(net); },
      {"1: torch::nn::MaxPool2d", "3: torch::nn::Dropout", "5: Softplus with beta <= 0 or threshold != 20"});
}

TEST(Layers, BatchNormFoldsExactly) {
  const auto& arch = architecture("cifar10-cnn-relu");
  torch::manual_seed(3);
  auto net = build_network(arch, /*for_training=*/true);
  // Give the batch norms non-trivial statistics and affine parameters.
  net->train();
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 3; ++i) {
      net->forward(input_for(arch, 16) * 2);
    }
    for (auto& p : net->named_parameters()) {
      if (p.key().find("weight") != std::string::npos && p.value().dim() == 1) {
        p.value().uniform_(0.5, 1.5);
      }
    }
  }
  net->eval();
  auto folded = fold_batch_norm(net);
  for (const auto& module : *folded) {
    EXPECT_FALSE(std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(module.ptr()));
  }
  auto x = input_for(arch, 4);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(folded->forward(x), net->forward(x), 1e-4, 1e-5));
  // The folded network is what checkpoints hold: same parameter names.
  auto evaluation = build_network(arch, /*for_training=*/false);
  EXPECT_EQ(evaluation->named_parameters().keys(), folded->named_parameters().keys());
}

TEST(Train, DeterministicForAFixedSeed) {
  const auto& arch = architecture("mnist-mlp-relu");
  torch::manual_seed(0);
  auto images = torch::rand({256, 1, 28, 28});
  auto labels = torch::randint(0, 10, {256}, torch::kInt64);
  TrainOptions options;
  options.epochs = 1;
  options.show_progress = false;
  options.seed = 5;
  auto a = train_network(arch, images, labels, options);
  auto b = train_network(arch, images, labels, options);
  options.seed = 6;
  auto other = train_network(arch, images, labels, options);
  auto pa = a->parameters();
  auto pb = b->parameters();
  auto po = other->parameters();
  bool differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i;
    differs = differs || !torch::equal(pa[i], po[i]);
  }
  EXPECT_TRUE(differs) << "another seed should train another network";
}

TEST(Train, RandomCropFlipShiftsOrMirrors) {
  torch::manual_seed(0);
  auto x = torch::rand({64, 3, 8, 8});
  auto same = random_crop_flip(x, /*pad=*/0);
  auto flipped = x.flip(3);
  for (int64_t i = 0; i < 64; ++i) {
    EXPECT_TRUE(torch::equal(same[i], x[i]) || torch::equal(same[i], flipped[i]));
  }
  auto shifted = random_crop_flip(x, /*pad=*/2);
  EXPECT_EQ(shifted.sizes(), x.sizes());
  // Each output is a window of the zero-padded (possibly mirrored) input.
  auto padded = torch::nn::functional::pad(x, torch::nn::functional::PadFuncOptions({2, 2, 2, 2}));
  int matched = 0;
  for (int64_t i = 0; i < 64; ++i) {
    bool found = false;
    for (int64_t dy = 0; dy <= 4 && !found; ++dy) {
      for (int64_t dx = 0; dx <= 4 && !found; ++dx) {
        auto window = padded[i].slice(1, dy, dy + 8).slice(2, dx, dx + 8);
        found = torch::equal(shifted[i], window) || torch::equal(shifted[i], window.flip(2));
      }
    }
    matched += found;
  }
  EXPECT_EQ(matched, 64);
}

TEST(Zoo, ChecksumsArchitecturesAndNamesAreEnforced) {
  testing::TempDir dir;
  const auto& arch = architecture("mnist-mlp-relu");
  auto net = build_network(arch, false);
  const std::string file = dir.file("mnist-mlp-relu.pt");
  torch::save(net, file);
  update_manifest(dir.path().string(), {{"name", "mnist-mlp-relu"}, {"file", "mnist-mlp-relu.pt"}, {"sha256", sha256_file(file)}, {"dataset", "mnist"}});
  auto model = load_model("mnist-mlp-relu", "", torch::kCPU, dir.path().string());
  ASSERT_TRUE(model.layers.has_value());
  auto x = torch::rand({2, 1, 28, 28});
  EXPECT_TRUE(torch::allclose(model.classifier.logits(x), run_layers(*model.layers, x), 1e-5, 1e-6));
  // Fashion-MNIST has the same input shape; CIFAR-10 does not.
  EXPECT_NO_THROW(load_model("mnist-mlp-relu", "fashion-mnist", torch::kCPU, dir.path().string()));
  testing::expect_error(
      [&] { load_model("mnist-mlp-relu", "cifar10", torch::kCPU, dir.path().string()); },
      {"cifar10", "[3, 32, 32]", "mnist-mlp-relu"});
  testing::expect_error(
      [&] { load_model("mnist-cnn-relu", "", torch::kCPU, dir.path().string()); },
      {"mnist-cnn-relu", "not in the zoo manifest", "boundbench train"});
  testing::expect_error(
      [&] { load_model("resnet50", "", torch::kCPU, dir.path().string()); },
      {"'resnet50'", "mnist-mlp-relu", "cifar10-cnn-softplus"});
  // A checkpoint of another architecture.
  testing::expect_error(
      [&] { load_checkpoint("mnist-cnn-relu", file); }, {file, "mnist-cnn-relu"});
  // A modified checkpoint.
  {
    std::ofstream out(file, std::ios::app | std::ios::binary);
    out << "x";
  }
  testing::expect_error(
      [&] { load_model("mnist-mlp-relu", "", torch::kCPU, dir.path().string()); },
      {file, "sha256 mismatch"});
  // A malformed manifest.
  {
    std::ofstream out(dir.file("manifest.json"));
    out << "{\"models\": [";
  }
  testing::expect_error(
      [&] { read_manifest(dir.path().string()); }, {"manifest.json", "malformed JSON"});
}

// The committed zoo: every manifest entry loads (checksum verified), is a
// layer chain, and classifies the first 1000 test images about as well as its
// recorded full-test-set accuracy.
TEST(Zoo, CommittedModelsLoadAndKeepTheirAccuracy) {
  const auto manifest = read_manifest(default_zoo_dir());
  ASSERT_FALSE(manifest["models"].empty()) << "no model in " << default_zoo_dir();
  for (const auto& entry : manifest["models"]) {
    const std::string name = entry.at("name");
    const std::string dataset = entry.at("dataset");
    SCOPED_TRACE(name);
    auto model = load_model(name, "", torch::kCPU);
    EXPECT_TRUE(model.layers.has_value());
    const auto dir = default_data_dir();
    if (!std::filesystem::exists(std::filesystem::path(dir) / dataset)) {
      continue;
    }
    auto data = load_dataset(dataset, "test", dir);
    auto x = data.images.slice(0, 0, 1000);
    auto y = data.labels.slice(0, 0, 1000);
    const double acc = (model.classifier.predict(x) == y).to(torch::kFloat64).mean().item<double>();
    EXPECT_GE(acc, entry.at("test_accuracy").get<double>() - 0.03);
  }
}

}  // namespace
}  // namespace bb
