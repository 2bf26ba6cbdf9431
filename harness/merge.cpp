#include "harness/merge.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/io.h"
#include "harness/runner.h"

namespace bb {
namespace fs = std::filesystem;

namespace {

struct ShardFolder {
  std::string dir;
  nlohmann::json run;
  Shard shard;
  int64_t batch = 0;
  std::vector<nlohmann::json> records;
  std::string name() const { return fmt::format("{} (shard {})", dir, shard_name(shard)); }
};

// Seconds since the epoch of run.json's "%Y-%m-%dT%H:%M:%S%z" times; -1 when unreadable.
double epoch_seconds(const std::string& text) {
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S%z", &tm);
  if (end == nullptr || *end != '\0') {
    return -1;
  }
  const long offset = tm.tm_gmtoff;
  return static_cast<double>(::timegm(&tm) - offset);
}

ShardFolder read_shard(const std::string& dir) {
  ShardFolder folder;
  folder.dir = dir;
  std::error_code error;
  BB_CHECK(fs::is_directory(dir, error), "{}: no such folder", dir);
  const fs::path run_path = fs::path(dir) / "run.json";
  BB_CHECK(fs::exists(run_path, error), "{}: not a run folder (no run.json there)", dir);
  {
    std::ifstream in(run_path);
    folder.run = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  }
  BB_CHECK(
      folder.run.is_object() && folder.run.contains("config") && folder.run.at("config").is_object(),
      "{}: run.json is damaged (no configuration)",
      run_path.string());
  const nlohmann::json& shard = folder.run.value("shard", nlohmann::json());
  BB_CHECK(
      shard.is_object(),
      "{}: not a shard folder (its run.json has no shard; boundbench run --shard I/N writes one)",
      dir);
  BB_CHECK(
      shard.value("index", nlohmann::json()).is_number_integer() &&
          shard.value("count", nlohmann::json()).is_number_integer() &&
          shard.value("batch", nlohmann::json()).is_number_integer() &&
          shard.value("selected", nlohmann::json()).is_object(),
      "{}: run.json is damaged (its shard lacks index, count, batch or selected)",
      run_path.string());
  folder.shard = {shard.at("index").get<int64_t>(), shard.at("count").get<int64_t>()};
  folder.batch = shard.at("batch").get<int64_t>();
  BB_CHECK(
      folder.shard.count >= 1 && folder.shard.index >= 0 && folder.shard.index < folder.shard.count &&
          folder.batch >= 1,
      "{}: run.json is damaged (shard {}, batch {})",
      run_path.string(),
      shard_name(folder.shard),
      folder.batch);
  BB_CHECK(
      folder.run.contains("finished"),
      "{}: shard {} did not finish (run.json has no end time); continue it with boundbench run --resume {} "
      "--shard {} and its configuration",
      dir,
      shard_name(folder.shard),
      dir,
      shard_name(folder.shard));
  const fs::path records_path = fs::path(dir) / "samples.jsonl";
  BB_CHECK(fs::is_regular_file(records_path, error), "{}: missing (shard {})", records_path.string(),
           shard_name(folder.shard));
  size_t complete = 0;
  folder.records = read_records(records_path.string(), &complete);
  BB_CHECK(
      fs::file_size(records_path) == complete,
      "{}: the last line is torn (shard {} was interrupted while writing)",
      records_path.string(),
      shard_name(folder.shard));
  const auto expected = folder.run.value("records", nlohmann::json());
  BB_CHECK(
      expected.is_number_integer() && expected.get<int64_t>() == static_cast<int64_t>(folder.records.size()),
      "{}: {} records, but run.json says {}",
      records_path.string(),
      folder.records.size(),
      expected.dump());
  return folder;
}

std::vector<std::string> strings(const nlohmann::json& array, const std::string& what) {
  BB_CHECK(array.is_array(), "{}: not a list", what);
  std::vector<std::string> out;
  for (const auto& item : array) {
    BB_CHECK(item.is_string(), "{}: not a list of names", what);
    out.push_back(item.get<std::string>());
  }
  return out;
}

size_t position(const std::vector<std::string>& names, const std::string& name) {
  return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

// Writes the merged files into a temporary folder beside `out`, then renames
// it into place; on any failure the temporary folder is removed.
void write_folder(const std::string& out, const std::vector<std::pair<std::string, std::string>>& files) {
  const fs::path target(out);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string pattern = (parent / ("." + target.filename().string() + ".merge.XXXXXX")).string();
  BB_CHECK(
      ::mkdtemp(pattern.data()) != nullptr,
      "--out {}: cannot create a folder in {} ({})",
      out,
      parent.string(),
      std::strerror(errno));
  const fs::path temp(pattern);
  try {
    // mkdtemp makes it 0700; a run folder gets what mkdir gives.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    fs::permissions(temp, static_cast<fs::perms>(0777 & ~mask));
    for (const auto& [name, text] : files) {
      write_atomically((temp / name).string(), text);
    }
    BB_CHECK(
        ::rename(temp.c_str(), target.c_str()) == 0,
        "--out {}: cannot move the merged folder into place ({})",
        out,
        std::strerror(errno));
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temp, ignored);
    throw;
  }
}

}  // namespace

MergeOutcome merge_shards(
    const std::vector<std::string>& shard_folders,
    const std::string& out,
    const std::string& command_line) {
  BB_CHECK(!shard_folders.empty(), "merge: no shard folders given");
  // The output folder: new, or empty, in an existing folder.
  BB_CHECK(!out.empty(), "--out: no output folder given");
  {
    std::error_code error;
    const auto status = fs::status(out, error);
    if (fs::exists(status)) {
      BB_CHECK(fs::is_directory(status), "--out {}: exists and is not a folder", out);
      BB_CHECK(fs::is_empty(out, error), "--out {}: the folder is not empty", out);
    } else {
      const fs::path parent = fs::path(out).has_parent_path() ? fs::path(out).parent_path() : fs::path(".");
      BB_CHECK(fs::is_directory(parent, error), "--out {}: folder {} does not exist", out, parent.string());
    }
  }

  // Every folder a finished shard; then the same run, split the same way.
  std::vector<ShardFolder> shards;
  for (const auto& dir : shard_folders) {
    shards.push_back(read_shard(dir));
  }
  const ShardFolder& first = shards.front();
  for (const auto& s : shards) {
    const auto differences = differing_keys(
        first.run.at("config"), s.run.at("config"), "in " + first.dir, "in " + s.dir);
    BB_CHECK(
        differences.empty(),
        "merge: {} and {} are shards of different configurations: {}",
        first.dir,
        s.dir,
        fmt::join(differences, "; "));
    BB_CHECK(
        s.shard.count == first.shard.count,
        "merge: {} is shard {} and {} is shard {}: runs split into different numbers of shards",
        first.dir,
        shard_name(first.shard),
        s.dir,
        shard_name(s.shard));
    BB_CHECK(
        s.batch == first.batch,
        "merge: {} was cut in batches of {} and {} in batches of {} (every shard needs the same --batch)",
        first.name(),
        first.batch,
        s.name(),
        s.batch);
  }
  const int64_t count = first.shard.count;
  std::map<int64_t, size_t> by_index;
  for (size_t f = 0; f < shards.size(); ++f) {
    const auto [at, fresh] = by_index.emplace(shards[f].shard.index, f);
    BB_CHECK(
        fresh,
        "merge: {} and {} are both shard {}",
        shards[at->second].dir,
        shards[f].dir,
        shard_name(shards[f].shard));
  }
  std::vector<std::string> missing;
  std::vector<std::string> given;
  for (int64_t i = 0; i < count; ++i) {
    (by_index.count(i) ? given : missing).push_back(shard_name({i, count}));
  }
  BB_CHECK(
      missing.empty(),
      "merge: {} {} {} missing (given: {})",
      missing.size() == 1 ? "shard" : "shards",
      fmt::join(missing, ", "),
      missing.size() == 1 ? "is" : "are",
      fmt::join(given, ", "));
  std::sort(shards.begin(), shards.end(), [](const ShardFolder& a, const ShardFolder& b) {
    return a.shard.index < b.shard.index;
  });

  // The models: the same checkpoints, the same selected test images.
  const nlohmann::json& config = shards.front().run.at("config");
  const auto models = strings(config.value("models", nlohmann::json()), "run.json config.models");
  const auto norms = strings(config.value("norms", nlohmann::json()), "run.json config.norms");
  const auto methods = strings(config.value("methods", nlohmann::json()), "run.json config.methods");
  const nlohmann::json samples_json = config.value("samples", nlohmann::json());
  BB_CHECK(samples_json.is_number_integer() && samples_json.get<int64_t>() > 0,
           "{}/run.json: config.samples is not a positive integer", shards.front().dir);
  const int64_t samples = samples_json.get<int64_t>();
  const int64_t batch = shards.front().batch;
  const int64_t batches = (samples + batch - 1) / batch;
  std::vector<std::map<int64_t, int64_t>> position_of(models.size());  // test index -> position
  for (size_t m = 0; m < models.size(); ++m) {
    const ShardFolder& base = shards.front();
    const auto sha = [&](const ShardFolder& s) {
      return s.run.value("models", nlohmann::json::object()).value(models[m], nlohmann::json::object()).value(
          "sha256", std::string());
    };
    const auto selected = [&](const ShardFolder& s) {
      return s.run.at("shard").at("selected").value(models[m], nlohmann::json());
    };
    for (const auto& s : shards) {
      BB_CHECK(
          sha(s) == sha(base),
          "merge: model {} differs between the shards: sha256 {} in {}, {} in {}",
          models[m],
          sha(base).empty() ? "none" : sha(base),
          base.dir,
          sha(s).empty() ? "none" : sha(s),
          s.dir);
      BB_CHECK(
          selected(s) == selected(base),
          "merge: {} and {} selected other test images for model {} (the shards ran on different machines or "
          "devices?)",
          base.dir,
          s.dir,
          models[m]);
    }
    const nlohmann::json indices = selected(base);
    BB_CHECK(
        indices.is_array() && static_cast<int64_t>(indices.size()) == samples,
        "{}/run.json: shard.selected of model {} is not a list of {} test images",
        base.dir,
        models[m],
        samples);
    for (size_t pos = 0; pos < indices.size(); ++pos) {
      BB_CHECK(indices[pos].is_number_integer(), "{}/run.json: shard.selected of model {} is damaged", base.dir,
               models[m]);
      position_of[m][indices[pos].get<int64_t>()] = static_cast<int64_t>(pos);
    }
  }

  // Every record in its shard's units, none twice; the skipped methods of
  // every shard (each shard checks every model and norm).
  using Key = std::tuple<size_t, size_t, size_t, int64_t>;  // model, norm, method, position
  std::map<Key, std::pair<nlohmann::json, size_t>> records;  // record, its shard
  std::set<std::tuple<size_t, size_t, size_t>> skipped;
  nlohmann::json skipped_notes = nlohmann::json::array();
  for (size_t f = 0; f < shards.size(); ++f) {
    const ShardFolder& s = shards[f];
    const std::string file = (fs::path(s.dir) / "samples.jsonl").string();
    for (const auto& note : s.run.value("skipped", nlohmann::json::array())) {
      const size_t m = position(models, note.value("model", ""));
      const size_t k = position(norms, note.value("norm", ""));
      const size_t j = position(methods, note.value("method", ""));
      BB_CHECK(m < models.size() && k < norms.size() && j < methods.size(),
               "{}/run.json: a skipped method outside the configuration: {}", s.dir, note.dump());
      if (skipped.insert({m, k, j}).second) {
        skipped_notes.push_back(note);
      }
    }
    for (size_t line = 0; line < s.records.size(); ++line) {
      const nlohmann::json& r = s.records[line];
      const std::string model = r.value("model", "");
      const std::string norm = r.value("norm", "");
      const std::string method = r.value("method", "");
      const int64_t sample = r.value("sample", int64_t{-1});
      const size_t m = position(models, model);
      const size_t k = position(norms, norm);
      const size_t j = position(methods, method);
      BB_CHECK(
          m < models.size() && k < norms.size() && j < methods.size(),
          "{}: line {}: model '{}', norm '{}', method '{}' are not all in the configuration",
          file, line + 1, model, norm, method);
      const auto at = position_of[m].find(sample);
      BB_CHECK(
          at != position_of[m].end(),
          "{}: line {}: sample {} is not among the selected test images of model {}",
          file, line + 1, sample, model);
      const int64_t unit = (static_cast<int64_t>(m * norms.size() + k)) * batches + at->second / batch;
      BB_CHECK(
          s.shard.takes(unit),
          "{}: line {}: {} {} sample {} belongs to shard {}, not {}",
          file, line + 1, model, norm, sample, shard_name({unit % count, count}), shard_name(s.shard));
      const auto [it, fresh] = records.emplace(Key{m, k, j, at->second}, std::make_pair(r, f));
      BB_CHECK(
          fresh,
          "merge: {} {} {} sample {} is recorded twice ({} and {})",
          model, norm, method, sample, shards[it->second.second].dir, s.dir);
    }
  }
  std::sort(skipped_notes.begin(), skipped_notes.end(), [&](const nlohmann::json& a, const nlohmann::json& b) {
    const auto key = [&](const nlohmann::json& n) {
      return std::make_tuple(position(models, n.value("model", "")), position(norms, n.value("norm", "")),
                             position(methods, n.value("method", "")));
    };
    return key(a) < key(b);
  });
  // Complete: every (model, norm, method) that ran has every sample.
  for (size_t m = 0; m < models.size(); ++m) {
    for (size_t k = 0; k < norms.size(); ++k) {
      for (size_t j = 0; j < methods.size(); ++j) {
        if (skipped.count({m, k, j})) {
          continue;
        }
        for (int64_t pos = 0; pos < samples; ++pos) {
          if (!records.count({m, k, j, pos})) {
            const int64_t unit = (static_cast<int64_t>(m * norms.size() + k)) * batches + pos / batch;
            const Shard owner{unit % count, count};
            const auto sample = std::find_if(position_of[m].begin(), position_of[m].end(),
                                             [&](const auto& e) { return e.second == pos; })->first;
            BB_CHECK(
                false,
                "merge: {} lacks the record of {} {} {} sample {} (shard {})",
                shards[static_cast<size_t>(owner.index)].dir, models[m], norms[k], methods[j], sample,
                shard_name(owner));
          }
        }
      }
    }
  }

  // The unsharded order: model, norm, batch, method, sample.
  MergeOutcome outcome;
  std::vector<std::pair<std::tuple<size_t, size_t, int64_t, size_t, int64_t>, const nlohmann::json*>> order;
  for (const auto& [key, value] : records) {
    const auto& [m, k, j, pos] = key;
    order.push_back({{m, k, pos / batch, j, pos}, &value.first});
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string lines;
  for (const auto& [key, record] : order) {
    outcome.records.push_back(*record);
    lines += record->dump() + "\n";
  }
  outcome.summary = summarise(outcome.records);
  outcome.shards = static_cast<int64_t>(shards.size());

  // run.json: shard 0's description of the run, the span of the shards'
  // times, and every shard.
  nlohmann::json run = shards.front().run;
  run.erase("shard");
  run.erase("resumed");
  run["command_line"] = command_line;
  run["skipped"] = skipped_notes;
  nlohmann::json list = nlohmann::json::array();
  std::string started;
  std::string finished;
  for (const auto& s : shards) {
    nlohmann::json entry{
        {"folder", fs::absolute(s.dir).lexically_normal().string()},
        {"shard", shard_name(s.shard)},
        {"command_line", s.run.value("command_line", nlohmann::json())},
        {"started", s.run.value("started", nlohmann::json())},
        {"finished", s.run.value("finished", nlohmann::json())},
        {"records", s.records.size()},
        {"environment", s.run.value("environment", nlohmann::json())},
    };
    if (s.run.contains("resumed")) {
      entry["resumed"] = s.run.at("resumed");
    }
    list.push_back(entry);
    const std::string start = s.run.value("started", "");
    const std::string end = s.run.value("finished", "");
    if (started.empty() || epoch_seconds(start) < epoch_seconds(started)) {
      started = start;
    }
    if (finished.empty() || epoch_seconds(end) > epoch_seconds(finished)) {
      finished = end;
    }
  }
  run["started"] = started;
  run["finished"] = finished;
  run["records"] = outcome.records.size();
  run["certified_violations"] = outcome.summary.violations.size();
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char at[64];
  std::strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%S%z", &tm);
  run["merged"] = {{"at", at}, {"shards", list}};
  // Records equal an unsharded run's bit for bit only with the same --batch
  // (checked), threads and libraries: say where the shards differ.
  for (const char* key : {"threads", "libtorch", "blas"}) {
    std::vector<std::string> values;
    std::set<std::string> distinct;
    for (const auto& s : shards) {
      const std::string value = s.run.value("environment", nlohmann::json::object()).value(key, nlohmann::json()).dump();
      distinct.insert(value);
      values.push_back(fmt::format("{} in shard {}", value, shard_name(s.shard)));
    }
    if (distinct.size() > 1) {
      outcome.notes.push_back(fmt::format("{}: {}", key, fmt::join(values, ", ")));
    }
  }

  write_folder(out, {{"samples.jsonl", lines},
                     {"summary.csv", summary_csv(outcome.summary)},
                     {"run.json", run.dump(2) + "\n"}});
  return outcome;
}

}  // namespace bb
