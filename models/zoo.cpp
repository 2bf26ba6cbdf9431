#include "models/zoo.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/io.h"
#include "core/sha256.h"
#include "datasets/dataset.h"
#include "models/architectures.h"
#include "models/torchscript.h"

namespace bb {
namespace {

std::string manifest_path(const std::string& zoo_dir) {
  return (std::filesystem::path(zoo_dir) / "manifest.json").string();
}

bool looks_like_file(const std::string& name) {
  const auto ext = std::filesystem::path(name).extension().string();
  return ext == ".pt" || ext == ".pth" || name.find('/') != std::string::npos ||
      std::filesystem::is_regular_file(name);
}

InputSpec spec_of(const std::string& dataset) {
  const DatasetInfo& info = dataset_info(dataset);
  return InputSpec{info.shape, static_cast<int64_t>(info.class_names.size()), Box{0, 1}};
}

// One forward pass of a zero batch: the logits' shape is checked before any
// work. Not their finiteness: a model may be NaN on zeros (per-image
// standardisation) and fine on images, or the other way round; callers check
// the first batch of data (Classifier::checked_logits).
void check_first_batch(const Model& model, const std::string& what) {
  std::vector<int64_t> shape{2};
  const auto& s = model.classifier.spec().shape;
  shape.insert(shape.end(), s.begin(), s.end());
  model.classifier.check_logits_shape(
      model.classifier.logits(
          torch::zeros(shape, torch::TensorOptions().device(model.classifier.device()))),
      2,
      what);
}

}  // namespace

const LayerList& require_layers(const Model& model, const std::string& method) {
  BB_CHECK(
      model.layers.has_value(),
      "{}: model {} is not a supported layer chain: {}",
      method,
      model.source,
      model.layers_unavailable.empty() ? std::string("no layer list") : model.layers_unavailable);
  return *model.layers;
}

std::string default_zoo_dir() {
  if (const char* dir = std::getenv("BOUNDBENCH_ZOO_DIR"); dir && *dir) {
    return dir;
  }
  return (std::filesystem::path(BOUNDBENCH_SOURCE_DIR) / "models" / "zoo").string();
}

nlohmann::json read_manifest(const std::string& zoo_dir) {
  const std::string path = manifest_path(zoo_dir);
  if (!std::filesystem::exists(path)) {
    return nlohmann::json{{"models", nlohmann::json::array()}};
  }
  std::ifstream in(path);
  BB_CHECK(in.good(), "{}: cannot open for reading", path);
  nlohmann::json manifest;
  try {
    in >> manifest;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: malformed JSON: {}", path, e.what()));
  }
  BB_CHECK(
      manifest.is_object() && manifest.contains("models") && manifest["models"].is_array(),
      "{}: expected an object with a \"models\" array",
      path);
  return manifest;
}

void update_manifest(const std::string& zoo_dir, const nlohmann::json& entry) {
  auto manifest = read_manifest(zoo_dir);
  auto& models = manifest["models"];
  bool replaced = false;
  for (auto& existing : models) {
    if (existing.value("name", "") == entry.at("name")) {
      existing = entry;
      replaced = true;
    }
  }
  if (!replaced) {
    models.push_back(entry);
  }
  std::sort(models.begin(), models.end(), [](const auto& a, const auto& b) {
    return a.value("name", "") < b.value("name", "");
  });
  write_atomically(manifest_path(zoo_dir), manifest.dump(2) + "\n");
}

torch::nn::Sequential load_checkpoint(const std::string& architecture_name, const std::string& path) {
  const Architecture& arch = architecture(architecture_name);
  auto net = build_network(arch, /*for_training=*/false);
  try {
    torch::load(net, path);
  } catch (const c10::Error& e) {
    const std::string reason = e.what_without_backtrace();
    throw Error(fmt::format(
        "{}: not a checkpoint of architecture {} ({})",
        path,
        arch.name,
        reason.substr(0, reason.find('\n'))));
  }
  return net;
}

Model load_model(
    const std::string& name_or_path,
    const std::string& dataset,
    torch::Device device,
    const std::string& zoo_dir) {
  if (looks_like_file(name_or_path)) {
    BB_CHECK(!dataset.empty(), "--dataset is required with a TorchScript model ({})", name_or_path);
    try {
      Model model = load_torchscript(name_or_path, spec_of(dataset), device);
      check_first_batch(model, name_or_path);
      return model;
    } catch (const Error&) {
      // A zoo checkpoint (torch::save, no forward method) given as a file:
      // say which name loads it.
      std::string zoo_name;
      try {
        const std::string digest = sha256_file(name_or_path);
        const auto manifest = read_manifest(zoo_dir);
        for (const auto& m : manifest["models"]) {
          if (m.value("sha256", "") == digest) {
            zoo_name = m.value("name", "");
          }
        }
      } catch (const std::exception&) {
        // Not readable, or no zoo: the loader's own error stands.
      }
      BB_CHECK(
          zoo_name.empty(),
          "{}: the zoo checkpoint of {}, not a TorchScript module; use --model {}",
          name_or_path,
          zoo_name,
          zoo_name);
      throw;
    }
  }
  const Architecture& arch = architecture(name_or_path);
  const std::string data = dataset.empty() ? arch.dataset : dataset;
  const InputSpec spec = spec_of(data);
  BB_CHECK(
      spec.shape == dataset_info(arch.dataset).shape,
      "--dataset {}: inputs of shape [{}] do not fit model {} (trained on {}, shape [{}])",
      data,
      fmt::join(spec.shape, ", "),
      arch.name,
      arch.dataset,
      fmt::join(dataset_info(arch.dataset).shape, ", "));
  const auto manifest = read_manifest(zoo_dir);
  const nlohmann::json* entry = nullptr;
  std::vector<std::string> trained;
  for (const auto& m : manifest["models"]) {
    trained.push_back(m.value("name", "?"));
    if (m.value("name", "") == arch.name) {
      entry = &m;
    }
  }
  BB_CHECK(
      entry != nullptr,
      "--model {}: not in the zoo manifest {} (trained: {}); train it with "
      "`boundbench train --model {} --out {} --manifest`",
      arch.name,
      manifest_path(zoo_dir),
      trained.empty() ? std::string("none") : fmt::format("{}", fmt::join(trained, ", ")),
      arch.name,
      (std::filesystem::path(zoo_dir) / (arch.name + ".pt")).string());
  const std::string path =
      (std::filesystem::path(zoo_dir) / entry->value("file", arch.name + ".pt")).string();
  BB_CHECK(std::filesystem::exists(path), "{}: checkpoint not found", path);
  const std::string digest = sha256_file(path);
  const std::string expected = entry->value("sha256", "");
  BB_CHECK(
      digest == expected,
      "{}: sha256 mismatch (manifest {}, file {})",
      path,
      expected,
      digest);
  auto net = load_checkpoint(arch.name, path);
  Model model{
      Classifier::from_module(net, spec, device, arch.name),
      arch.name,
      digest,
      layers_of(net),
      "",
      *entry};
  check_first_batch(model, path);
  return model;
}

}  // namespace bb
