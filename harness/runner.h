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
#include "datasets/dataset.h"
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
// The keys (nested ones as "options.pgd.steps") on which two configurations
// differ, each with both values: `seed (5 there, 6 here)` for the labels
// "there" and "here".
std::vector<std::string> differing_keys(
    const nlohmann::json& a,
    const nlohmann::json& b,
    const std::string& a_label,
    const std::string& b_label,
    const std::string& prefix = "");
// Checks names and values before any work (unknown models, methods, norms,
// options, selection; counts >= 1): a bb::Error naming the option.
void validate(const RunConfig& config);

// boundbench run --shard I/N: one slice of a run, for a cluster's job array
// (boundbench merge joins the shard folders into one run folder).
//
// The work of a run is cut into units: one per (model, norm, batch of
// samples), in the order the unsharded run takes them (model, then norm,
// then batch: samples [k * batch, (k + 1) * batch) of the model's selected
// samples). Shard I of N takes units I, I + N, I + 2N, ... (round robin, so
// that every shard gets a share of the cheap and the costly models). The
// slice depends on the configuration and --batch only; every shard selects
// the samples exactly as the unsharded run does and then takes its units.
// Keeping the unsharded run's batches makes a shard's records bit for bit
// those of the unsharded run with the same --batch.
struct Shard {
  int64_t index = 0;
  int64_t count = 0;  // 0: not a shard (the whole run)
  bool active() const { return count > 0; }
  bool takes(int64_t unit) const { return !active() || unit % count == index; }
};
// "I/N" with 0 <= I < N: a bb::Error naming `option` otherwise.
Shard parse_shard(const std::string& text, const std::string& option = "--shard");
std::string shard_name(const Shard& shard);  // "1/3"

// The units of a run in their order, and how many there are.
struct WorkUnit {
  size_t model = 0;    // index into RunConfig::models
  size_t norm = 0;     // index into RunConfig::norms
  int64_t begin = 0;   // positions in the model's selected samples
  int64_t end = 0;
};
std::vector<WorkUnit> work_units(const RunConfig& config);
// The units shard `shard` runs (every unit when it is not active).
std::vector<WorkUnit> shard_units(const RunConfig& config, const Shard& shard);

struct RunOptions {
  std::string out;           // the run folder: must not exist, or be empty; "": records in memory only
  bool resume = false;       // continue the run in `out` (its run.json must match)
  bool quiet = false;        // no progress, no table
  std::string command_line;  // recorded in run.json
  // Run only this shard's units; run.json records it ("shard": index, count,
  // batch, the shard's units and the samples selected per model), and a
  // resume must give the same shard and --batch.
  Shard shard{};
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

// The samples of a model: the first `count` test images of `data` (selection
// "first"), or the first `count` the model classifies correctly ("correct").
// Every chunk's logits are checked for NaN; too few images is a bb::Error.
struct Selected {
  torch::Tensor index;      // int64 [N] CPU: places in the test split
  torch::Tensor predicted;  // int64 [N] CPU
};
Selected select_samples(
    const Model& model,
    const Dataset& data,
    int64_t count,
    const std::string& selection,
    torch::Device device);

// A new folder name under `parent` from the local time: runs/2026-11-30T18-21-32.
std::string default_run_folder(const std::string& parent = "runs");

}  // namespace bb
