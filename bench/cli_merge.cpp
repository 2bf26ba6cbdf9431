// boundbench merge SHARD_DIR... --out DIR: the shard folders of one run
// (boundbench run --shard I/N) joined into one run folder, with the files of
// an unsharded run (harness/merge.h). Prints the summary table like `run`;
// exit 1 when a certified bound lies above an attack's distortion (or a proven exact value) (after
// writing everything), 2 on bad input (nothing written).
#include <iostream>

#include "bench/cli.h"
#include "core/error.h"
#include "harness/merge.h"

namespace bb::cli {

int run_merge(const Args& args) {
  namespace po = boost::program_options;
  po::options_description options("boundbench merge");
  options.add_options()
      ("out", po::value<std::string>()->required(), "the merged run folder to create (must not exist, or be empty)")
      ("quiet", po::bool_switch(), "no table");
  const std::string usage =
      "usage: boundbench merge SHARD_DIR... --out DIR [--quiet]\n"
      "SHARD_DIR: the folders of `boundbench run --shard I/N` for I = 0 .. N-1, each\n"
      "finished, of the same configuration and --batch. DIR receives samples.jsonl (in\n"
      "the unsharded run's order), summary.csv and run.json, as an unsharded run's.";
  std::vector<std::string> folders;
  const Args rest = split_paths(args, options, folders);
  po::variables_map values;
  if (!parse(rest, options, values, usage)) {
    return 0;
  }
  BB_CHECK(!folders.empty(), "merge: no shard folders given (boundbench merge SHARD_DIR... --out DIR)");
  std::string command_line = "boundbench merge";
  for (const auto& a : args) {
    command_line += " " + a;
  }
  const std::string out = values["out"].as<std::string>();
  const MergeOutcome outcome = merge_shards(folders, out, command_line);
  for (const auto& note : outcome.notes) {
    std::cerr << "note: the shards ran in different environments (values may differ from an unsharded run's "
                 "in the last bits): " << note << "\n";
  }
  if (!values["quiet"].as<bool>()) {
    std::cout << summary_table(outcome.summary) << "\n";
  }
  std::cout << fmt::format(
      "run folder {}: {} records from {} shards, samples.jsonl, summary.csv, run.json\n",
      out, outcome.records.size(), outcome.shards);
  for (const auto& v : outcome.summary.violations) {
    std::cerr << "boundbench merge: certified bound violated: " << describe(v) << "\n";
  }
  return outcome.summary.violations.empty() ? 0 : 1;
}

}  // namespace bb::cli
