#include "harness/runner.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <tuple>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/torch.h>

#include "bounds/sources.h"
#include "core/classifier.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "datasets/dataset.h"
#include "models/zoo.h"

namespace bb {
namespace fs = std::filesystem;

namespace {

std::string local_time(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof text, format, &tm);
  return text;
}

std::string now_iso() {
  return local_time("%Y-%m-%dT%H:%M:%S%z");
}

// The first line a shell command prints; "" when it fails.
std::string command_output(const std::string& command) {
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[256];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) {
      out += buffer;
    }
    if (::pclose(pipe) != 0) {
      return "";
    }
  }
  return out.substr(0, out.find('\n'));
}

// BLAS as LibTorch reports it, and OpenBLAS's own configuration line when
// OpenBLAS is the library loaded (threads model, kernel).
nlohmann::json blas_info() {
  nlohmann::json info = nlohmann::json::object();
  const std::string config = at::show_config();
  for (const char* key : {"BLAS_INFO=", "LAPACK_INFO="}) {
    const size_t at = config.find(key);
    if (at != std::string::npos) {
      const size_t begin = at + std::strlen(key);
      const size_t end = config.find_first_of(", \n", begin);
      std::string name(key);
      name.pop_back();
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      info[name] = config.substr(begin, end - begin);
    }
  }
  using GetConfig = const char* (*)();
  if (auto get = reinterpret_cast<GetConfig>(::dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    info["openblas"] = get();
  }
  return info;
}

nlohmann::json environment() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  const std::string source = BOUNDBENCH_SOURCE_DIR;
  const std::string revision = command_output("git -C '" + source + "' rev-parse HEAD 2>/dev/null");
  const std::string dirty = revision.empty()
      ? "" : command_output("git -C '" + source + "' status --porcelain --untracked-files=no 2>/dev/null | head -1");
  return {
      {"boundbench", BOUNDBENCH_VERSION},
      {"git_revision", revision.empty() ? nlohmann::json() : nlohmann::json(revision)},
      {"git_dirty", !dirty.empty()},
      {"libtorch", torch_version()},
      {"blas", blas_info()},
      {"threads", at::get_num_threads()},
      {"host", host},
  };
}

}  // namespace

Selected select_samples(
    const Model& model,
    const Dataset& data,
    int64_t count,
    const std::string& selection,
    torch::Device device) {
  const std::string what = fmt::format("{} test images", data.info.name);
  const int64_t total = data.images.size(0);
  std::vector<torch::Tensor> index;
  std::vector<torch::Tensor> predicted;
  int64_t found = 0;
  constexpr int64_t kChunk = 1000;
  for (int64_t start = 0; start < total && found < count; start += kChunk) {
    const int64_t end = std::min(total, selection == "first" ? std::min(count, start + kChunk) : start + kChunk);
    auto x = data.images.slice(0, start, end).to(device);
    auto c = model.classifier.checked_logits(x, what, start).argmax(1).cpu();
    auto rows = torch::arange(start, end, torch::kInt64);
    if (selection == "correct") {
      auto keep = (c == data.labels.slice(0, start, end)).nonzero().squeeze(1);
      rows = rows.index_select(0, keep);
      c = c.index_select(0, keep);
    }
    const int64_t take = std::min(count - found, rows.size(0));
    index.push_back(rows.slice(0, 0, take));
    predicted.push_back(c.slice(0, 0, take));
    found += take;
  }
  BB_CHECK(
      selection == "correct" || count <= total,
      "--samples {}: the {} test split has {} images",
      count,
      data.info.name,
      total);
  BB_CHECK(
      found == count,
      "--samples {}: {} has only {} {} in the {} test split",
      count,
      model.source,
      found,
      selection == "correct" ? "correctly classified images" : "images",
      data.info.name);
  return {torch::cat(index), torch::cat(predicted)};
}

// The keys on which two configurations differ, with both values.
std::vector<std::string> differing_keys(
    const nlohmann::json& a,
    const nlohmann::json& b,
    const std::string& a_label,
    const std::string& b_label,
    const std::string& prefix) {
  std::vector<std::string> out;
  std::set<std::string> keys;
  for (const auto& [k, v] : a.items()) {
    keys.insert(k);
  }
  for (const auto& [k, v] : b.items()) {
    keys.insert(k);
  }
  for (const auto& key : keys) {
    const auto va = a.contains(key) ? a.at(key) : nlohmann::json();
    const auto vb = b.contains(key) ? b.at(key) : nlohmann::json();
    if (va.is_object() && vb.is_object()) {
      for (auto& d : differing_keys(va, vb, a_label, b_label, prefix + key + ".")) {
        out.push_back(d);
      }
    } else if (va != vb) {
      out.push_back(fmt::format("{}{} ({} {}, {} {})", prefix, key, va.dump(), a_label, vb.dump(), b_label));
    }
  }
  return out;
}

namespace {

void write_json(const fs::path& path, const nlohmann::json& value) {
  write_atomically(path.string(), value.dump(2) + "\n");
}

// The run folder: created (with its parents under a default "runs/"), or an
// existing empty folder; with --resume, an earlier run's folder.
void prepare_folder(const RunOptions& options) {
  BB_CHECK(!options.out.empty(), "--out: no run folder given");
  const fs::path dir(options.out);
  std::error_code error;
  const auto status = fs::status(dir, error);
  if (options.resume) {
    BB_CHECK(fs::is_directory(status), "--resume {}: no such run folder", options.out);
    BB_CHECK(
        fs::exists(dir / "run.json"),
        "--resume {}: not a run folder (no run.json there)",
        options.out);
  } else if (fs::exists(status)) {
    BB_CHECK(fs::is_directory(status), "--out {}: exists and is not a folder", options.out);
    BB_CHECK(
        fs::is_empty(dir, error),
        "--out {}: the folder is not empty (use --resume {} to continue the run there, or another --out)",
        options.out,
        options.out);
  } else {
    const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
    BB_CHECK(
        fs::is_directory(parent, error),
        "--out {}: folder {} does not exist",
        options.out,
        parent.string());
    BB_CHECK(
        fs::create_directory(dir, error),
        "--out {}: cannot create the folder ({})",
        options.out,
        error.message());
  }
  // Writable: every file of the run goes here.
  check_output_path((dir / "run.json").string(), options.resume ? "--resume" : "--out");
}

}  // namespace

nlohmann::json config_json(const RunConfig& config) {
  std::vector<std::string> norms;
  for (Norm p : config.norms) {
    norms.push_back(norm_name(p));
  }
  nlohmann::json options = nlohmann::json::object();
  MethodOptions copy = config.options;
  for (const auto& field : option_fields(copy)) {
    options[field.key] = option_text(config.options, field.key);
  }
  return {
      {"models", config.models},
      {"dataset", config.dataset},
      {"norms", norms},
      {"methods", config.methods},
      {"options", options},
      {"samples", config.samples},
      {"selection", config.selection},
      {"seed", config.seed},
      {"device", config.device},
  };
}

void validate(const RunConfig& config) {
  BB_CHECK(!config.models.empty(), "--models: no model given");
  BB_CHECK(!config.norms.empty(), "--norms: no norm given");
  BB_CHECK(!config.methods.empty(), "--methods: no method given");
  for (const auto& method : config.methods) {
    const auto names = method_names();
    BB_CHECK(
        std::find(names.begin(), names.end(), method) != names.end(),
        "--methods: unknown method '{}' (valid: {})",
        method,
        fmt::join(names, ", "));
  }
  for (size_t i = 0; i < config.methods.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      BB_CHECK(config.methods[i] != config.methods[j], "--methods: '{}' is listed twice", config.methods[i]);
    }
  }
  for (size_t i = 0; i < config.models.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      BB_CHECK(config.models[i] != config.models[j], "--models: '{}' is listed twice", config.models[i]);
    }
  }
  BB_CHECK(config.samples > 0, "--samples: must be positive, got {}", config.samples);
  BB_CHECK(config.batch > 0, "--batch: must be positive, got {}", config.batch);
  BB_CHECK(
      config.selection == "correct" || config.selection == "first",
      "--selection: unknown '{}' (valid: correct, first)",
      config.selection);
  validate(config.options);
  for (Norm p : config.norms) {
    for (const auto& method : config.methods) {
      make_method(method, p, config.options, config.fixed_epsilon);  // a norm a bound does not support is named here
    }
  }
}

std::string default_run_folder(const std::string& parent) {
  std::error_code error;
  fs::create_directories(parent, error);
  BB_CHECK(!error, "--out: cannot create the folder {} ({})", parent, error.message());
  const std::string stamp = local_time("%Y-%m-%dT%H-%M-%S");
  for (int n = 0;; ++n) {
    const fs::path candidate = fs::path(parent) / (n == 0 ? stamp : fmt::format("{}-{}", stamp, n));
    if (!fs::exists(candidate)) {
      return candidate.string();
    }
  }
}

Shard parse_shard(const std::string& text, const std::string& option) {
  const size_t slash = text.find('/');
  const auto integer = [](const std::string& part, int64_t& value) {
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    value = std::stoll(part);
    return true;
  };
  Shard shard;
  BB_CHECK(
      slash != std::string::npos && integer(text.substr(0, slash), shard.index) &&
          integer(text.substr(slash + 1), shard.count),
      "{}: expected I/N (shard I of N, counted from 0: 0/4 to 3/4), got '{}'",
      option,
      text);
  BB_CHECK(shard.count >= 1, "{} {}: the number of shards must be at least 1", option, text);
  BB_CHECK(
      shard.index < shard.count,
      "{} {}: shards are counted from 0: I must be below N (0 to {})",
      option,
      text,
      shard.count - 1);
  return shard;
}

std::string shard_name(const Shard& shard) {
  return fmt::format("{}/{}", shard.index, shard.count);
}

namespace {

int64_t batches_per_norm(const RunConfig& config) {
  return (config.samples + config.batch - 1) / config.batch;
}

// Unit b of (model m, norm k), numbered in the unsharded run's order.
int64_t unit_number(const RunConfig& config, size_t m, size_t k, int64_t b) {
  return (static_cast<int64_t>(m * config.norms.size() + k)) * batches_per_norm(config) + b;
}

}  // namespace

std::vector<WorkUnit> work_units(const RunConfig& config) {
  return shard_units(config, Shard{});
}

std::vector<WorkUnit> shard_units(const RunConfig& config, const Shard& shard) {
  BB_CHECK(config.samples > 0 && config.batch > 0, "work units: samples and batch must be positive");
  std::vector<WorkUnit> units;
  const int64_t batches = batches_per_norm(config);
  for (size_t m = 0; m < config.models.size(); ++m) {
    for (size_t k = 0; k < config.norms.size(); ++k) {
      for (int64_t b = 0; b < batches; ++b) {
        if (shard.takes(unit_number(config, m, k, b))) {
          units.push_back({m, k, b * config.batch, std::min(config.samples, (b + 1) * config.batch)});
        }
      }
    }
  }
  return units;
}

RunOutcome run_suite(const RunConfig& config, const RunOptions& options) {
  validate(config);
  const Shard& shard = options.shard;
  BB_CHECK(
      !shard.active() || (shard.index >= 0 && shard.index < shard.count),
      "--shard {}: shards are counted from 0 to N - 1",
      shard_name(shard));
  const torch::Device device = parse_device(config.device);
  const bool folder = !options.out.empty();
  const std::string data_dir = config.data_dir.empty() ? default_data_dir() : config.data_dir;
  // Every model and its test split, before any folder is made or work done:
  // an unknown name, a bad checkpoint or a missing data set refuses the run.
  std::vector<Model> models;
  std::vector<std::string> datasets;
  std::map<std::string, Dataset> test_sets;
  for (const auto& model_name : config.models) {
    models.push_back(load_model(model_name, config.dataset, device));
    std::string dataset = config.dataset;
    if (dataset.empty()) {
      BB_CHECK(!models.back().metadata.empty(), "--dataset is required with a TorchScript model ({})", model_name);
      dataset = models.back().metadata.at("dataset").get<std::string>();
    }
    datasets.push_back(dataset);
    if (!test_sets.count(dataset)) {
      test_sets.emplace(dataset, load_dataset(dataset, "test", data_dir));
    }
  }
  if (folder) {
    prepare_folder(options);
  }
  const fs::path dir(options.out);
  const fs::path records_path = dir / "samples.jsonl";
  const nlohmann::json configuration = config_json(config);

  // run.json: written before any work; on resume, the configuration must match.
  nlohmann::json run;
  std::set<std::tuple<std::string, std::string, std::string, int64_t>> done;
  if (options.resume) {
    std::ifstream in(dir / "run.json");
    run = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    BB_CHECK(
        run.is_object() && run.contains("config"),
        "--resume {}: run.json is damaged (no configuration)",
        options.out);
    const auto differences = differing_keys(run.at("config"), configuration, "there", "here");
    BB_CHECK(
        differences.empty(),
        "--resume {}: that run has another configuration: {}",
        options.out,
        fmt::join(differences, "; "));
    if (fs::exists(records_path)) {
      size_t complete = 0;
      for (const auto& r : read_records(records_path.string(), &complete)) {
        done.insert({r.value("model", ""), r.value("norm", ""), r.value("method", ""), r.value("sample", int64_t{-1})});
      }
      // Drop a torn last line (killed while appending).
      if (fs::file_size(records_path) != complete) {
        fs::resize_file(records_path, complete);
      }
    }
    // A shard continues as the same shard, cut in the same batches.
    const nlohmann::json before = run.value("shard", nlohmann::json());
    if (before.is_object()) {
      const Shard was{before.value("index", int64_t{-1}), before.value("count", int64_t{-1})};
      BB_CHECK(
          shard.active(),
          "--resume {}: that run is shard {} (give --shard {} again)",
          options.out,
          shard_name(was),
          shard_name(was));
      BB_CHECK(
          was.index == shard.index && was.count == shard.count,
          "--resume {}: that run is shard {}, not {}",
          options.out,
          shard_name(was),
          shard_name(shard));
      BB_CHECK(
          before.value("batch", int64_t{-1}) == config.batch,
          "--resume {}: shard {} was cut in batches of {} (give --batch {} again, not {})",
          options.out,
          shard_name(shard),
          before.value("batch", int64_t{-1}),
          before.value("batch", int64_t{-1}),
          config.batch);
    } else {
      BB_CHECK(
          !shard.active(),
          "--resume {}: that run is not a shard (drop --shard {})",
          options.out,
          shard_name(shard));
    }
    run["resumed"].push_back({{"at", now_iso()}, {"command_line", options.command_line}, {"records_before", done.size()}});
    run.erase("finished");
  } else {
    run = {
        {"config", configuration},
        {"command_line", options.command_line},
        {"started", now_iso()},
        {"environment", environment()},
        {"models", nlohmann::json::object()},
        {"skipped", nlohmann::json::array()},
    };
    if (shard.active()) {
      run["shard"] = {
          {"index", shard.index},
          {"count", shard.count},
          {"batch", config.batch},
          {"units", shard_units(config, shard).size()},
          {"total_units", unit_number(config, config.models.size(), 0, 0)},
          {"selected", nlohmann::json::object()},
      };
    }
  }
  run["environment"]["batch"] = config.batch;
  RunOutcome outcome;
  std::unique_ptr<RecordWriter> writer;
  if (folder) {
    write_json(dir / "run.json", run);
    writer = std::make_unique<RecordWriter>(records_path.string());
  }
  int64_t units = 0;  // (sample, method) pairs of this run (or shard)
  for (const auto& unit : shard_units(config, shard)) {
    units += (unit.end - unit.begin) * static_cast<int64_t>(config.methods.size());
  }
  const int64_t batches = batches_per_norm(config);
  Progress progress(folder ? "run" : config.methods.front(), units, !options.quiet);
  int64_t units_done = 0;  // including the skipped and the already finished
  int64_t units_shown = 0;

  for (size_t m = 0; m < config.models.size(); ++m) {
    const std::string& model_name = config.models[m];
    const Model& model = models[m];
    const std::string& dataset = datasets[m];
    auto& recorded = run["models"][model_name];
    if (!recorded.is_null()) {
      BB_CHECK(
          recorded.value("sha256", "") == model.sha256,
          "--resume {}: model {} has changed since the run started (sha256 {} then, {} now)",
          options.out,
          model_name,
          recorded.value("sha256", ""),
          model.sha256);
    }
    recorded = {{"sha256", model.sha256}, {"dataset", dataset}, {"source", model.source}};
    const Dataset& data = test_sets.at(dataset);
    // Every shard selects the samples as the unsharded run does, then takes its units.
    const Selected selected = select_samples(model, data, config.samples, config.selection, device);
    if (shard.active()) {
      const auto index_of = selected.index.accessor<int64_t, 1>();
      nlohmann::json indices = nlohmann::json::array();
      for (int64_t i = 0; i < selected.index.size(0); ++i) {
        indices.push_back(index_of[i]);
      }
      auto& recorded_selection = run["shard"]["selected"][model_name];
      BB_CHECK(
          recorded_selection.is_null() || recorded_selection == indices,
          "--resume {}: model {} now selects other test images than when the shard started",
          options.out,
          model_name);
      recorded_selection = indices;
    }
    torch::Tensor starts;
    bool noted_draws_only = false;
    const std::string images = fmt::format("{} test images", dataset);

    for (size_t k = 0; k < config.norms.size(); ++k) {
      const Norm p = config.norms[k];
      // This shard's samples of (model, norm): none means only the methods' checks run here.
      int64_t shard_samples = 0;
      for (int64_t b = 0; b < batches; ++b) {
        if (shard.takes(unit_number(config, m, k, b))) {
          shard_samples += std::min(config.samples, (b + 1) * config.batch) - b * config.batch;
        }
      }
      Stopwatch block(device);
      const int64_t written_before = outcome.records_written;
      std::vector<std::unique_ptr<Method>> methods;
      for (const auto& name : config.methods) {
        auto method = make_method(name, p, config.options, config.fixed_epsilon);
        try {
          method->check(model);
        } catch (const Error& e) {
          nlohmann::json note{{"model", model_name}, {"norm", norm_name(p)}, {"method", name}, {"reason", e.what()}};
          if (std::find(run["skipped"].begin(), run["skipped"].end(), note) == run["skipped"].end()) {
            run["skipped"].push_back(note);
          }
          if (!folder) {
            throw;  // one method asked for by name: its refusal is the answer
          }
          if (!options.quiet) {
            std::cerr << fmt::format("skipped {} on {} ({}): {}\n", name, model_name, norm_name(p), e.what());
          }
          units_done += shard_samples;
          continue;
        }
        // On a ReLU network the gradient is piecewise constant: the sampled
        // maximum has nothing to climb, and says so once per model.
        if (!options.quiet && shard_samples > 0 && !noted_draws_only && config.options.bound.sampled.ascent_steps > 0 &&
            method->name().find("sampled(") != std::string::npos && piecewise_linear(model)) {
          noted_draws_only = true;
          std::cerr << fmt::format(
              "note: {} is piecewise linear (ReLU): its gradient is piecewise constant, so the sampled "
              "maximum uses draws only (no gradient ascent)\n",
              model_name);
        }
        if (method->wants_starts() && !starts.defined() && shard_samples > 0) {
          const Dataset train = load_dataset(dataset, "train", data_dir);
          starts = train.images.slice(0, 0, config.options.bound.sampled.domain_starts).to(device);
        }
        methods.push_back(std::move(method));
      }
      if (folder) {
        write_json(dir / "run.json", run);
      }
      for (int64_t b = 0; b < batches; ++b) {
        if (!shard.takes(unit_number(config, m, k, b))) {
          continue;  // another shard's unit
        }
        const int64_t start = b * config.batch;
        const int64_t end = std::min(config.samples, start + config.batch);
        const auto index = selected.index.slice(0, start, end);
        const auto predicted = selected.predicted.slice(0, start, end);
        const auto index_of = index.accessor<int64_t, 1>();
        const auto predicted_of = predicted.accessor<int64_t, 1>();
        const auto label_of = data.labels.accessor<int64_t, 1>();
        // The batch on the device, made once for all its methods (when one needs it).
        torch::Tensor x;
        MethodContext context{config.seed, {}, starts};
        torch::Tensor c;
        for (const auto& method : methods) {
          // The samples of this batch that this method has not finished yet.
          // The whole batch runs again (its records for the finished ones
          // are dropped), so that a resumed run computes on the same batches
          // as an uninterrupted one and gives the same records, bit for bit.
          std::vector<int64_t> rows;
          for (int64_t i = 0; i < end - start; ++i) {
            if (!done.count({model_name, norm_name(p), method->key(), index_of[i]})) {
              rows.push_back(i);
            }
          }
          units_done += (end - start) - static_cast<int64_t>(rows.size());
          if (rows.empty()) {
            continue;
          }
          if (!x.defined()) {
            x = data.images.index_select(0, index).to(device);
            context.index = index.to(device);
            c = predicted.to(device);
          }
          MethodBatch batch;
          try {
            batch = method->run(model, x, c, context);
          } catch (const NonFiniteLogits& e) {
            throw e.renumbered(index_of[e.sample()] - e.sample(), fmt::format("{} on {}", method->name(), images));
          }
          const int64_t n = end - start;
          const auto success_of = batch.success.accessor<bool, 1>();
          const auto value_of = batch.value.accessor<double, 1>();
          const auto gradients_of = batch.gradients.accessor<int64_t, 1>();
          std::vector<nlohmann::json> records;
          for (int64_t i : rows) {
            const int64_t sample = index_of[i];
            const bool success = success_of[i];
            const double value = value_of[i];
            nlohmann::json record{
                {"model", model_name},
                {"model_sha256", model.sha256},
                {"dataset", dataset},
                {"norm", norm_name(p)},
                {"sample", sample},
                {"label", label_of[sample]},
                {"predicted", predicted_of[i]},
                {"method", method->key()},
                {"name", method->name()},
                {"kind", kind_name(method->kind())},
                {"certified", method->certified()},
                {"success", success},
                {"value", success && std::isfinite(value) ? nlohmann::json(value) : nlohmann::json()},
                {"seconds", std::round(batch.seconds / static_cast<double>(n) * 1e6) / 1e6},
                {"gradients", gradients_of[i]},
                {"seed", config.seed},
            };
            record.update(batch.extra.at(i));
            records.push_back(std::move(record));
          }
          if (writer) {
            writer->append(records);
          } else {
            outcome.records.insert(outcome.records.end(), records.begin(), records.end());
          }
          outcome.records_written += static_cast<int64_t>(rows.size());
          units_done += static_cast<int64_t>(rows.size());
          progress.advance(units_done - units_shown, fmt::format("{} {} {}", model_name, norm_name(p), method->key()));
          units_shown = units_done;
        }
      }
      // Without a terminal (a log, a batch job): one plain line per model and norm.
      if (folder && !options.quiet && !Progress::enabled() && shard_samples > 0) {
        std::cerr << fmt::format(
            "{} {}: {} records in {:.1f} s ({} of {} samples x methods done)\n", model_name, norm_name(p),
            outcome.records_written - written_before, block.seconds(), units_done, units);
      }
    }
  }
  progress.finish();

  if (folder) {
    outcome.records = read_records(records_path.string());
  }
  outcome.records_total = static_cast<int64_t>(outcome.records.size());
  outcome.summary = summarise(outcome.records);
  if (!folder) {
    return outcome;
  }
  run["finished"] = now_iso();
  run["records"] = outcome.records.size();
  run["certified_violations"] = outcome.summary.violations.size();
  write_atomically({{(dir / "summary.csv").string(), summary_csv(outcome.summary)},
                    {(dir / "run.json").string(), run.dump(2) + "\n"}});
  return outcome;
}

}  // namespace bb
