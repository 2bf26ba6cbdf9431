// Shards and merge: the slicing of a run into shards (every unit in exactly
// one shard, in the unsharded order, round robin), --shard parsing, and
// boundbench merge on planted shard folders (no model work: the order of the
// merged records, the merged run.json, and refusals that leave nothing).
// tests/test_shard.sh runs real shards and compares them with an unsharded run.
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "harness/merge.h"
#include "harness/records.h"
#include "harness/runner.h"
#include "tests/helpers.h"

namespace bb {
namespace {

namespace fs = std::filesystem;

TEST(Shard, ParsesIOverN) {
  const Shard s = parse_shard("3/8");
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 8);
  EXPECT_EQ(shard_name(s), "3/8");
  EXPECT_TRUE(parse_shard("0/1").takes(5));
  EXPECT_FALSE(Shard{}.active());
  EXPECT_TRUE(Shard{}.takes(7));
  for (const char* bad : {"", "1", "1/", "/2", "a/b", "-1/3", "1/2/3", "1 /2", "+1/2", "1.0/2"}) {
    testing::expect_error([&] { parse_shard(bad); }, {"--shard", "expected I/N"});
  }
  testing::expect_error([&] { parse_shard("4/4"); }, {"--shard 4/4", "counted from 0", "0 to 3"});
  testing::expect_error([&] { parse_shard("0/0"); }, {"--shard 0/0", "at least 1"});
}

RunConfig three_by_two() {
  RunConfig config;
  config.models = {"a", "b"};
  config.norms = {Norm::L1, Norm::L2, Norm::Linf};
  config.methods = {"deepfool"};
  config.samples = 7;
  config.batch = 3;
  return config;
}

// The units: (model, norm, batch) in the unsharded run's order; batches of
// 3, 3 and 1 samples.
TEST(Shard, UnitsAreTheUnshardedRunsBatches) {
  const RunConfig config = three_by_two();
  const auto units = work_units(config);
  ASSERT_EQ(units.size(), 2u * 3u * 3u);
  size_t u = 0;
  for (size_t m = 0; m < 2; ++m) {
    for (size_t k = 0; k < 3; ++k) {
      for (int64_t begin : {0, 3, 6}) {
        EXPECT_EQ(units[u].model, m);
        EXPECT_EQ(units[u].norm, k);
        EXPECT_EQ(units[u].begin, begin);
        EXPECT_EQ(units[u].end, std::min<int64_t>(begin + 3, 7));
        ++u;
      }
    }
  }
}

// Any number of shards: every unit in exactly one shard, a shard's units in
// the unsharded order, shard sizes within one of each other (round robin),
// and the slice the same every time it is computed. More shards than units:
// the extra shards are empty.
TEST(Shard, EveryUnitInExactlyOneShard) {
  RunConfig config = three_by_two();
  for (int64_t batch : {1, 3, 7, 20}) {
    config.batch = batch;
    const auto all = work_units(config);
    for (int64_t n = 1; n <= 40; ++n) {
      std::multiset<std::tuple<size_t, size_t, int64_t>> seen;
      size_t smallest = all.size();
      size_t largest = 0;
      for (int64_t i = 0; i < n; ++i) {
        const auto mine = shard_units(config, Shard{i, n});
        EXPECT_EQ(mine.size(), shard_units(config, Shard{i, n}).size());
        smallest = std::min(smallest, mine.size());
        largest = std::max(largest, mine.size());
        size_t at = 0;  // position in the unsharded order
        for (const auto& unit : mine) {
          while (at < all.size() &&
                 !(all[at].model == unit.model && all[at].norm == unit.norm && all[at].begin == unit.begin)) {
            ++at;
          }
          ASSERT_LT(at, all.size()) << "shard " << i << "/" << n << " out of order";
          EXPECT_EQ(static_cast<int64_t>(at) % n, i) << "round robin";
          seen.insert({unit.model, unit.norm, unit.begin});
        }
      }
      EXPECT_EQ(seen.size(), all.size()) << "batch " << batch << ", " << n << " shards";
      for (const auto& unit : all) {
        EXPECT_EQ(seen.count({unit.model, unit.norm, unit.begin}), 1u);
      }
      EXPECT_LE(largest - smallest, 1u);
      if (n > static_cast<int64_t>(all.size())) {
        EXPECT_EQ(smallest, 0u);
      }
    }
  }
}

// Planted shard folders of a run: model "m", norms L2 and Linf, methods pgd
// (an attack) and crown-radius (a certified bound), 3 samples (test images
// 10, 12, 15) in batches of 2: units (L2, {10, 12}), (L2, {15}), (Linf,
// {10, 12}), (Linf, {15}); 2 shards take units 0, 2 and 1, 3.
class PlantedShards : public ::testing::Test {
 protected:
  const std::vector<std::string> norms{"L2", "Linf"};
  const std::vector<std::string> methods{"pgd", "crown-radius"};
  const std::vector<int64_t> selected{10, 12, 15};

  nlohmann::json config() const {
    return {{"models", {"m"}}, {"dataset", ""}, {"norms", norms}, {"methods", methods}, {"options", {{"pgd.steps", "40"}}},
            {"samples", 3}, {"selection", "correct"}, {"seed", 0}, {"device", "cpu"}};
  }
  static nlohmann::json record(const std::string& norm, const std::string& method, int64_t sample) {
    const bool attack = method == "pgd";
    return {{"model", "m"}, {"model_sha256", "abc"}, {"dataset", "mnist"}, {"norm", norm}, {"sample", sample},
            {"label", 1}, {"predicted", 1}, {"method", method}, {"name", method + "(...)"},
            {"kind", attack ? "attack" : "bound"}, {"certified", !attack}, {"success", true},
            {"value", (attack ? 1.0 : 0.5) + static_cast<double>(sample) / 100}, {"seconds", 0.25},
            {"gradients", 3}, {"seed", 0}};
  }
  // The records of shard i of 2, each unit's in the order a resumed run may
  // leave them (crown-radius before pgd, samples backwards).
  std::vector<nlohmann::json> shard_records(int64_t i) const {
    std::vector<nlohmann::json> out;
    for (size_t k = 0; k < norms.size(); ++k) {
      const std::vector<int64_t> samples = i == 0 ? std::vector<int64_t>{12, 10} : std::vector<int64_t>{15};
      for (auto method = methods.rbegin(); method != methods.rend(); ++method) {
        for (int64_t s : samples) {
          out.push_back(record(norms[k], *method, s));
        }
      }
    }
    return out;
  }
  void plant(const std::string& dir, int64_t i, int64_t n, const std::vector<nlohmann::json>& records,
             bool finished = true) const {
    fs::create_directories(dir);
    nlohmann::json run{
        {"config", config()},
        {"command_line", "boundbench run --shard"},
        {"started", fmt::format("2026-11-30T10:0{}:00+0000", i)},
        {"environment", {{"host", fmt::format("node{}", i)}, {"batch", 2}, {"threads", 2}}},
        {"models", {{"m", {{"sha256", "abc"}, {"dataset", "mnist"}, {"source", "zoo"}}}}},
        {"skipped", nlohmann::json::array()},
        {"shard", {{"index", i}, {"count", n}, {"batch", 2}, {"units", 2}, {"total_units", 4},
                   {"selected", {{"m", selected}}}}},
        {"records", records.size()},
    };
    if (finished) {
      run["finished"] = fmt::format("2026-11-30T1{}:00:00+0000", 2 - i);
    }
    std::ofstream(dir + "/run.json") << run.dump(2) << "\n";
    std::ofstream out(dir + "/samples.jsonl");
    for (const auto& r : records) {
      out << r.dump() << "\n";
    }
  }
  // The folder holds nothing but `keep` (no output, no temporary folder).
  static void expect_only(const fs::path& dir, const std::set<std::string>& keep) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      EXPECT_TRUE(keep.count(entry.path().filename().string())) << "left behind: " << entry.path();
    }
  }
};

TEST_F(PlantedShards, MergeWritesTheUnshardedOrder) {
  testing::TempDir dir;
  plant(dir.file("s0"), 0, 2, shard_records(0));
  plant(dir.file("s1"), 1, 2, shard_records(1));
  const MergeOutcome merged = merge_shards({dir.file("s1"), dir.file("s0")}, dir.file("out"), "merge test");
  // Model, norm, batch, method, sample: what an uninterrupted unsharded run writes.
  std::vector<std::tuple<std::string, std::string, int64_t>> expected;
  for (const auto& norm : norms) {
    for (const auto& batch : {std::vector<int64_t>{10, 12}, std::vector<int64_t>{15}}) {
      for (const auto& method : methods) {
        for (int64_t s : batch) {
          expected.push_back({norm, method, s});
        }
      }
    }
  }
  const auto records = read_records(dir.file("out/samples.jsonl"));
  ASSERT_EQ(records.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(records[i], record(std::get<0>(expected[i]), std::get<1>(expected[i]), std::get<2>(expected[i])))
        << "line " << i + 1;
  }
  EXPECT_EQ(merged.records, records);
  EXPECT_EQ(merged.shards, 2);
  // summary.csv: summarise() over the merged records.
  std::ifstream csv(dir.file("out/summary.csv"));
  const std::string text((std::istreambuf_iterator<char>(csv)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, summary_csv(summarise(records)));
  EXPECT_EQ(merged.summary.rows.size(), 4u);
  // run.json: shard 0's description, the span of the shards' times, every shard.
  const auto run = nlohmann::json::parse(std::ifstream(dir.file("out/run.json")));
  EXPECT_FALSE(run.contains("shard"));
  EXPECT_EQ(run.at("config"), config());
  EXPECT_EQ(run.at("command_line"), "merge test");
  EXPECT_EQ(run.at("started"), "2026-11-30T10:00:00+0000");
  EXPECT_EQ(run.at("finished"), "2026-11-30T12:00:00+0000");
  EXPECT_EQ(run.at("records"), 12);
  EXPECT_EQ(run.at("environment").at("host"), "node0");
  ASSERT_EQ(run.at("merged").at("shards").size(), 2u);
  EXPECT_EQ(run.at("merged").at("shards")[1].at("shard"), "1/2");
  EXPECT_EQ(run.at("merged").at("shards")[1].at("environment").at("host"), "node1");
  // Other hosts are no concern; other thread counts are noted.
  EXPECT_TRUE(merged.notes.empty());
  {
    auto run1 = nlohmann::json::parse(std::ifstream(dir.file("s1/run.json")));
    run1["environment"]["threads"] = 1;
    std::ofstream(dir.file("s1/run.json")) << run1.dump();
  }
  const MergeOutcome noted = merge_shards({dir.file("s0"), dir.file("s1")}, dir.file("out2"), "merge test");
  ASSERT_EQ(noted.notes.size(), 1u);
  EXPECT_EQ(noted.notes[0], "threads: 2 in shard 0/2, 1 in shard 1/2");
  expect_only(dir.path(), {"s0", "s1", "out", "out2"});
}

// Refusals name the folder and leave nothing behind.
TEST_F(PlantedShards, MergeRefusesBadShards) {
  testing::TempDir dir;
  plant(dir.file("s0"), 0, 2, shard_records(0));
  plant(dir.file("s1"), 1, 2, shard_records(1));
  const std::string out = dir.file("out");
  const std::string s0 = dir.file("s0");
  const std::string s1 = dir.file("s1");
  testing::expect_error([&] { merge_shards({s0, s0, s1}, out, "t"); }, {s0 + " and " + s0 + " are both shard 0/2"});
  testing::expect_error([&] { merge_shards({s1}, out, "t"); }, {"shard 0/2 is missing (given: 1/2)"});
  testing::expect_error([&] { merge_shards({}, out, "t"); }, {"no shard folders"});
  // Unfinished.
  plant(dir.file("running"), 1, 2, shard_records(1), false);
  testing::expect_error([&] { merge_shards({s0, dir.file("running")}, out, "t"); },
                        {dir.file("running") + ": shard 1/2 did not finish", "--resume"});
  // A record lost from a finished shard (run.json's count agrees): incomplete.
  auto lost = shard_records(1);
  lost.pop_back();
  plant(dir.file("lost"), 1, 2, lost);
  testing::expect_error([&] { merge_shards({s0, dir.file("lost")}, out, "t"); },
                        {dir.file("lost") + " lacks the record of m Linf pgd sample 15 (shard 1/2)"});
  // A record of another shard's unit.
  auto foreign = shard_records(1);
  foreign.push_back(record("L2", "pgd", 10));
  plant(dir.file("foreign"), 1, 2, foreign);
  testing::expect_error([&] { merge_shards({s0, dir.file("foreign")}, out, "t"); },
                        {"line 5", "m L2 sample 10 belongs to shard 0/2, not 1/2"});
  // A record twice.
  auto twice = shard_records(1);
  twice.push_back(twice.front());
  plant(dir.file("twice"), 1, 2, twice);
  testing::expect_error([&] { merge_shards({s0, dir.file("twice")}, out, "t"); }, {"recorded twice"});
  // Another selection of test images (another machine's rounding, say).
  plant(dir.file("other"), 1, 2, shard_records(1));
  {
    auto run = nlohmann::json::parse(std::ifstream(dir.file("other/run.json")));
    run["shard"]["selected"]["m"] = {10, 12, 16};
    std::ofstream(dir.file("other/run.json")) << run.dump();
  }
  testing::expect_error([&] { merge_shards({s0, dir.file("other")}, out, "t"); },
                        {"selected other test images for model m"});
  // The output folder in use.
  fs::create_directories(dir.file("taken"));
  std::ofstream(dir.file("taken/x")) << "x";
  testing::expect_error([&] { merge_shards({s0, s1}, dir.file("taken"), "t"); }, {"--out", "not empty"});
  expect_only(dir.path(), {"s0", "s1", "running", "lost", "foreign", "twice", "other", "taken"});
}

}  // namespace
}  // namespace bb
