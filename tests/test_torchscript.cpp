// TorchScript import: models exported from Python by tests/export_torchscript.py
// (Debian's /usr/bin/python3 with torch) must give the same logits in C++, and
// their layer chains must reproduce those logits or name every op they cannot.
#include "models/torchscript.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/sha256.h"
#include "tests/helpers.h"

namespace bb {
namespace {

using bb::testing::expect_error;

constexpr const char* kPython = "/usr/bin/python3";

// The exporter's output. ctest runs every test in its own process, so the
// models are written once into a folder named by the exporter's checksum and
// reused by the later processes (an export takes seconds, a load
// milliseconds).
struct Exported {
  std::filesystem::path dir;
  std::string skip;   // why these tests cannot run here
  std::string error;  // the exporter failed

  Exported() {
    const std::string script = std::string(BOUNDBENCH_SOURCE_DIR) + "/tests/export_torchscript.py";
    dir = std::filesystem::temp_directory_path() /
        ("boundbench_torchscript_" + sha256_file(script).substr(0, 16));
    if (std::filesystem::exists(dir / "complete")) {
      return;
    }
    const std::string probe = fmt::format("{} -c 'import torch' >/dev/null 2>&1", kPython);
    if (std::system(probe.c_str()) != 0) {
      skip = fmt::format(
          "{} cannot import torch (install python3-torch) to export the test models", kPython);
      return;
    }
    // Written beside, then renamed: a concurrent test process sees the
    // folder complete or not at all.
    const auto staging = dir.string() + fmt::format(".{}", static_cast<long>(getpid()));
    std::filesystem::remove_all(staging);
    std::filesystem::create_directories(staging);
    const std::string log = staging + "/export.log";
    const std::string command =
        fmt::format("{} '{}' '{}' >'{}' 2>&1", kPython, script, staging, log);
    if (std::system(command.c_str()) != 0) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      error = "tests/export_torchscript.py failed:\n" + text.str();
      std::filesystem::remove_all(staging);
      return;
    }
    std::ofstream(staging + "/complete") << "ok\n";
    std::error_code taken;  // another process renamed its copy first
    std::filesystem::rename(staging, dir, taken);
    if (taken) {
      std::filesystem::remove_all(staging);
    }
    if (!std::filesystem::exists(dir / "complete")) {
      error = fmt::format(
          "cannot move the exported models to {}: {}", dir.string(), taken.message());
    }
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

const Exported& exported() {
  static const Exported instance;
  return instance;
}

InputSpec spec_of(std::vector<int64_t> shape) {
  InputSpec spec;
  spec.shape = std::move(shape);
  spec.num_classes = 10;
  return spec;
}

class TorchScriptExport : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!exported().skip.empty()) {
      GTEST_SKIP() << exported().skip;
    }
    ASSERT_TRUE(exported().error.empty()) << exported().error;
  }
  static std::string model_file(const std::string& name) { return exported().file(name + ".pt"); }
};

// One exported model and what its import must give.
struct Case {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<std::string> layers;       // describe() of the chain; empty: none
  std::vector<std::string> unsupported;  // parts of layers_unavailable
};

std::ostream& operator<<(std::ostream& out, const Case& c) {
  return out << c.name;
}

const std::vector<std::string> kMlp{
    "ChannelAffine(1)", "Flatten", "Linear(784->32)", "ReLU", "Linear(32->16)", "Tanh",
    "Linear(16->10)"};
const std::vector<std::string> kCnn{
    "ChannelAffine(3)", "Conv2d(3->4, k3x3, s2, p1)", "Softplus(beta 2)", "Conv2d(4->6, k3x3, s1, p0)",
    "ReLU", "Flatten", "Linear(216->10)"};
const std::vector<std::string> kLegacy{
    "Conv2d(1->4, k3x3, s2, p1)", "ReLU", "Flatten", "Linear(784->32)", "Tanh", "Linear(32->10)"};
// Scripted graphs know the line in forward that called a library function;
// traced ones only the innermost Python frame, which may be in torch itself.
const std::vector<std::string> kUnsupportedScripted{
    "unsupported operations for certified bounds: ", "aten::max_pool2d at export_torchscript.py:",
    "aten::batch_norm at export_torchscript.py:", "aten::sigmoid at export_torchscript.py:"};
const std::vector<std::string> kUnsupportedTraced{
    "unsupported operations for certified bounds: ", "aten::max_pool2d at torch/nn/functional.py:",
    "aten::batch_norm at torch/nn/functional.py:", "aten::sigmoid at export_torchscript.py:"};

const Case kCases[] = {
    {"mlp_traced", {1, 28, 28}, kMlp, {}},
    {"mlp_scripted", {1, 28, 28}, kMlp, {}},
    {"cnn_traced", {3, 16, 16}, kCnn, {}},
    {"cnn_scripted", {3, 16, 16}, kCnn, {}},
    {"cifar_traced",
     {3, 32, 32},
     {"Conv2d(3->4, k3x3, s2, p0)", "ReLU", "Flatten", "Linear(900->10)"},
     {}},
    {"legacy_traced", {1, 28, 28}, kLegacy, {}},
    {"legacy_scripted", {1, 28, 28}, kLegacy, {}},
    {"unsupported_traced", {1, 28, 28}, {}, kUnsupportedTraced},
    {"unsupported_scripted", {1, 28, 28}, {}, kUnsupportedScripted},
    {"residual_scripted",
     {1, 28, 28},
     {},
     {"aten::add at export_torchscript.py:", "(not a chain)"}},
};

class TorchScriptModel : public TorchScriptExport, public ::testing::WithParamInterface<Case> {};

TEST_P(TorchScriptModel, MatchesPython) {
  const Case& c = GetParam();
  const std::string path = model_file(c.name);
  const Model model = load_torchscript(path, spec_of(c.shape), torch::kCPU);
  EXPECT_EQ(model.source, path);
  EXPECT_EQ(model.sha256, sha256_file(path));
  EXPECT_TRUE(model.metadata.empty());

  auto data = torch::jit::load(exported().file(c.name + ".data.pt"));
  const torch::Tensor x = data.attr("x").toTensor();
  const torch::Tensor expected = data.attr("logits").toTensor();
  const torch::Tensor logits = model.classifier.logits(x);
  ASSERT_EQ(logits.sizes(), expected.sizes());
  EXPECT_LE((logits - expected).abs().max().item<double>(), 1e-6);

  if (c.layers.empty()) {
    EXPECT_FALSE(model.layers.has_value());
    for (const auto& part : c.unsupported) {
      EXPECT_NE(model.layers_unavailable.find(part), std::string::npos)
          << "'" << model.layers_unavailable << "' lacks '" << part << "'";
    }
    EXPECT_EQ(model.layers_unavailable.find('\n'), std::string::npos);
    return;
  }
  ASSERT_TRUE(model.layers.has_value()) << model.layers_unavailable;
  EXPECT_TRUE(model.layers_unavailable.empty());
  std::vector<std::string> described;
  for (const auto& layer : *model.layers) {
    described.push_back(layer.describe());
  }
  EXPECT_EQ(described, c.layers);
  torch::NoGradGuard no_grad;
  EXPECT_LE((run_layers(*model.layers, x) - expected).abs().max().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    TorchScript,
    TorchScriptModel,
    ::testing::ValuesIn(kCases),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST_F(TorchScriptExport, ScriptedAndTracedGiveTheSameLayers) {
  const auto traced = load_torchscript(model_file("cnn_traced"), spec_of({3, 16, 16}), torch::kCPU);
  const auto scripted =
      load_torchscript(model_file("cnn_scripted"), spec_of({3, 16, 16}), torch::kCPU);
  ASSERT_TRUE(traced.layers && scripted.layers);
  ASSERT_EQ(traced.layers->size(), scripted.layers->size());
  for (size_t i = 0; i < traced.layers->size(); ++i) {
    const Layer& a = (*traced.layers)[i];
    const Layer& b = (*scripted.layers)[i];
    EXPECT_EQ(a.weight.defined(), b.weight.defined()) << i;
    if (a.weight.defined()) {
      EXPECT_TRUE(torch::equal(a.weight, b.weight)) << i;
      EXPECT_TRUE(torch::equal(a.bias, b.bias)) << i;
    }
  }
  // (2x - 1 - mean) / std, folded into one per-channel map.
  const Layer& affine = traced.layers->front();
  const auto stdev = torch::tensor({0.25, 0.24, 0.26});
  const auto mean = torch::tensor({0.49, 0.48, 0.45});
  EXPECT_TRUE(torch::allclose(affine.weight, 2.0 / stdev));
  EXPECT_TRUE(torch::allclose(affine.bias, (-1.0 - mean) / stdev));
}

TEST_F(TorchScriptExport, GradientsFlowThroughTheModule) {
  const auto model =
      load_torchscript(model_file("mlp_scripted"), spec_of({1, 28, 28}), torch::kCPU);
  auto data = torch::jit::load(exported().file("mlp_scripted.data.pt"));
  const torch::Tensor x = data.attr("x").toTensor();
  const auto c = model.classifier.predict(x);
  const auto result = model.classifier.margin_gradients(x, c);
  EXPECT_EQ(result.grads.sizes(), (std::vector<int64_t>{5, 10, 1, 28, 28}));
  EXPECT_TRUE(torch::isfinite(result.grads).all().item<bool>());
  EXPECT_GT(result.grads.abs().sum().item<double>(), 0.0);
}

TEST_F(TorchScriptExport, LayersFromTorchScriptNamesEveryUnsupportedOp) {
  const auto module = torch::jit::load(model_file("unsupported_scripted"));
  std::initializer_list<std::string> parts{
      "unsupported operations for certified bounds: ", "aten::max_pool2d", "aten::batch_norm",
      "aten::sigmoid"};
  expect_error([&] { layers_from_torchscript(module); }, parts);
}

TEST_F(TorchScriptExport, RefusesAnInputShapeThatDoesNotFit) {
  const std::string path = model_file("cifar_traced");
  expect_error(
      [&] { load_torchscript(path, spec_of({1, 28, 28}), torch::kCPU); },
      {path + ": model does not accept inputs of shape [N, 1, 28, 28] (", "channels"});
}

TEST_F(TorchScriptExport, RefusesTheWrongNumberOfClasses) {
  const std::string path = model_file("mlp_traced");
  InputSpec spec = spec_of({1, 28, 28});
  spec.num_classes = 5;
  expect_error(
      [&] { load_torchscript(path, spec, torch::kCPU); },
      {path + ": model returns logits of shape [2, 10], expected [2, 5]"});
}

TEST(TorchScript, RefusesAMissingFile) {
  bb::testing::TempDir dir;
  const std::string path = dir.file("missing.pt");
  expect_error(
      [&] { load_torchscript(path, spec_of({1, 28, 28}), torch::kCPU); },
      {path + ": cannot open"});
  expect_error(
      [&] { load_torchscript(dir.path().string(), spec_of({1, 28, 28}), torch::kCPU); },
      {dir.path().string() + ": cannot open"});
}

TEST(TorchScript, RefusesAFileThatIsNotTorchScript) {
  bb::testing::TempDir dir;
  const std::string path = dir.file("junk.pt");
  std::ofstream(path, std::ios::binary) << "PK\x03\x04 this is not a zip archive \x01\x02\xff";
  expect_error(
      [&] { load_torchscript(path, spec_of({1, 28, 28}), torch::kCPU); },
      {path + ": not a TorchScript module: "});
}

}  // namespace
}  // namespace bb
