// The runner behind `boundbench run`: every (model, norm, sample, method) of a
// configuration on the same samples, records appended to the run folder
// batch by batch (harness/records.h), resumable, then summarised.
//
// Determinism: a sample's records depend on the seed, the method (with its
// options), the model, the norm and the sample's index in the test split
// only; never on --batch, --samples, the order of methods or an interruption
// (each method's random numbers come from streams keyed by those, core/random.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/norm.h"
#include "harness/methods.h"
#include "harness/records.h"

namespace bb {

struct RunConfig {
  std::vector<std::string> models;   // zoo names or TorchScript paths
  std::string dataset;               // for TorchScript models; zoo models use their own
  std::vector<Norm> norms;
  std::vector<std::string> methods;  // registry names (harness/methods.h)
  MethodOptions options;
  int64_t samples = 20;
  // "correct": the first `samples` test images the model classifies
  // correctly (per model); "first": the first `samples` test images.
  std::string selection = "correct";
  int64_t batch = 20;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string data_dir;              // empty: default_data_dir()
  // > 0: the attacks run at this fixed budget (boundbench attack --eps)
  // instead of searching for the minimal distortion.
  double fixed_epsilon = 0;
};

// What identifies a run's results (everything but --batch, the data folder
// and the output options): a resume folder must match it key for key.
nlohmann::json config_json(const RunConfig& config);
// Checks names and values before any work (unknown models, methods, norms,
// options, selection; counts >= 1): a bb::Error naming the option.
void validate(const RunConfig& config);

struct RunOptions {
  std::string out;           // the run folder: must not exist, or be empty; "": records in memory only
  bool resume = false;       // continue the run in `out` (its run.json must match)
  bool quiet = false;        // no progress, no table
  std::string command_line;  // recorded in run.json
};

struct RunOutcome {
  std::vector<nlohmann::json> records;  // every record of the run (a resumed one: the earlier ones too)
  Summary summary;
  int64_t records_written = 0;  // by this invocation (a resume skips the finished ones)
  int64_t records_total = 0;
};

// Runs the configuration into options.out: run.json first (before any work;
// the folder is checked and created), samples.jsonl batch by batch, then
// summary.csv and the end time in run.json. Without a folder (boundbench
// attack and bound), the records stay in memory. Methods that cannot serve a model
// (Hein's one-layer form on a deeper network, certified bounds on a model
// without a layer chain) are skipped with a note, recorded in run.json.
RunOutcome run_suite(const RunConfig& config, const RunOptions& options);

// A new folder name under `parent` from the local time: runs/2026-11-30T18-21-32.
std::string default_run_folder(const std::string& parent = "runs");

}  // namespace bb
