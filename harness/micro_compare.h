// `boundbench compare BASE.json NEW.json`: two runs of the runtime suite
// (boundbench_micro --benchmark_out=FILE --benchmark_out_format=json, Google
// Benchmark's JSON), matched benchmark by benchmark (by name), each printed
// with its ratio NEW / BASE.
//
// A benchmark of both files regresses when, in NEW:
//  - its time per iteration (real_time, in the file's time unit) rises above
//    BASE x (1 + time_tol), unless check_time is off; or, with
//    metric = "ratio", its ratio_to_fwd_bwd counter (the cost in forward +
//    backward passes of the model on the same batch, measured in the same
//    process: comparable across machines) does;
//  - an attack's success_rate falls by more than distortion_tol (absolute),
//    or its median_distortion rises above BASE x (1 + distortion_tol);
//  - a bound's median_bound falls below BASE x (1 - tightness_tol);
//  - it failed or was skipped (error_occurred) where BASE ran it.
// A benchmark of BASE that NEW lacks regresses too; one only NEW has is
// listed, never a failure. Benchmarks skipped in BASE are listed, not
// compared. Repetition aggregates (_mean, _median, ...) are compared like the
// rest; with repetitions, pass --benchmark_report_aggregates_only.
//
// Malformed input (a missing file, not JSON, no "benchmarks" array, a
// benchmark without a name or a time, a name twice) is a one-line bb::Error
// naming the file.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bb {

struct MicroBenchmark {
  std::string name;
  double time = 0;          // real_time, in the unit below
  std::string time_unit;    // "ns", "us", "ms" or "s"
  bool skipped = false;     // error_occurred
  std::string message;      // error_message
  std::map<std::string, double> counters;  // every numeric field besides the times
};

struct MicroFile {
  std::string file;
  nlohmann::json context;
  std::vector<MicroBenchmark> benchmarks;  // in the file's order
};

// Whether `path` is a runtime-suite JSON file (by its first non-blank
// character, '{'), as opposed to a run folder or summary.csv.
bool looks_like_micro_json(const std::string& path);
MicroFile read_micro_json(const std::string& path);
MicroFile parse_micro_json(const std::string& text, const std::string& file);

struct MicroCompareOptions {
  double time_tol = 0.5;
  double distortion_tol = 0.05;
  double tightness_tol = 0.05;
  bool check_time = true;
  std::string metric = "time";  // "time" (real_time) or "ratio" (ratio_to_fwd_bwd)
};
void check_micro_compare_options(const MicroCompareOptions& options);

struct MicroComparisonRow {
  std::string name;
  std::optional<double> base_time, new_time;    // in milliseconds
  std::optional<double> base_ratio, new_ratio;  // ratio_to_fwd_bwd
  std::optional<double> ratio;                  // NEW / BASE of the compared metric
  std::vector<std::string> problems;            // why it regressed (empty: it did not)
  std::string note;                             // only in NEW, skipped in BASE, ...
};

struct MicroComparison {
  std::vector<MicroComparisonRow> rows;
  int64_t regressions() const;
  bool passed() const { return regressions() == 0; }
};

MicroComparison compare_micro(const MicroFile& base, const MicroFile& current, const MicroCompareOptions& options);
// A table (benchmark, BASE ms, NEW ms, NEW / BASE, fwd+bwd ratios, verdict)
// and a last line: "PASS: ..." or "FAIL: N regressions".
std::string format_micro_comparison(const MicroComparison& comparison, const MicroCompareOptions& options);

}  // namespace bb
