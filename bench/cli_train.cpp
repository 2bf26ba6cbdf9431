// boundbench train: trains a zoo architecture and writes the checkpoint, its
// metadata record and (with --manifest) the zoo manifest entry.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <torch/torch.h>

#include "bench/cli.h"
#include "core/error.h"
#include "core/io.h"
#include "core/runtime.h"
#include "core/sha256.h"
#include "datasets/dataset.h"
#include "models/architectures.h"
#include "models/train.h"
#include "models/zoo.h"

namespace bb::cli {
namespace {

// Whether two output paths land on the same file (symbolic links followed).
bool same_file(const std::string& a, const std::string& b) {
  const auto where = [](const std::string& path) {
    return std::filesystem::absolute(output_target(path)).lexically_normal();
  };
  return where(a) == where(b);
}

std::string architectures_help() {
  std::vector<std::string> names;
  for (const auto& arch : architectures()) {
    names.push_back(arch.name);
  }
  return fmt::format("zoo architecture: {}", fmt::join(names, ", "));
}

}  // namespace

int run_train(const Args& args) {
  namespace po = boost::program_options;
  std::string model_name;
  std::string dataset;
  std::string out;
  std::string device_name;
  std::string data_dir;
  std::string seed_text;
  int64_t epochs = 0;
  po::options_description options("boundbench train");
  options.add_options()
      ("model", po::value(&model_name)->required(), architectures_help().c_str())
      ("dataset", po::value(&dataset), "data set (default: the model's own)")
      ("epochs", po::value(&epochs)->default_value(0), "epochs (0: the architecture's recipe)")
      ("seed", po::value(&seed_text)->default_value("0"), "random seed, 0 to 2^64 - 1")
      ("out", po::value(&out)->required(),
       "checkpoint path (*.pt); its metadata record goes to the same path with the extension .json")
      ("manifest", "also record the model in manifest.json of the checkpoint's folder (a zoo: "
                   "point BOUNDBENCH_ZOO_DIR there to load it by name)")
      ("device", po::value(&device_name)->default_value("cpu"), "cpu, cuda or cuda:N")
      ("data-dir", po::value(&data_dir), fmt::format("data folder (default: {})", data_dir_help()).c_str());
  po::variables_map values;
  if (!parse(args, options, values, "usage: boundbench train --model NAME --out PATH [--epochs N] [--seed S]")) {
    return 0;
  }
  const Architecture& arch = architecture(model_name);
  if (dataset.empty()) {
    dataset = arch.dataset;
  }
  BB_CHECK(
      dataset_info(dataset).shape == dataset_info(arch.dataset).shape,
      "--dataset {}: its images do not fit model {} (made for {})",
      dataset,
      arch.name,
      arch.dataset);
  BB_CHECK(epochs >= 0, "--epochs: must be >= 0, got {}", epochs);
  const uint64_t seed = parse_seed(seed_text);
  // Every file this run writes is checked before training: the checkpoint,
  // its metadata record and the manifest must be writable and distinct.
  check_output_path(out, "--out");
  const auto out_path = std::filesystem::absolute(out);
  const std::string checkpoint = out_path.string();
  const std::string metadata = std::filesystem::path(checkpoint).replace_extension(".json").string();
  BB_CHECK(
      !same_file(checkpoint, metadata),
      "--out {}: the metadata record goes to {} too; give the checkpoint another extension (*.pt)",
      out,
      metadata);
  check_output_path(metadata, "--out (its metadata record)");
  const std::string zoo = out_path.parent_path().string();
  const bool manifest = values.count("manifest") > 0;
  if (manifest) {
    const std::string manifest_file = (out_path.parent_path() / "manifest.json").string();
    BB_CHECK(
        !same_file(checkpoint, manifest_file),
        "--out {}: the checkpoint would overwrite the zoo manifest {}",
        out,
        manifest_file);
    BB_CHECK(
        !same_file(metadata, manifest_file),
        "--out {}: the metadata record {} would overwrite the zoo manifest",
        out,
        metadata);
    check_output_path(manifest_file, "--manifest");
    read_manifest(zoo);  // a malformed manifest is refused now, not after training
  }
  const torch::Device device = parse_device(device_name);
  if (data_dir.empty()) {
    data_dir = default_data_dir();
  }
  const Dataset train = load_dataset(dataset, "train", data_dir);
  const Dataset test = load_dataset(dataset, "test", data_dir);

  TrainOptions train_options;
  train_options.epochs = epochs;
  train_options.seed = seed;
  train_options.device = device;
  const int64_t total_epochs = epochs > 0 ? epochs : arch.epochs;
  train_options.on_epoch = [&](int64_t epoch, double loss, double seconds) {
    std::cout << fmt::format(
                     "{} epoch {}/{}: training loss {:.4f}, {:.1f} s", arch.name, epoch,
                     total_epochs, loss, seconds)
              << std::endl;
  };
  Stopwatch watch(device);
  auto net = train_network(arch, train.images, train.labels, train_options);
  const double train_seconds = watch.seconds();
  const double test_accuracy = accuracy(net, test.images, test.labels, device);

  net->to(torch::kCPU);
  std::ostringstream serialized;
  torch::save(net, serialized);
  const std::string checkpoint_bytes = serialized.str();
  int64_t parameters = 0;
  for (const auto& p : net->parameters()) {
    parameters += p.numel();
  }
  nlohmann::json entry{
      {"name", arch.name},
      {"file", out_path.filename().string()},
      {"architecture", arch.family},
      {"activation", activation_name(arch.activation)},
      {"dataset", dataset},
      {"seed", seed},
      {"epochs", total_epochs},
      {"parameters", parameters},
      {"test_accuracy", test_accuracy},
      {"train_seconds", train_seconds},
      {"device", device.str()},
      {"threads", at::get_num_threads()},
      {"libtorch", torch_version()},
      {"sha256", sha256_bytes(checkpoint_bytes)},
  };
  if (arch.activation == Activation::Softplus) {
    entry["softplus_beta"] = arch.softplus_beta;
  }
  // The checkpoint and its record together; the manifest after them.
  write_atomically({{checkpoint, checkpoint_bytes}, {metadata, entry.dump(2) + "\n"}});
  if (manifest) {
    update_manifest(zoo, entry);
  }
  std::cout << fmt::format(
      "{}: test accuracy {:.2f}% on {} {} images; trained {} epochs in {:.0f} s; wrote {} "
      "(sha256 {})\n",
      arch.name,
      100 * test_accuracy,
      test.images.size(0),
      dataset,
      total_epochs,
      train_seconds,
      checkpoint,
      entry["sha256"].get<std::string>());
  return 0;
}

}  // namespace bb::cli
