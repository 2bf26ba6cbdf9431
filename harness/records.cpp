#include "harness/records.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "core/error.h"

namespace bb {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double number(const nlohmann::json& record, const char* key) {
  const auto it = record.find(key);
  return it == record.end() || !it->is_number() ? kNaN : it->get<double>();
}

// "%.6g" for the CSV; empty when not finite.
std::string csv_number(double v) {
  return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string();
}

std::string csv_quoted(const std::string& text) {
  std::string out = "\"";
  for (char ch : text) {
    out += ch;
    if (ch == '"') {
      out += '"';
    }
  }
  return out + "\"";
}

}  // namespace

std::vector<nlohmann::json> read_records(const std::string& path, size_t* complete_bytes) {
  std::ifstream in(path, std::ios::binary);
  BB_CHECK(in.good(), "{}: cannot read ({})", path, std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<nlohmann::json> records;
  size_t begin = 0;
  int64_t line = 0;
  while (begin < text.size()) {
    const size_t end = text.find('\n', begin);
    if (end == std::string::npos) {
      break;  // torn: the run was killed while appending this line
    }
    ++line;
    const std::string_view view(text.data() + begin, end - begin);
    nlohmann::json record = nlohmann::json::parse(view.begin(), view.end(), nullptr, /*allow_exceptions=*/false);
    BB_CHECK(record.is_object(), "{}: line {} is not a JSON object (a damaged record file)", path, line);
    records.push_back(std::move(record));
    begin = end + 1;
  }
  if (complete_bytes != nullptr) {
    *complete_bytes = begin;
  }
  return records;
}

RecordWriter::RecordWriter(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  BB_CHECK(fd_ >= 0, "{}: cannot open for appending ({})", path, std::strerror(errno));
}

RecordWriter::~RecordWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void RecordWriter::append(const std::vector<nlohmann::json>& records) {
  std::string text;
  for (const auto& record : records) {
    text += record.dump() + "\n";
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    BB_CHECK(n > 0, "{}: cannot append records ({})", path_, std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  BB_CHECK(::fsync(fd_) == 0, "{}: cannot flush records to disk ({})", path_, std::strerror(errno));
}

double percentile(std::vector<double> values, double q) {
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }), values.end());
  if (values.empty()) {
    return kNaN;
  }
  std::sort(values.begin(), values.end());
  const double position = q / 100.0 * static_cast<double>(values.size() - 1);
  const auto below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, values.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return values[below] + fraction * (values[above] - values[below]);
}

Summary summarise(const std::vector<nlohmann::json>& records) {
  using Key = std::tuple<std::string, std::string, int64_t>;  // model, norm, sample
  std::map<Key, double> reference;
  std::map<Key, double> exact;  // proven exact values
  for (const auto& r : records) {
    if (r.value("kind", "") == "exact" && r.value("success", false)) {
      const double v = number(r, "value");
      if (std::isfinite(v)) {
        exact[{r.value("model", ""), r.value("norm", ""), r.value("sample", int64_t{-1})}] = v;
      }
    }
    if (r.value("kind", "") == "attack" && r.value("success", false)) {
      const double v = number(r, "value");
      if (std::isfinite(v)) {
        const Key key{r.value("model", ""), r.value("norm", ""), r.value("sample", int64_t{-1})};
        auto [it, fresh] = reference.emplace(key, v);
        if (!fresh) {
          it->second = std::min(it->second, v);
        }
      }
    }
  }
  struct Group {
    SummaryRow row;
    std::vector<double> values, tightness, seconds;
    double gradients = 0;
    int64_t with_reference = 0;
    size_t order = 0;
  };
  std::map<std::tuple<std::string, std::string, std::string>, Group> groups;
  Summary summary;
  for (const auto& r : records) {
    const std::string model = r.value("model", "");
    const std::string norm = r.value("norm", "");
    const std::string method = r.value("method", "");
    auto [it, fresh] = groups.try_emplace({model, norm, method});
    Group& g = it->second;
    if (fresh) {
      g.order = groups.size();
      g.row.model = model;
      g.row.norm = norm;
      g.row.method = method;
      g.row.kind = r.value("kind", "");
      g.row.certified = r.value("certified", false);
      g.row.name = r.value("name", "");
    }
    const bool attack = g.row.kind == "attack";
    const double v = number(r, "value");
    const bool success = r.value("success", false) && std::isfinite(v);
    ++g.row.samples;
    g.row.succeeded += success ? 1 : 0;
    if (success) {
      g.values.push_back(v);
    }
    g.seconds.push_back(number(r, "seconds"));
    g.gradients += number(r, "gradients");
    const int64_t sample = r.value("sample", int64_t{-1});
    // A bound above the proven exact value: counted whether or not an
    // attack reached the sample (its tightness needs one).
    const auto known = exact.find({model, norm, sample});
    const bool above_exact = g.row.kind == "bound" && success && known != exact.end() &&
        v > known->second * (1 + kExactTolerance);
    const auto ref = reference.find({model, norm, sample});
    if (ref == reference.end() || (attack && !success)) {
      if (above_exact) {
        ++g.row.violations;
        if (g.row.certified) {
          summary.violations.push_back({model, norm, sample, method, v, known->second, "exact"});
        }
      }
      continue;
    }
    ++g.with_reference;
    if (!success) {
      continue;  // a bound that is not finite has no tightness
    }
    const double t = v / ref->second;
    g.tightness.push_back(t);
    // An exact value matches the best attack up to rounding; one above it by
    // more is a bug, as is any bound above either.
    const bool above_attack = g.row.kind == "exact" ? t > 1 + kExactTolerance : !attack && t > 1;
    if (above_attack || above_exact) {
      ++g.row.violations;
      if (g.row.certified) {
        summary.violations.push_back(above_attack ? Violation{model, norm, sample, method, v, ref->second, "attack"}
                                                  : Violation{model, norm, sample, method, v, known->second, "exact"});
      }
    }
  }
  std::vector<Group*> ordered;
  for (auto& [key, g] : groups) {
    SummaryRow& row = g.row;
    row.median_value = percentile(g.values, 50);
    row.median_tightness = percentile(g.tightness, 50);
    row.p10_tightness = percentile(g.tightness, 10);
    row.p90_tightness = percentile(g.tightness, 90);
    row.violation_rate = g.with_reference > 0
        ? static_cast<double>(row.violations) / static_cast<double>(g.with_reference) : kNaN;
    row.median_seconds = percentile(g.seconds, 50);
    row.gradients_per_sample = g.gradients / static_cast<double>(row.samples);
    ordered.push_back(&g);
  }
  // By model and norm as they first appear: attacks, the exact value, the
  // certified bounds, then the estimated ones, each kind in order of appearance.
  std::map<std::pair<std::string, std::string>, size_t> first;
  for (auto* g : ordered) {
    auto [it, fresh] = first.try_emplace({g->row.model, g->row.norm}, g->order);
    it->second = std::min(it->second, g->order);
  }
  auto rank = [](const SummaryRow& row) {
    return row.kind == "attack" ? 0 : row.kind == "exact" ? 1 : row.certified ? 2 : 3;
  };
  std::stable_sort(ordered.begin(), ordered.end(), [&](const Group* a, const Group* b) {
    const size_t fa = first.at({a->row.model, a->row.norm});
    const size_t fb = first.at({b->row.model, b->row.norm});
    return std::make_tuple(fa, rank(a->row), a->order) < std::make_tuple(fb, rank(b->row), b->order);
  });
  for (auto* g : ordered) {
    summary.rows.push_back(g->row);
  }
  return summary;
}

std::string describe(const Violation& v) {
  const bool exact = v.method == "exact-milp";
  return fmt::format(
      "{} {} sample {} {}: {} {:.6g} > {} {:.6g}", v.model, v.norm, v.sample, v.method,
      exact ? "exact minimum" : "bound", v.bound,
      v.against == "exact" ? "proven exact minimum" : "smallest attack distortion", v.reference);
}

std::string summary_csv(const Summary& summary) {
  std::string out =
      "model,norm,method,kind,certified,samples,succeeded,median_value,median_tightness,p10_tightness,"
      "p90_tightness,violations,violation_rate,median_seconds,gradients_per_sample,name\n";
  for (const auto& r : summary.rows) {
    out += fmt::format(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
        csv_quoted(r.model), r.norm, r.method, r.kind, r.certified ? "true" : "false", r.samples, r.succeeded,
        csv_number(r.median_value), csv_number(r.median_tightness), csv_number(r.p10_tightness),
        csv_number(r.p90_tightness), r.violations, csv_number(r.violation_rate), csv_number(r.median_seconds),
        csv_number(r.gradients_per_sample), csv_quoted(r.name));
  }
  return out;
}

std::string summary_table(const Summary& summary) {
  auto num = [](double v, const char* format) {
    return std::isfinite(v) ? fmt::format(fmt::runtime(format), v) : std::string("-");
  };
  std::string out;
  std::string current;
  for (const auto& r : summary.rows) {
    const std::string heading = r.model + "  " + r.norm;
    if (heading != current) {
      current = heading;
      out += fmt::format(
          "\n{}\n  {:<34} {:<9} {:>7} {:>10} {:>8} {:>15} {:>6} {:>9} {:>9}\n", heading, "method", "kind",
          "samples", "median", "tight.", "(p10, p90)", "above", "s/sample", "grad/smp");
    }
    const std::string kind = r.kind == "attack" || r.kind == "exact" ? r.kind : r.certified ? "certified" : "estimated";
    const std::string spread = std::isfinite(r.p10_tightness)
        ? fmt::format("({:.3f}, {:.3f})", r.p10_tightness, r.p90_tightness) : std::string("-");
    out += fmt::format(
        "  {:<34} {:<9} {:>3}/{:<3} {:>10} {:>8} {:>15} {:>6} {:>9} {:>9}\n", r.method, kind, r.succeeded, r.samples,
        num(r.median_value, "{:.4g}"), num(r.median_tightness, "{:.3f}"), spread,
        r.kind == "attack" ? std::string("") : std::to_string(r.violations), num(r.median_seconds, "{:.4f}"),
        num(r.gradients_per_sample, "{:.0f}"));
  }
  return out;
}

}  // namespace bb
