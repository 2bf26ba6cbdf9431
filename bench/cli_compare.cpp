// boundbench compare BASE NEW: the regression check between two runs (see
// harness/compare.h). Exit 0 when nothing regressed, 1 when something did,
// 2 on bad input (main.cpp turns bb::Error into exit 2).
#include <iostream>

#include "bench/cli.h"
#include "core/error.h"
#include "harness/compare.h"
#include "harness/micro_compare.h"

namespace bb::cli {

int run_compare(const Args& args) {
  namespace po = boost::program_options;
  CompareOptions compare;
  bool ignore_time = false;
  std::string metric = "time";
  po::options_description options("boundbench compare");
  options.add_options()
      ("tightness-tol", po::value(&compare.tightness_tol)->default_value(0.05, "0.05"),
       "a bound regresses when its median tightness falls below BASE's x (1 - this)")
      ("distortion-tol", po::value(&compare.distortion_tol)->default_value(0.05, "0.05"),
       "an attack regresses when its median distortion rises above BASE's x (1 + this)")
      ("time-tol", po::value(&compare.time_tol)->default_value(0.5, "0.5"),
       "a method regresses when its median seconds per sample rise above BASE's x (1 + this)")
      ("ignore-time", po::bool_switch(&ignore_time), "do not compare times (they are still printed)")
      ("metric", po::value(&metric)->default_value("time"),
       "runtime-suite JSON only: time (per iteration) or ratio (ratio_to_fwd_bwd, comparable across machines)");
  const std::string usage =
      "usage: boundbench compare BASE NEW [--tightness-tol T] [--distortion-tol D]\n"
      "                          [--time-tol R | --ignore-time]\n"
      "BASE and NEW: run folders (their summary.csv is read) or summary.csv files;\n"
      "rows match by (model, norm, method). Exit 1 when NEW regressed: a bound's\n"
      "median tightness fell, a certified bound has violations, an attack's median\n"
      "distortion rose, a method got slower, or a row of BASE is missing in NEW (rows\n"
      "only NEW has are listed, never a failure). Exit 2 on bad input.\n"
      "BASE and NEW may instead be two runtime-suite JSON files (boundbench_micro\n"
      "--benchmark_out=FILE --benchmark_out_format=json): benchmarks match by name and\n"
      "regress when slower beyond --time-tol (--metric), less successful or with a\n"
      "larger median distortion beyond --distortion-tol, with a smaller median bound\n"
      "beyond --tightness-tol, failed, or missing (harness/micro_compare.h).";
  // BASE and NEW are the arguments that are neither an option nor an option's
  // value; the rest goes to parse(), which refuses any other positional one.
  Args rest;
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      rest.push_back(arg);
      const std::string name = arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
      const auto* option = options.find_nothrow(name, false);
      if (option != nullptr && arg.find('=') == std::string::npos && option->semantic()->max_tokens() > 0 &&
          i + 1 < args.size()) {
        rest.push_back(args[++i]);
      }
    } else if (arg.empty() || arg[0] != '-' || arg == "-") {
      paths.push_back(arg);
    } else {
      rest.push_back(arg);
    }
  }
  po::variables_map values;
  if (!parse(rest, options, values, usage)) {
    return 0;
  }
  BB_CHECK(
      paths.size() == 2,
      "compare: expected BASE and NEW (two run folders or summary.csv files), got {} path{}",
      paths.size(),
      paths.size() == 1 ? "" : "s");
  const bool json0 = looks_like_micro_json(paths[0]);
  const bool json1 = looks_like_micro_json(paths[1]);
  BB_CHECK(
      json0 == json1,
      "compare: {} is a runtime-suite JSON file but {} is not: compare two run folders (or summary.csv files) or "
      "two JSON files",
      json0 ? paths[0] : paths[1],
      json0 ? paths[1] : paths[0]);
  if (json0) {
    MicroCompareOptions micro;
    micro.time_tol = compare.time_tol;
    micro.distortion_tol = compare.distortion_tol;
    micro.tightness_tol = compare.tightness_tol;
    micro.check_time = !ignore_time;
    micro.metric = metric;
    check_micro_compare_options(micro);
    const MicroFile base = read_micro_json(paths[0]);
    const MicroFile current = read_micro_json(paths[1]);
    const MicroComparison comparison = compare_micro(base, current, micro);
    std::cout << format_micro_comparison(comparison, micro);
    return comparison.passed() ? 0 : 1;
  }
  BB_CHECK(values["metric"].defaulted(), "--metric: only for runtime-suite JSON files");
  compare.check_time = !ignore_time;
  check_compare_options(compare);
  const SummaryFile base = read_summary_csv(paths[0]);
  const SummaryFile current = read_summary_csv(paths[1]);
  const Comparison comparison = compare_summaries(base, current, compare);
  std::cout << format_comparison_table(comparison) << format_verdict(comparison) << "\n";
  return comparison.passed() ? 0 : 1;
}

}  // namespace bb::cli
