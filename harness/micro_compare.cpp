#include "harness/micro_compare.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "core/io.h"
#include "harness/compare.h"

namespace bb {
namespace {

std::string read_text(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  BB_CHECK(fs::exists(status), "{}: no such file", path);
  BB_CHECK(!fs::is_directory(status), "{}: a folder, expected a runtime-suite JSON file", path);
  return read_text_file(path);
}

// Milliseconds from a time in `unit`.
double to_ms(double time, const std::string& unit, const std::string& file, const std::string& name) {
  if (unit == "ns") {
    return time * 1e-6;
  }
  if (unit == "us") {
    return time * 1e-3;
  }
  if (unit == "ms") {
    return time;
  }
  if (unit == "s") {
    return time * 1e3;
  }
  throw Error(fmt::format("{}: benchmark '{}': unknown time_unit '{}' (valid: ns, us, ms, s)", file, name, unit));
}

std::optional<double> counter(const MicroBenchmark& b, const std::string& key) {
  auto it = b.counters.find(key);
  if (it == b.counters.end() || !std::isfinite(it->second)) {
    return std::nullopt;
  }
  return it->second;
}

std::string cell(const std::optional<double>& v, const char* spec = "{:.4g}") {
  return v ? fmt::format(fmt::runtime(spec), *v) : "-";
}

}  // namespace

bool looks_like_micro_json(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  char ch = 0;
  while (in.get(ch)) {
    if (!std::isspace(static_cast<unsigned char>(ch))) {
      return ch == '{';
    }
  }
  return false;
}

MicroFile read_micro_json(const std::string& path) {
  return parse_micro_json(read_text(path), path);
}

MicroFile parse_micro_json(const std::string& text, const std::string& file) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not JSON ({})", file, e.what()));
  }
  BB_CHECK(
      doc.is_object() && doc.contains("benchmarks") && doc["benchmarks"].is_array(),
      "{}: no \"benchmarks\" array (expected boundbench_micro --benchmark_out=FILE --benchmark_out_format=json)",
      file);
  MicroFile out;
  out.file = file;
  out.context = doc.value("context", nlohmann::json::object());
  std::set<std::string> seen;
  size_t position = 0;
  for (const auto& entry : doc["benchmarks"]) {
    ++position;
    BB_CHECK(entry.is_object(), "{}: benchmark {} is not an object", file, position);
    BB_CHECK(
        entry.contains("name") && entry["name"].is_string(), "{}: benchmark {} has no name", file, position);
    MicroBenchmark b;
    b.name = entry["name"].get<std::string>();
    BB_CHECK(seen.insert(b.name).second, "{}: benchmark '{}' appears twice", file, b.name);
    b.skipped = entry.value("error_occurred", false);
    b.message = entry.value("error_message", "");
    if (!b.skipped) {
      BB_CHECK(
          entry.contains("real_time") && entry["real_time"].is_number(),
          "{}: benchmark '{}' has no real_time",
          file,
          b.name);
      b.time_unit = entry.value("time_unit", "ns");
      b.time = to_ms(entry["real_time"].get<double>(), b.time_unit, file, b.name);
      b.time_unit = "ms";
    }
    static const std::set<std::string> not_counters{
        "real_time", "cpu_time", "iterations", "repetitions", "repetition_index", "threads",
        "family_index", "per_family_instance_index"};
    for (const auto& [key, value] : entry.items()) {
      if (value.is_number() && !not_counters.count(key)) {
        b.counters[key] = value.get<double>();
      }
    }
    out.benchmarks.push_back(std::move(b));
  }
  return out;
}

void check_micro_compare_options(const MicroCompareOptions& options) {
  check_compare_options({options.tightness_tol, options.distortion_tol, options.time_tol, options.check_time});
  BB_CHECK(
      options.metric == "time" || options.metric == "ratio",
      "--metric: unknown '{}' (valid: time, ratio)",
      options.metric);
}

int64_t MicroComparison::regressions() const {
  int64_t n = 0;
  for (const auto& row : rows) {
    n += row.problems.empty() ? 0 : 1;
  }
  return n;
}

MicroComparison compare_micro(const MicroFile& base, const MicroFile& current, const MicroCompareOptions& options) {
  check_micro_compare_options(options);
  std::map<std::string, const MicroBenchmark*> now;
  for (const auto& b : current.benchmarks) {
    now[b.name] = &b;
  }
  MicroComparison out;
  std::set<std::string> in_base;
  for (const auto& b : base.benchmarks) {
    in_base.insert(b.name);
    MicroComparisonRow row;
    row.name = b.name;
    auto it = now.find(b.name);
    if (!b.skipped) {
      row.base_time = b.time;
      row.base_ratio = counter(b, "ratio_to_fwd_bwd");
    }
    if (it == now.end()) {
      row.problems.push_back("missing in NEW");
      out.rows.push_back(std::move(row));
      continue;
    }
    const MicroBenchmark& n = *it->second;
    if (!n.skipped) {
      row.new_time = n.time;
      row.new_ratio = counter(n, "ratio_to_fwd_bwd");
    }
    if (b.skipped) {
      row.note = n.skipped ? "skipped in both" : "skipped in BASE: not compared";
      out.rows.push_back(std::move(row));
      continue;
    }
    if (n.skipped) {
      row.problems.push_back(fmt::format("failed or skipped in NEW: {}", n.message));
      out.rows.push_back(std::move(row));
      continue;
    }
    const bool by_ratio = options.metric == "ratio";
    const auto base_metric = by_ratio ? row.base_ratio : row.base_time;
    const auto new_metric = by_ratio ? row.new_ratio : row.new_time;
    if (base_metric && new_metric && *base_metric > 0) {
      row.ratio = *new_metric / *base_metric;
      if (options.check_time && *row.ratio > 1 + options.time_tol) {
        row.problems.push_back(fmt::format(
            "{} x{:.3g} > 1 + {:g}", by_ratio ? "ratio_to_fwd_bwd" : "time", *row.ratio, options.time_tol));
      }
    } else if (by_ratio && base_metric && !new_metric) {
      row.problems.push_back("no ratio_to_fwd_bwd in NEW");
    }
    // Quality: a faster but weaker change shows.
    if (auto s0 = counter(b, "success_rate")) {
      auto s1 = counter(n, "success_rate");
      if (!s1 || *s1 < *s0 - options.distortion_tol) {
        row.problems.push_back(fmt::format("success_rate {} < {:.4g} - {:g}", cell(s1), *s0, options.distortion_tol));
      }
    }
    if (auto d0 = counter(b, "median_distortion")) {
      auto d1 = counter(n, "median_distortion");
      if (!d1 || *d1 > *d0 * (1 + options.distortion_tol)) {
        row.problems.push_back(
            fmt::format("median_distortion {} > {:.6g} x (1 + {:g})", cell(d1), *d0, options.distortion_tol));
      }
    }
    if (auto v0 = counter(b, "median_bound")) {
      auto v1 = counter(n, "median_bound");
      if (!v1 || *v1 < *v0 * (1 - options.tightness_tol)) {
        row.problems.push_back(
            fmt::format("median_bound {} < {:.6g} x (1 - {:g})", cell(v1), *v0, options.tightness_tol));
      }
    }
    out.rows.push_back(std::move(row));
  }
  for (const auto& b : current.benchmarks) {
    if (!in_base.count(b.name)) {
      MicroComparisonRow row;
      row.name = b.name;
      if (!b.skipped) {
        row.new_time = b.time;
        row.new_ratio = counter(b, "ratio_to_fwd_bwd");
      }
      row.note = "only in NEW";
      out.rows.push_back(std::move(row));
    }
  }
  return out;
}

std::string format_micro_comparison(const MicroComparison& comparison, const MicroCompareOptions& options) {
  size_t width = 9;
  for (const auto& row : comparison.rows) {
    width = std::max(width, row.name.size());
  }
  std::string out = fmt::format(
      "{:<{}}  {:>10}  {:>10}  {:>9}  {:>9}  {:>9}  {}\n", "benchmark", width, "BASE ms", "NEW ms", "NEW/BASE",
      "BASE f+b", "NEW f+b", "verdict");
  for (const auto& row : comparison.rows) {
    std::string verdict = row.problems.empty() ? (row.note.empty() ? "ok" : row.note) : "REGRESSED: ";
    for (size_t i = 0; i < row.problems.size(); ++i) {
      verdict += (i ? "; " : "") + row.problems[i];
    }
    out += fmt::format(
        "{:<{}}  {:>10}  {:>10}  {:>9}  {:>9}  {:>9}  {}\n", row.name, width, cell(row.base_time),
        cell(row.new_time), cell(row.ratio, "{:.3f}"), cell(row.base_ratio, "{:.3g}"), cell(row.new_ratio, "{:.3g}"),
        verdict);
  }
  const int64_t n = comparison.regressions();
  const std::string what = options.metric == "ratio" ? "ratio_to_fwd_bwd" : "time";
  if (n == 0) {
    out += fmt::format(
        "compare: PASS: {} benchmarks, none regressed ({} tolerance {:g}{})\n", comparison.rows.size(), what,
        options.time_tol, options.check_time ? "" : ", not checked");
  } else {
    out += fmt::format("compare: FAIL: {} of {} benchmarks regressed\n", n, comparison.rows.size());
  }
  return out;
}

}  // namespace bb
