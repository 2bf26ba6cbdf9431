// boundbench run: a sweep of models x norms x methods on the same samples,
// from a configuration file (configs/*.ini, Boost.Program_options syntax) or
// the embedded quick suite, with command-line overrides. Writes a run folder
// (harness/records.h) and prints the summary table.
#include <fstream>
#include <iostream>
#include <sstream>

#include <torch/torch.h>

#include "bench/cli_single.h"
#include "core/error.h"
#include "harness/runner.h"
#include "models/zoo.h"

namespace bb::cli {
namespace {

// `boundbench run` without --config: every method on the zoo's MNIST MLPs,
// p = 2 and inf, 20 samples, with CLEVER, the sampled maxima and the shells
// sized to finish in minutes on two cores (configs/paper.ini has the full
// settings).
constexpr const char* kQuickSuite = R"(# the quick suite (boundbench run with no --config)
models = mnist-mlp-relu,mnist-mlp-softplus
norms = 2,inf
methods = all
samples = 20
selection = correct
seed = 0

# The estimated sources with fewer draws, and the searches of the certified
# bounds with fewer steps (configs/paper.ini keeps the defaults).
[sampled]
draws = 128

[clever]
batches = 10
batch_size = 64

[local_ball]
bisection_steps = 8

[shells]
shells = 8
rounds = 3

[crown_radius]
bisection_steps = 8
)";

std::vector<std::string> split_list(const std::string& text, const std::string& option) {
  std::vector<std::string> items;
  size_t from = 0;
  while (from <= text.size()) {
    const size_t comma = std::min(text.find(',', from), text.size());
    std::string item = text.substr(from, comma - from);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    BB_CHECK(!item.empty(), "--{}: empty entry in '{}'", option, text);
    items.push_back(item);
    from = comma + 1;
  }
  return items;
}

std::vector<std::string> expand_methods(const std::vector<std::string>& given) {
  std::vector<std::string> methods;
  for (const auto& name : given) {
    std::vector<std::string> group;
    if (name == "all") {
      group = method_names();
    } else if (name == "attacks") {
      group = attack_names();
    } else if (name == "bounds") {
      group = bound_names();
    } else {
      group = {name};
    }
    for (auto& m : group) {
      if (std::find(methods.begin(), methods.end(), m) == methods.end()) {
        methods.push_back(m);
      }
    }
  }
  return methods;
}

}  // namespace

int run_run(const Args& args) {
  namespace po = boost::program_options;
  po::options_description general("boundbench run");
  general.add_options()
      ("config", po::value<std::string>(),
       "configuration file (configs/*.ini); without it, the quick suite (--print-config shows it)")
      ("out", po::value<std::string>(), "run folder to create (default: a new runs/<time> folder)")
      ("resume", po::value<std::string>(), "continue the run in this folder (same configuration)")
      ("batch", po::value<int64_t>()->default_value(20), "samples per batch (results do not depend on it, up to float rounding)")
      ("shard", po::value<std::string>(),
       "I/N: run shard I (0 to N-1) of N: every N-th (model, norm, batch) of the run, from the I-th; "
       "boundbench merge joins the shard folders")
      ("data-dir", po::value<std::string>(), fmt::format("data folder (default: {})", data_dir_help()).c_str())
      ("quiet", po::bool_switch(), "no progress and no table")
      ("print-config", po::bool_switch(), "print the configuration in effect and exit");
  po::options_description suite("the suite (config file keys; the command line overrides them)");
  suite.add_options()
      ("models", po::value<std::string>(),
       fmt::format("comma-separated zoo models ({}) or TorchScript files", zoo_models_help()).c_str())
      ("dataset", po::value<std::string>(), "data set of the TorchScript models")
      ("norms", po::value<std::string>(), "comma-separated: 1, 2, inf")
      ("methods", po::value<std::string>(),
       fmt::format("comma-separated, or all, attacks, bounds: {}", fmt::join(method_names(), ", ")).c_str())
      ("samples", po::value<std::string>(), "samples per model")
      ("selection", po::value<std::string>(),
       "correct: the first N test images the model classifies correctly; first: the first N test images")
      ("seed", po::value<std::string>(), "random seed, 0 to 2^64 - 1")
      ("device", po::value<std::string>(), "cpu, cuda or cuda:N");
  const po::options_description method_options = method_options_description();
  po::options_description all;
  all.add(general).add(suite).add(method_options);
  po::variables_map values;
  if (!parse(args, all, values,
             "usage: boundbench run [--config FILE] [--out DIR | --resume DIR] [--shard I/N] [--models A,B] "
             "[--methods M,N] [--KEY VALUE]...")) {
    return 0;
  }
  // Then the file (or the quick suite): what the command line set wins.
  po::options_description from_file;
  from_file.add(suite).add(method_options);
  std::string source = "the quick suite";
  if (values.count("config")) {
    const std::string path = values["config"].as<std::string>();
    std::ifstream in(path);
    BB_CHECK(in.good(), "--config {}: cannot read the file", path);
    try {
      po::store(po::parse_config_file(in, from_file), values);
    } catch (const po::error& e) {
      throw Error(fmt::format("--config {}: {}", path, e.what()));
    }
    source = path;
  } else {
    std::istringstream in(kQuickSuite);
    po::store(po::parse_config_file(in, from_file), values);
  }
  po::notify(values);
  auto text = [&](const char* key, const std::string& fallback) {
    return values.count(key) ? values[key].as<std::string>() : fallback;
  };

  RunConfig config;
  config.models = split_list(text("models", ""), "models");
  config.dataset = text("dataset", "");
  for (const auto& p : split_list(text("norms", "2,inf"), "norms")) {
    config.norms.push_back(parse_norm(p, "--norms"));
  }
  config.methods = expand_methods(split_list(text("methods", "all"), "methods"));
  {
    const std::string samples = text("samples", "20");
    size_t used = 0;
    try {
      config.samples = std::stoll(samples, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    BB_CHECK(used == samples.size() && !samples.empty(), "--samples: expected an integer, got '{}'", samples);
  }
  config.selection = text("selection", "correct");
  config.batch = values["batch"].as<int64_t>();
  config.seed = parse_seed(text("seed", "0"));
  config.device = text("device", "cpu");
  config.data_dir = text("data-dir", "");
  read_method_options(values, config.options);
  validate(config);
  const Shard shard = values.count("shard") ? parse_shard(values["shard"].as<std::string>()) : Shard{};
  if (values["print-config"].as<bool>()) {
    std::cout << "# from " << source << " and the command line\n" << config_json(config).dump(2) << "\n";
    return 0;
  }

  RunOptions options;
  BB_CHECK(!(values.count("out") && values.count("resume")), "--out and --resume: give one of them");
  options.resume = values.count("resume") > 0;
  options.out = options.resume ? values["resume"].as<std::string>()
      : values.count("out") ? values["out"].as<std::string>() : default_run_folder("runs");
  options.quiet = values["quiet"].as<bool>();
  options.shard = shard;
  options.command_line = "boundbench run";
  for (const auto& a : args) {
    options.command_line += " " + a;
  }
  const RunOutcome outcome = run_suite(config, options);
  if (!options.quiet) {
    std::cout << summary_table(outcome.summary) << "\n";
  }
  std::cout << fmt::format(
      "run folder {}: {} records ({} new), samples.jsonl, summary.csv, run.json\n",
      options.out, outcome.records_total, outcome.records_written);
  // A certified bound above a distortion an attack reached or above a proven
  // exact minimum, or an exact minimum above an attack, is a soundness bug:
  // fail, after everything is written.
  for (const auto& v : outcome.summary.violations) {
    std::cerr << "boundbench run: soundness violation: " << describe(v) << "\n";
  }
  return outcome.summary.violations.empty() ? 0 : 1;
}

}  // namespace bb::cli
