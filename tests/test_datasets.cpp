// The data readers on tiny files written here: valid files read back exactly,
// malformed ones are rejected with a message naming the file. When the real
// data sets are in the cache, their shapes and first labels are checked too.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "datasets/dataset.h"
#include "tests/helpers.h"

namespace bb {
namespace {

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(v >> shift));
  }
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> idx_images(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols, size_t pixels) {
  std::vector<uint8_t> out;
  put_u32(out, magic);
  put_u32(out, count);
  put_u32(out, rows);
  put_u32(out, cols);
  for (size_t i = 0; i < pixels; ++i) {
    out.push_back(static_cast<uint8_t>(i * 37 % 256));
  }
  return out;
}

std::vector<uint8_t> idx_labels(uint32_t magic, uint32_t count, std::vector<uint8_t> labels) {
  std::vector<uint8_t> out;
  put_u32(out, magic);
  put_u32(out, count);
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

TEST(IdxReader, ReadsValidFiles) {
  testing::TempDir dir;
  write_bytes(dir.file("img"), idx_images(2051, 3, 2, 2, 12));
  write_bytes(dir.file("lab"), idx_labels(2049, 3, {4, 0, 9}));
  auto images = read_idx_images(dir.file("img"));
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{3, 1, 2, 2}));
  EXPECT_EQ(images.scalar_type(), torch::kFloat32);
  EXPECT_FLOAT_EQ(images[1][0][0][1].item<float>(), (5 * 37 % 256) / 255.0f);
  auto labels = read_idx_labels(dir.file("lab"), 10);
  EXPECT_TRUE(torch::equal(labels, torch::tensor({4, 0, 9}, torch::kInt64)));
}

TEST(IdxReader, RejectsMalformedFiles) {
  testing::TempDir dir;
  const auto wrong_magic = dir.file("wrong_magic");
  write_bytes(wrong_magic, idx_images(2049, 3, 2, 2, 12));
  testing::expect_error([&] { read_idx_images(wrong_magic); }, {wrong_magic, "2051", "2049"});
  const auto truncated = dir.file("truncated");
  write_bytes(truncated, idx_images(2051, 3, 2, 2, 11));
  testing::expect_error([&] { read_idx_images(truncated); }, {truncated, "28", "27"});
  const auto header_only = dir.file("header_only");
  write_bytes(header_only, {0, 0, 8, 3, 0});
  testing::expect_error([&] { read_idx_images(header_only); }, {header_only, "truncated"});
  const auto short_labels = dir.file("short_labels");
  write_bytes(short_labels, idx_labels(2049, 4, {1, 2, 3}));
  testing::expect_error([&] { read_idx_labels(short_labels, 10); }, {short_labels, "12", "11"});
  const auto big_label = dir.file("big_label");
  write_bytes(big_label, idx_labels(2049, 3, {1, 10, 3}));
  testing::expect_error([&] { read_idx_labels(big_label, 10); }, {big_label, "label 10", "0..9"});
  const auto missing = dir.file("missing");
  testing::expect_error([&] { read_idx_images(missing); }, {missing, "cannot open"});
}

TEST(IdxReader, LoaderRejectsCountMismatchAndWrongShape) {
  testing::TempDir dir;
  write_bytes(dir.file("mnist/t10k-images-idx3-ubyte"), idx_images(2051, 3, 28, 28, 3 * 784));
  write_bytes(dir.file("mnist/t10k-labels-idx1-ubyte"), idx_labels(2049, 2, {1, 2}));
  testing::expect_error(
      [&] { load_dataset("mnist", "test", dir.path().string()); },
      {"t10k-labels-idx1-ubyte", "2 labels for 3 images"});
  write_bytes(dir.file("fashion-mnist/t10k-images-idx3-ubyte"), idx_images(2051, 2, 27, 28, 2 * 27 * 28));
  write_bytes(dir.file("fashion-mnist/t10k-labels-idx1-ubyte"), idx_labels(2049, 2, {1, 2}));
  testing::expect_error(
      [&] { load_dataset("fashion-mnist", "test", dir.path().string()); },
      {"fashion-mnist", "[1, 27, 28]", "[1, 28, 28]"});
  testing::expect_error(
      [&] { load_dataset("mnist", "train", dir.path().string()); },
      {"train-images-idx3-ubyte", "not found",
       "`datasets/fetch.sh --data-dir " + dir.path().string() + " mnist`"});
  testing::expect_error(
      [&] { load_dataset("mnist", "valid", dir.path().string()); }, {"--split", "valid"});
  testing::expect_error(
      [&] { load_dataset("imagenet", "test", dir.path().string()); },
      {"'imagenet'", "mnist, fashion-mnist, cifar10"});
}

// 2^64 + 4 = 769546 x 494770 x 48448661: modulo 2^64 the header claims 4
// pixels, and the file has 4.
TEST(IdxReader, RejectsDimensionsWhoseProductWrapsAround) {
  testing::TempDir dir;
  const auto path = dir.file("wraps");
  write_bytes(path, idx_images(2051, 769546, 494770, 48448661, 4));
  testing::expect_error(
      [&] { read_idx_images(path); },
      {path, "header claims 769546 images of 494770x48448661 pixels", "file size 20 bytes"});
}

// A folder or a FIFO where a data file should be: refused by name (a folder
// used to read as a huge file, std::bad_alloc; a FIFO would block).
TEST(DataFiles, FoldersAndSpecialFilesAreRefusedByName) {
  testing::TempDir dir;
  const auto folder = dir.file("mnist/t10k-images-idx3-ubyte");
  std::filesystem::create_directories(folder);
  write_bytes(dir.file("mnist/t10k-labels-idx1-ubyte"), idx_labels(2049, 1, {1}));
  testing::expect_error([&] { read_idx_images(folder); }, {folder, "is a folder, not a data file"});
  testing::expect_error([&] { read_idx_labels(folder, 10); }, {folder, "is a folder"});
  testing::expect_error([&] { read_cifar10_batches({folder}); }, {folder, "is a folder"});
  testing::expect_error(
      [&] { load_dataset("mnist", "test", dir.path().string()); }, {folder, "is a folder"});
  const auto fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  testing::expect_error([&] { read_idx_labels(fifo, 10); }, {fifo, "is not a regular file"});
}

std::vector<uint8_t> cifar_records(std::vector<uint8_t> labels) {
  std::vector<uint8_t> out;
  for (uint8_t label : labels) {
    out.push_back(label);
    for (int plane = 0; plane < 3; ++plane) {
      for (int i = 0; i < 1024; ++i) {
        out.push_back(static_cast<uint8_t>(plane * 80 + i % 64));
      }
    }
  }
  return out;
}

TEST(CifarReader, ReadsRecordsPlaneByPlane) {
  testing::TempDir dir;
  write_bytes(dir.file("a.bin"), cifar_records({3, 8}));
  write_bytes(dir.file("b.bin"), cifar_records({0}));
  auto [images, labels] = read_cifar10_batches({dir.file("a.bin"), dir.file("b.bin")});
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(labels, torch::tensor({3, 8, 0}, torch::kInt64)));
  // Channel 2 (blue) of pixel (1, 5): plane 2, index 37.
  EXPECT_FLOAT_EQ(images[2][2][1][5].item<float>(), (160 + 37) / 255.0f);
}

TEST(CifarReader, RejectsWrongRecordSizeAndLabels) {
  testing::TempDir dir;
  auto bytes = cifar_records({1, 2});
  bytes.pop_back();
  write_bytes(dir.file("short.bin"), bytes);
  testing::expect_error(
      [&] { read_cifar10_batches({dir.file("short.bin")}); },
      {dir.file("short.bin"), "6145", "3073"});
  write_bytes(dir.file("label.bin"), cifar_records({1, 12}));
  testing::expect_error(
      [&] { read_cifar10_batches({dir.file("label.bin")}); },
      {dir.file("label.bin"), "label 12"});
}

// The real files, when the cache holds them (scripts/setup.sh fetches them).
bool have(const std::string& dataset, const std::string& file) {
  return std::filesystem::exists(std::filesystem::path(default_data_dir()) / dataset / file);
}

TEST(RealData, MnistTestSplit) {
  if (!have("mnist", "t10k-images-idx3-ubyte")) {
    GTEST_SKIP() << "MNIST not fetched";
  }
  auto data = load_dataset("mnist", "test", default_data_dir());
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(data.labels.slice(0, 0, 5), torch::tensor({7, 2, 1, 0, 4}, torch::kInt64)));
  EXPECT_EQ(torch::bincount(data.labels).min().item<int64_t>(), 892);  // class 5
}

TEST(RealData, CifarTestSplit) {
  if (!have("cifar10", "cifar-10-batches-bin/test_batch.bin")) {
    GTEST_SKIP() << "CIFAR-10 not fetched";
  }
  auto data = load_dataset("cifar10", "test", default_data_dir());
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{10000, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(data.labels.slice(0, 0, 5), torch::tensor({3, 8, 8, 0, 6}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(torch::bincount(data.labels), torch::full({10}, 1000, torch::kInt64)));
}

TEST(RealData, FashionMnistTestSplit) {
  if (!have("fashion-mnist", "t10k-images-idx3-ubyte")) {
    GTEST_SKIP() << "Fashion-MNIST not fetched";
  }
  auto data = load_dataset("fashion-mnist", "test", default_data_dir());
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(torch::bincount(data.labels), torch::full({10}, 1000, torch::kInt64)));
}

}  // namespace
}  // namespace bb
