// What `boundbench attack` and `boundbench bound` share: one model, one
// norm, the first test images, the runner (harness/runner.h) in memory, and
// --out written atomically at the end. Also the method-option keys of every
// command that runs methods (run, attack, bound).
#pragma once

#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "bench/cli.h"
#include "harness/runner.h"

namespace bb::cli {

// Every method option key (--pgd.steps, --clever.batches, ...) as a string
// option showing its default.
boost::program_options::options_description method_options_description();
// The keys given in `values`, set on `options` (bad values name the key).
void read_method_options(const boost::program_options::variables_map& values, MethodOptions& options);

struct SingleRun {
  std::string model;
  std::string dataset;
  std::string norm;
  int64_t samples = 0;
  int64_t batch = 0;
  std::string seed;
  std::string device;
  std::string data_dir;
  std::string out;
};

// --model, --dataset, --norm, --samples, --batch, --seed, --device,
// --data-dir, --out.
void add_single_options(boost::program_options::options_description& options, SingleRun& run, int64_t samples);

// Validates everything (--out before any work), then runs `methods` on the
// first `samples` test images, records in memory.
RunOutcome run_single(
    const SingleRun& run,
    const std::vector<std::string>& methods,
    const MethodOptions& options,
    double fixed_epsilon = 0);

// The records as JSON lines, atomically into --out (when given).
void write_out(const std::string& out, const std::vector<nlohmann::json>& records);

}  // namespace bb::cli
