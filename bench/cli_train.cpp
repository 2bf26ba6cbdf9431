// boundbench train: trains a zoo architecture and writes the checkpoint, its
// metadata record and (with --manifest) the zoo manifest entry.
#include <filesystem>
#include <fstream>
#include <iostream>

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
int run_train(const Args& args) {
  namespace po = boost::program_options;
  std::string model_name;
  std::string dataset;
  std::string out;
  std::string device_name;
  std::string data_dir;
  int64_t epochs = 0;
  uint64_t seed = 0;
  po::options_description options("boundbench train");
  options.add_options()
      ("model", po::value(&model_name)->required(), "zoo architecture, e.g. mnist-cnn-relu")
      ("dataset", po::value(&dataset), "data set (default: the model's own)")
      ("epochs", po::value(&epochs)->default_value(0), "epochs (0: the architecture's recipe)")
      ("seed", po::value(&seed)->default_value(0), "random seed")
      ("out", po::value(&out)->required(), "checkpoint path (*.pt); metadata goes to *.json beside it")
      ("manifest", "also record the model in manifest.json of the checkpoint's folder (the zoo)")
      ("device", po::value(&device_name)->default_value("cpu"), "cpu, cuda or cuda:N")
      ("data-dir", po::value(&data_dir), "data folder (default: $BOUNDBENCH_DATA_DIR, else the cache)");
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
  const auto out_path = std::filesystem::absolute(out);
  BB_CHECK(
      std::filesystem::is_directory(out_path.parent_path()),
      "--out {}: folder {} does not exist",
      out,
      out_path.parent_path().string());
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
  const std::string checkpoint = out_path.string();
  const std::string temporary = checkpoint + ".tmp";
  torch::save(net, temporary);
  std::filesystem::rename(temporary, checkpoint);
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
      {"sha256", sha256_file(checkpoint)},
  };
  if (arch.activation == Activation::Softplus) {
    entry["softplus_beta"] = arch.softplus_beta;
  }
  auto metadata = std::filesystem::path(checkpoint).replace_extension(".json").string();
  write_atomically(metadata, entry.dump(2) + "\n");
  if (values.count("manifest")) {
    update_manifest(out_path.parent_path().string(), entry);
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
