// boundbench data: loads one split of a data set through the validated reader
// and prints its shape, value range and class counts.
#include <iostream>

#include <torch/torch.h>

#include "bench/cli.h"
#include "core/error.h"
#include "core/runtime.h"
#include "datasets/dataset.h"

namespace bb::cli {

int run_data(const Args& args) {
  namespace po = boost::program_options;
  std::string dataset;
  std::string split;
  std::string data_dir;
  po::options_description options("boundbench data");
  options.add_options()
      ("dataset", po::value(&dataset)->required(), "mnist, fashion-mnist or cifar10")
      ("split", po::value(&split)->default_value("test"), "train or test")
      ("data-dir", po::value(&data_dir), fmt::format("data folder (default: {})", data_dir_help()).c_str());
  po::variables_map values;
  if (!parse(args, options, values, "usage: boundbench data --dataset NAME [--split test]")) {
    return 0;
  }
  if (data_dir.empty()) {
    data_dir = default_data_dir();
  }
  Stopwatch watch(torch::kCPU);
  const Dataset data = load_dataset(dataset, split, data_dir);
  const double seconds = watch.seconds();
  const auto counts = torch::bincount(data.labels, {}, data.info.class_names.size());
  std::cout << fmt::format(
      "{} {}: {} images of shape [{}], float32 in [{:.3f}, {:.3f}], mean {:.4f}; "
      "loaded from {} in {:.2f} s\n",
      data.info.name,
      data.split,
      data.images.size(0),
      fmt::join(data.info.shape, ", "),
      data.images.min().item<float>(),
      data.images.max().item<float>(),
      data.images.mean().item<float>(),
      data_dir,
      seconds);
  for (size_t j = 0; j < data.info.class_names.size(); ++j) {
    std::cout << fmt::format(
        "  class {} {:<12} {:>6}\n", j, data.info.class_names[j],
        counts[static_cast<int64_t>(j)].item<int64_t>());
  }
  return 0;
}

}  // namespace bb::cli
