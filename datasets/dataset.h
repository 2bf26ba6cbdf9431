// Validated readers for MNIST and Fashion-MNIST (IDX) and CIFAR-10 (binary
// records), and the catalogue of data sets by name. Images come back as float
// tensors in [0, 1] of shape [N, C, H, W], labels as int64 [N]. The files are
// fetched, with their checksums checked, by datasets/fetch.sh.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

namespace bb {

struct DatasetInfo {
  std::string name;                      // "mnist", "fashion-mnist", "cifar10"
  std::vector<int64_t> shape;            // one image: C, H, W
  std::vector<std::string> class_names;  // in label order
  int64_t train_size = 0;
  int64_t test_size = 0;
};

struct Dataset {
  DatasetInfo info;
  std::string split;     // "train" or "test"
  torch::Tensor images;  // [N, C, H, W] float32 in [0, 1]
  torch::Tensor labels;  // [N] int64
};

// Every data set the suite knows, in a fixed order.
const std::vector<DatasetInfo>& dataset_catalog();
// The entry for `name`; an unknown name is a bb::Error listing the valid ones.
const DatasetInfo& dataset_info(const std::string& name, const std::string& what = "--dataset");

// $BOUNDBENCH_DATA_DIR, else $XDG_CACHE_HOME/boundbench, else ~/.cache/boundbench.
std::string default_data_dir();

// Loads a split ("train" or "test") of a catalogued data set from data_dir,
// where datasets/fetch.sh put it. Missing files say how to fetch them.
Dataset load_dataset(
    const std::string& name,
    const std::string& split,
    const std::string& data_dir);

// The readers themselves, for any file of the format.
// IDX images (magic 2051): [N, 1, rows, cols] float in [0, 1].
torch::Tensor read_idx_images(const std::string& path);
// IDX labels (magic 2049): [N] int64, each checked < num_classes.
torch::Tensor read_idx_labels(const std::string& path, int64_t num_classes);
// CIFAR-10 binary batches (records of 1 label byte + 3 x 32 x 32 bytes),
// concatenated in order: images [N, 3, 32, 32] and labels [N].
std::pair<torch::Tensor, torch::Tensor> read_cifar10_batches(
    const std::vector<std::string>& paths);

}  // namespace bb
