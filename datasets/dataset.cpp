#include "datasets/dataset.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

// IDX magic numbers: unsigned byte data with 3 dimensions (images) or 1 (labels).
constexpr uint32_t kIdxImagesMagic = 2051;
constexpr uint32_t kIdxLabelsMagic = 2049;
// Bytes before the pixels of an IDX image file: magic, count, rows, cols.
constexpr size_t kIdxImagesHeader = 16;
// Bytes before the labels of an IDX label file: magic, count.
constexpr size_t kIdxLabelsHeader = 8;
// One CIFAR-10 record: the label byte and 3 x 32 x 32 pixel bytes.
constexpr size_t kCifarRecord = 1 + 3 * 32 * 32;
constexpr int64_t kCifarClasses = 10;

std::vector<uint8_t> read_file(const std::string& path) {
  // A folder or a FIFO opens as a stream too; its "size" is garbage.
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  BB_CHECK(
      std::filesystem::exists(status),
      "{}: cannot open for reading ({})",
      path,
      error ? error.message() : std::string("not found"));
  BB_CHECK(
      std::filesystem::is_regular_file(status),
      "{}: {}, not a data file",
      path,
      std::filesystem::is_directory(status) ? "is a folder" : "is not a regular file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  BB_CHECK(in.good(), "{}: cannot open for reading", path);
  const auto end = in.tellg();
  BB_CHECK(end >= 0, "{}: cannot read its size", path);
  const auto size = static_cast<size_t>(end);
  std::vector<uint8_t> bytes(size);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  BB_CHECK(in.good() || size == 0, "{}: read error", path);
  return bytes;
}

uint32_t big_endian_u32(const std::vector<uint8_t>& bytes, size_t offset) {
  return (uint32_t{bytes[offset]} << 24) | (uint32_t{bytes[offset + 1]} << 16) |
      (uint32_t{bytes[offset + 2]} << 8) | uint32_t{bytes[offset + 3]};
}

void expect_field(
    const std::string& path,
    const char* field,
    uint64_t expected,
    uint64_t found) {
  BB_CHECK(
      expected == found,
      "{}: expected {} {}, found {}",
      path,
      field,
      expected,
      found);
}

torch::Tensor bytes_to_tensor(const uint8_t* data, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<uint8_t*>(data), shape, torch::kUInt8).clone();
}

void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& path) {
  if (labels.numel() == 0) {
    return;
  }
  const int64_t largest = labels.max().item<int64_t>();
  BB_CHECK(
      largest < num_classes,
      "{}: label {} out of range (expected labels 0..{})",
      path,
      largest,
      num_classes - 1);
}

std::string join_path(const std::string& a, const std::string& b) {
  return (std::filesystem::path(a) / b).string();
}

// A path as a shell word: quoted unless it is made of safe characters only.
std::string shell_word(const std::string& text) {
  const bool safe = !text.empty() &&
      text.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-+=:,@%") ==
          std::string::npos;
  if (safe) {
    return text;
  }
  std::string quoted = "'";
  for (char ch : text) {
    quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  }
  return quoted + "'";
}

// The fetch command for `dataset` into `data_dir` (--data-dir only when it
// is not the default folder, which scripts/setup.sh fills too).
std::string fetch_hint(const std::string& dataset, const std::string& data_dir) {
  std::string default_dir;
  try {
    default_dir = default_data_dir();
  } catch (const Error&) {
  }
  const bool is_default = !default_dir.empty() &&
      std::filesystem::path(default_dir).lexically_normal() ==
          std::filesystem::path(data_dir).lexically_normal();
  return is_default
      ? fmt::format("`datasets/fetch.sh {}` (or scripts/setup.sh)", dataset)
      : fmt::format("`datasets/fetch.sh --data-dir {} {}`", shell_word(data_dir), dataset);
}

void require_file(const std::string& path, const std::string& dataset, const std::string& data_dir) {
  std::error_code error;
  BB_CHECK(
      std::filesystem::exists(path, error),
      "{}: data file not found; fetch it with {}",
      path,
      fetch_hint(dataset, data_dir));
}

}  // namespace

const std::vector<DatasetInfo>& dataset_catalog() {
  static const std::vector<DatasetInfo> catalog{
      {"mnist",
       {1, 28, 28},
       {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
       60000,
       10000},
      {"fashion-mnist",
       {1, 28, 28},
       {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
        "Shirt", "Sneaker", "Bag", "Ankle boot"},
       60000,
       10000},
      {"cifar10",
       {3, 32, 32},
       {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
        "horse", "ship", "truck"},
       50000,
       10000},
  };
  return catalog;
}

const DatasetInfo& dataset_info(const std::string& name, const std::string& what) {
  std::vector<std::string> names;
  for (const auto& info : dataset_catalog()) {
    if (info.name == name) {
      return info;
    }
    names.push_back(info.name);
  }
  throw Error(fmt::format(
      "{}: unknown data set '{}' (valid: {})", what, name, fmt::join(names, ", ")));
}

std::string default_data_dir() {
  if (const char* dir = std::getenv("BOUNDBENCH_DATA_DIR"); dir && *dir) {
    return dir;
  }
  if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache) {
    return join_path(cache, "boundbench");
  }
  const char* home = std::getenv("HOME");
  BB_CHECK(
      home && *home,
      "cannot locate the data cache: set BOUNDBENCH_DATA_DIR or HOME");
  return join_path(join_path(home, ".cache"), "boundbench");
}

torch::Tensor read_idx_images(const std::string& path) {
  const auto bytes = read_file(path);
  BB_CHECK(
      bytes.size() >= kIdxImagesHeader,
      "{}: truncated IDX header (expected at least {} bytes, found {})",
      path,
      kIdxImagesHeader,
      bytes.size());
  const uint32_t magic = big_endian_u32(bytes, 0);
  BB_CHECK(
      magic == kIdxImagesMagic,
      "{}: expected IDX image magic number {}, found {}{}",
      path,
      kIdxImagesMagic,
      magic,
      magic == kIdxLabelsMagic ? " (a label file)" : "");
  const uint64_t count = big_endian_u32(bytes, 4);
  const uint64_t rows = big_endian_u32(bytes, 8);
  const uint64_t cols = big_endian_u32(bytes, 12);
  BB_CHECK(rows > 0 && cols > 0, "{}: image size {}x{} is empty", path, rows, cols);
  // Three 32-bit fields: their product can pass 2^64 and wrap around to the
  // real size, so check it without wrapping.
  uint64_t pixels = 0;
  BB_CHECK(
      !__builtin_mul_overflow(count, rows * cols, &pixels) &&
          pixels <= std::numeric_limits<uint64_t>::max() - kIdxImagesHeader,
      "{}: header claims {} images of {}x{} pixels, more than any file holds (file size {} bytes)",
      path,
      count,
      rows,
      cols,
      bytes.size());
  expect_field(path, "file size (bytes)", kIdxImagesHeader + pixels, bytes.size());
  return bytes_to_tensor(
             bytes.data() + kIdxImagesHeader,
             {static_cast<int64_t>(count), 1, static_cast<int64_t>(rows),
              static_cast<int64_t>(cols)})
      .to(torch::kFloat32)
      .div_(255);
}

torch::Tensor read_idx_labels(const std::string& path, int64_t num_classes) {
  const auto bytes = read_file(path);
  BB_CHECK(
      bytes.size() >= kIdxLabelsHeader,
      "{}: truncated IDX header (expected at least {} bytes, found {})",
      path,
      kIdxLabelsHeader,
      bytes.size());
  const uint32_t magic = big_endian_u32(bytes, 0);
  BB_CHECK(
      magic == kIdxLabelsMagic,
      "{}: expected IDX label magic number {}, found {}{}",
      path,
      kIdxLabelsMagic,
      magic,
      magic == kIdxImagesMagic ? " (an image file)" : "");
  const uint64_t count = big_endian_u32(bytes, 4);
  expect_field(path, "file size (bytes)", kIdxLabelsHeader + count, bytes.size());
  auto labels = bytes_to_tensor(bytes.data() + kIdxLabelsHeader, {static_cast<int64_t>(count)})
                    .to(torch::kInt64);
  check_labels(labels, num_classes, path);
  return labels;
}

std::pair<torch::Tensor, torch::Tensor> read_cifar10_batches(
    const std::vector<std::string>& paths) {
  std::vector<torch::Tensor> images;
  std::vector<torch::Tensor> labels;
  for (const auto& path : paths) {
    const auto bytes = read_file(path);
    BB_CHECK(
        !bytes.empty() && bytes.size() % kCifarRecord == 0,
        "{}: file size {} is not a positive multiple of the {}-byte CIFAR-10 record",
        path,
        bytes.size(),
        kCifarRecord);
    const auto count = static_cast<int64_t>(bytes.size() / kCifarRecord);
    auto records = bytes_to_tensor(bytes.data(), {count, static_cast<int64_t>(kCifarRecord)});
    auto batch_labels = records.select(1, 0).to(torch::kInt64);
    check_labels(batch_labels, kCifarClasses, path);
    labels.push_back(batch_labels);
    images.push_back(records.narrow(1, 1, kCifarRecord - 1)
                         .reshape({count, 3, 32, 32})
                         .to(torch::kFloat32)
                         .div_(255));
  }
  BB_ASSERT(!paths.empty(), "no CIFAR-10 batch given");
  return {torch::cat(images), torch::cat(labels)};
}

Dataset load_dataset(
    const std::string& name,
    const std::string& split,
    const std::string& data_dir) {
  const DatasetInfo& info = dataset_info(name);
  BB_CHECK(
      split == "train" || split == "test",
      "--split: unknown split '{}' (valid: train, test)",
      split);
  Dataset data{info, split, {}, {}};
  const std::string folder = join_path(data_dir, info.name);
  if (info.name == "cifar10") {
    std::vector<std::string> paths;
    if (split == "train") {
      for (int i = 1; i <= 5; ++i) {
        paths.push_back(join_path(folder, fmt::format("cifar-10-batches-bin/data_batch_{}.bin", i)));
      }
    } else {
      paths.push_back(join_path(folder, "cifar-10-batches-bin/test_batch.bin"));
    }
    for (const auto& path : paths) {
      require_file(path, info.name, data_dir);
    }
    std::tie(data.images, data.labels) = read_cifar10_batches(paths);
  } else {
    const std::string prefix = split == "train" ? "train" : "t10k";
    const std::string images = join_path(folder, prefix + "-images-idx3-ubyte");
    const std::string labels = join_path(folder, prefix + "-labels-idx1-ubyte");
    require_file(images, info.name, data_dir);
    require_file(labels, info.name, data_dir);
    data.images = read_idx_images(images);
    data.labels = read_idx_labels(labels, static_cast<int64_t>(info.class_names.size()));
    BB_CHECK(
        data.images.size(0) == data.labels.size(0),
        "{}: {} labels for {} images in {}",
        labels,
        data.labels.size(0),
        data.images.size(0),
        images);
  }
  const auto shape = data.images.sizes().slice(1).vec();
  BB_CHECK(
      shape == info.shape,
      "{}: images of shape [{}], expected [{}]",
      folder,
      fmt::join(shape, ", "),
      fmt::join(info.shape, ", "));
  const int64_t expected = split == "train" ? info.train_size : info.test_size;
  BB_CHECK(
      data.images.size(0) == expected,
      "{}: {} {} images, expected {}",
      folder,
      data.images.size(0),
      split,
      expected);
  return data;
}

}  // namespace bb
