#include "bench/cli_single.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/io.h"
#include "core/runtime.h"
#include "models/zoo.h"

namespace bb::cli {

boost::program_options::options_description method_options_description() {
  namespace po = boost::program_options;
  MethodOptions defaults;
  po::options_description description("method options (the keys each method's name prints)");
  for (const auto& field : option_fields(defaults)) {
    description.add_options()(
        field.key.c_str(),
        po::value<std::string>()->value_name(option_text(defaults, field.key)),
        field.help.c_str());
  }
  return description;
}

void read_method_options(const boost::program_options::variables_map& values, MethodOptions& options) {
  MethodOptions keys;
  for (const auto& field : option_fields(keys)) {
    if (values.count(field.key)) {
      set_option(options, field.key, values[field.key].as<std::string>());
    }
  }
}

void add_single_options(boost::program_options::options_description& options, SingleRun& run, int64_t samples) {
  namespace po = boost::program_options;
  options.add_options()
      ("model", po::value(&run.model)->required(),
       fmt::format("zoo model ({}) or TorchScript file (with --dataset)", zoo_models_help()).c_str())
      ("dataset", po::value(&run.dataset), "data set (default: the zoo model's own)")
      ("norm", po::value(&run.norm)->required(), "1, 2 or inf")
      ("samples", po::value(&run.samples)->default_value(samples), "first test images")
      ("batch", po::value(&run.batch)->default_value(samples), "images per batch")
      ("seed", po::value(&run.seed)->default_value("0"), "random seed, 0 to 2^64 - 1")
      ("device", po::value(&run.device)->default_value("cpu"), "cpu, cuda or cuda:N")
      ("data-dir", po::value(&run.data_dir), fmt::format("data folder (default: {})", data_dir_help()).c_str())
      ("out", po::value(&run.out), "write one JSON object per sample and method to this file");
}

RunOutcome run_single(
    const SingleRun& run,
    const std::vector<std::string>& methods,
    const MethodOptions& options,
    double fixed_epsilon) {
  RunConfig config;
  config.models = {run.model};
  config.dataset = run.dataset;
  config.norms = {parse_norm(run.norm)};
  config.methods = methods;
  config.options = options;
  config.samples = run.samples;
  config.selection = "first";
  config.batch = run.batch;
  config.seed = parse_seed(run.seed);
  config.device = run.device;
  config.data_dir = run.data_dir;
  config.fixed_epsilon = fixed_epsilon;
  validate(config);
  if (!run.out.empty()) {
    check_output_path(run.out, "--out");
  }
  seed_all(config.seed);
  return run_suite(config, RunOptions{});
}

void write_out(const std::string& out, const std::vector<nlohmann::json>& records) {
  if (out.empty()) {
    return;
  }
  std::string lines;
  for (const auto& record : records) {
    lines += record.dump() + "\n";
  }
  write_atomically(out, lines);
}

}  // namespace bb::cli
