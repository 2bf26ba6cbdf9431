// boundbench compare on two runtime-suite JSON files (harness/micro_compare.h):
// every regression rule on its boundary, the listing of new and skipped
// benchmarks, and malformed files refused naming the file.
#include <gtest/gtest.h>

#include "core/error.h"
#include "harness/micro_compare.h"
#include "tests/helpers.h"

namespace bb {
namespace {

nlohmann::json bench(const std::string& name, double ms, nlohmann::json counters = nlohmann::json::object()) {
  nlohmann::json b = {{"name", name}, {"real_time", ms * 1e6}, {"cpu_time", ms * 1e6}, {"time_unit", "ns"},
                      {"iterations", 1}};
  for (auto& [k, v] : counters.items()) {
    b[k] = v;
  }
  return b;
}

MicroFile file_of(const std::vector<nlohmann::json>& benchmarks, const std::string& name = "f.json") {
  nlohmann::json doc = {{"context", {{"host_name", "vm"}}}, {"benchmarks", benchmarks}};
  return parse_micro_json(doc.dump(), name);
}

const MicroComparisonRow& row(const MicroComparison& c, const std::string& name) {
  for (const auto& r : c.rows) {
    if (r.name == name) {
      return r;
    }
  }
  throw std::runtime_error("no row " + name);
}

TEST(MicroCompare, ReadsTimesInEveryUnitAndTheCounters) {
  nlohmann::json doc = {{"benchmarks",
                         {{{"name", "a"}, {"real_time", 2.5}, {"time_unit", "ms"}, {"ratio_to_fwd_bwd", 3.0}},
                          {{"name", "b"}, {"real_time", 1500.0}, {"time_unit", "us"}, {"iterations", 4}},
                          {{"name", "c"}, {"real_time", 2.0}, {"time_unit", "s"}},
                          {{"name", "d"}, {"error_occurred", true}, {"error_message", "skipped: about 90 s"}}}}};
  const MicroFile f = parse_micro_json(doc.dump(), "x.json");
  ASSERT_EQ(f.benchmarks.size(), 4u);
  EXPECT_DOUBLE_EQ(f.benchmarks[0].time, 2.5);
  EXPECT_DOUBLE_EQ(f.benchmarks[0].counters.at("ratio_to_fwd_bwd"), 3.0);
  EXPECT_DOUBLE_EQ(f.benchmarks[1].time, 1.5);
  EXPECT_EQ(f.benchmarks[1].counters.count("iterations"), 0u);  // not a counter
  EXPECT_DOUBLE_EQ(f.benchmarks[2].time, 2000.0);
  EXPECT_TRUE(f.benchmarks[3].skipped);
  EXPECT_EQ(f.benchmarks[3].message, "skipped: about 90 s");
}

TEST(MicroCompare, EachRuleFailsJustBeyondItsToleranceAndNotAtIt) {
  MicroCompareOptions o;  // time 0.5, distortion 0.05, tightness 0.05
  const auto base = file_of({
      bench("t", 10.0, {{"ratio_to_fwd_bwd", 2.0}}),
      bench("s", 10.0, {{"success_rate", 0.9}}),
      bench("d", 10.0, {{"median_distortion", 0.1}}),
      bench("m", 10.0, {{"median_bound", 0.2}}),
  });
  // At the tolerances: nothing regresses.
  auto at = compare_micro(
      base,
      file_of({bench("t", 15.0), bench("s", 10.0, {{"success_rate", 0.85}}),
               bench("d", 10.0, {{"median_distortion", 0.105}}), bench("m", 10.0, {{"median_bound", 0.19}})}),
      o);
  EXPECT_TRUE(at.passed()) << format_micro_comparison(at, o);
  EXPECT_NEAR(*row(at, "t").ratio, 1.5, 1e-12);
  // Just beyond: each one regresses, naming what.
  auto beyond = compare_micro(
      base,
      file_of({bench("t", 15.1), bench("s", 10.0, {{"success_rate", 0.84}}),
               bench("d", 10.0, {{"median_distortion", 0.1051}}), bench("m", 10.0, {{"median_bound", 0.1899}})}),
      o);
  EXPECT_EQ(beyond.regressions(), 4) << format_micro_comparison(beyond, o);
  EXPECT_NE(row(beyond, "t").problems.at(0).find("time"), std::string::npos);
  EXPECT_NE(row(beyond, "s").problems.at(0).find("success_rate"), std::string::npos);
  EXPECT_NE(row(beyond, "d").problems.at(0).find("median_distortion"), std::string::npos);
  EXPECT_NE(row(beyond, "m").problems.at(0).find("median_bound"), std::string::npos);
  // A quality counter gone (no success at all) regresses too.
  auto gone = compare_micro(base, file_of({bench("t", 1), bench("s", 1), bench("d", 1), bench("m", 1)}), o);
  EXPECT_EQ(gone.regressions(), 3);
  // Faster is never a regression; time unchecked ignores slower.
  o.check_time = false;
  EXPECT_TRUE(compare_micro(base, file_of({bench("t", 99.0), bench("s", 1, {{"success_rate", 0.9}}),
                                           bench("d", 1, {{"median_distortion", 0.1}}),
                                           bench("m", 1, {{"median_bound", 0.2}})}),
                            o)
                  .passed());
}

TEST(MicroCompare, TheRatioMetricComparesPassesNotTime) {
  MicroCompareOptions o;
  o.metric = "ratio";
  const auto base = file_of({bench("a", 10.0, {{"ratio_to_fwd_bwd", 2.0}})});
  // Three times slower on a slower machine, the same ratio: passes.
  EXPECT_TRUE(compare_micro(base, file_of({bench("a", 30.0, {{"ratio_to_fwd_bwd", 2.0}})}), o).passed());
  auto worse = compare_micro(base, file_of({bench("a", 10.0, {{"ratio_to_fwd_bwd", 3.1}})}), o);
  EXPECT_EQ(worse.regressions(), 1);
  EXPECT_NE(worse.rows[0].problems[0].find("ratio_to_fwd_bwd"), std::string::npos);
}

TEST(MicroCompare, MissingAndSkippedBenchmarks) {
  MicroCompareOptions o;
  nlohmann::json skipped = {{"name", "k"}, {"error_occurred", true}, {"error_message", "failed: boom"}};
  auto base_with_skip = file_of({bench("gone", 1.0), bench("k", 1.0),
                                 {{"name", "was_skipped"}, {"error_occurred", true}, {"error_message", "skipped"}}});
  auto c = compare_micro(base_with_skip, file_of({skipped, bench("was_skipped", 5.0), bench("new", 1.0)}), o);
  EXPECT_EQ(c.regressions(), 2) << format_micro_comparison(c, o);
  EXPECT_EQ(row(c, "gone").problems.at(0), "missing in NEW");
  EXPECT_NE(row(c, "k").problems.at(0).find("failed: boom"), std::string::npos);
  EXPECT_TRUE(row(c, "was_skipped").problems.empty());
  EXPECT_EQ(row(c, "was_skipped").note, "skipped in BASE: not compared");
  EXPECT_EQ(row(c, "new").note, "only in NEW");
  EXPECT_NE(format_micro_comparison(c, o).find("compare: FAIL: 2 of 4"), std::string::npos);
}

TEST(MicroCompare, MalformedFilesAreRefusedNamingTheFile) {
  testing::expect_error([] { parse_micro_json("{oops", "a.json"); }, {"a.json", "not JSON"});
  testing::expect_error([] { parse_micro_json("{\"context\": {}}", "b.json"); }, {"b.json", "benchmarks"});
  testing::expect_error(
      [] { parse_micro_json(R"({"benchmarks": [{"real_time": 1}]})", "c.json"); }, {"c.json", "no name"});
  testing::expect_error(
      [] { parse_micro_json(R"({"benchmarks": [{"name": "a"}]})", "d.json"); }, {"d.json", "'a'", "real_time"});
  testing::expect_error(
      [] { parse_micro_json(R"({"benchmarks": [{"name": "a", "real_time": 1}, {"name": "a", "real_time": 2}]})", "e.json"); },
      {"e.json", "'a' appears twice"});
  testing::expect_error(
      [] { parse_micro_json(R"({"benchmarks": [{"name": "a", "real_time": 1, "time_unit": "h"}]})", "f.json"); },
      {"f.json", "time_unit 'h'"});
  testing::expect_error([] { read_micro_json("/nonexistent/x.json"); }, {"/nonexistent/x.json", "no such file"});
  MicroCompareOptions o;
  o.metric = "speed";
  testing::expect_error([&] { check_micro_compare_options(o); }, {"--metric", "'speed'"});
  o = MicroCompareOptions{};
  o.time_tol = -1;
  testing::expect_error([&] { check_micro_compare_options(o); }, {"--time-tol"});
}

}  // namespace
}  // namespace bb
