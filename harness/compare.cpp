#include "harness/compare.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <tuple>

#include <fmt/format.h>

#include "core/error.h"
#include "core/io.h"

namespace bb {

namespace {

// A field as it appears in a message: quoted, cut after 40 characters.
std::string shown(const std::string& text) {
  std::string out = text.size() > 40 ? text.substr(0, 40) + "..." : text;
  for (char& ch : out) {
    if (ch == '\n' || ch == '\r') {
      ch = ' ';
    }
  }
  return "'" + out + "'";
}

}  // namespace

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& file) {
  std::vector<CsvRecord> records;
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) {
    i = 3;
  }
  int64_t line = 1;
  const size_t n = text.size();
  while (i < n) {
    CsvRecord record;
    record.line = line;
    bool end_of_record = false;
    while (!end_of_record) {
      std::string field;
      if (i < n && text[i] == '"') {
        const int64_t opened = line;
        ++i;
        bool closed = false;
        while (i < n) {
          const char ch = text[i];
          if (ch == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            closed = true;
            break;
          }
          if (ch == '\n') {
            ++line;
          }
          field += ch;
          ++i;
        }
        BB_CHECK(closed, "{}:{}: quoted field never closed (a \" without its closing \")", file, opened);
        BB_CHECK(
            i >= n || text[i] == ',' || text[i] == '\n' || (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n'),
            "{}:{}: unexpected character after a closing quote (a \" inside a field must be doubled)",
            file,
            line);
      } else {
        while (i < n && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')) {
          BB_CHECK(
              text[i] != '"',
              "{}:{}: a \" inside an unquoted field (quote the whole field and double the \")",
              file,
              line);
          field += text[i];
          ++i;
        }
      }
      record.fields.push_back(std::move(field));
      if (i >= n) {
        end_of_record = true;
      } else if (text[i] == ',') {
        ++i;
      } else {
        i += text[i] == '\r' ? 2 : 1;
        ++line;
        end_of_record = true;
      }
    }
    const bool blank = record.fields.size() == 1 && record.fields[0].empty();
    if (!blank) {
      records.push_back(std::move(record));
    }
  }
  return records;
}

const std::vector<std::string>& summary_columns() {
  static const std::vector<std::string> columns{
      "model", "norm", "method", "kind", "certified", "samples", "succeeded", "median_value",
      "median_tightness", "p10_tightness", "p90_tightness", "violations", "violation_rate",
      "median_seconds", "gradients_per_sample", "name"};
  return columns;
}

namespace {

// The fields of one record, looked up by column name, parsed with messages
// that name the file, the line and the column.
class RowReader {
 public:
  RowReader(const CsvRecord& record, const std::map<std::string, size_t>& index, const std::string& file)
      : record_(record), index_(index), file_(file) {}

  const std::string& text(const std::string& column) const {
    return record_.fields[index_.at(column)];
  }

  std::string required_text(const std::string& column) const {
    const std::string& value = text(column);
    BB_CHECK(!value.empty(), "{}:{}: {}: empty", file_, record_.line, column);
    return value;
  }

  // NaN for an empty field (a figure that does not exist).
  double number(const std::string& column) const {
    const std::string& value = text(column);
    if (value.empty()) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    double out = 0;
    const char* end = value.data() + value.size();
    const auto [ptr, error] = std::from_chars(value.data(), end, out);
    BB_CHECK(
        error == std::errc() && ptr == end && std::isfinite(out),
        "{}:{}: {}: not a finite number: {}",
        file_,
        record_.line,
        column,
        shown(value));
    return out;
  }

  int64_t count(const std::string& column) const {
    const std::string& value = text(column);
    BB_CHECK(!value.empty(), "{}:{}: {}: empty (a count is always written)", file_, record_.line, column);
    int64_t out = 0;
    const char* end = value.data() + value.size();
    const auto [ptr, error] = std::from_chars(value.data(), end, out);
    BB_CHECK(
        error == std::errc() && ptr == end && out >= 0,
        "{}:{}: {}: not a count (an integer >= 0): {}",
        file_,
        record_.line,
        column,
        shown(value));
    return out;
  }

  bool flag(const std::string& column) const {
    const std::string& value = text(column);
    if (value == "true" || value == "1") {
      return true;
    }
    BB_CHECK(
        value == "false" || value == "0",
        "{}:{}: {}: expected true or false, got {}",
        file_,
        record_.line,
        column,
        shown(value));
    return false;
  }

 private:
  const CsvRecord& record_;
  const std::map<std::string, size_t>& index_;
  const std::string& file_;
};

}  // namespace

SummaryFile parse_summary_csv(const std::string& text, const std::string& file) {
  const std::vector<CsvRecord> records = parse_csv(text, file);
  BB_CHECK(!records.empty(), "{}:1: empty file (expected the summary.csv header)", file);
  const CsvRecord& header = records.front();
  std::map<std::string, size_t> index;
  for (size_t c = 0; c < header.fields.size(); ++c) {
    BB_CHECK(
        index.emplace(header.fields[c], c).second,
        "{}:{}: column {} appears twice",
        file,
        header.line,
        shown(header.fields[c]));
  }
  for (const auto& column : summary_columns()) {
    BB_CHECK(
        index.count(column) > 0,
        "{}:{}: missing column '{}' (a summary.csv has: {})",
        file,
        header.line,
        column,
        fmt::join(summary_columns(), ","));
  }
  SummaryFile summary;
  summary.file = file;
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> seen;
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& record = records[r];
    BB_CHECK(
        record.fields.size() == header.fields.size(),
        "{}:{}: {} fields, the header has {}",
        file,
        record.line,
        record.fields.size(),
        header.fields.size());
    const RowReader read(record, index, file);
    SummaryRow row;
    row.model = read.required_text("model");
    row.norm = read.required_text("norm");
    row.method = read.required_text("method");
    row.kind = read.text("kind");
    BB_CHECK(
        row.kind == "attack" || row.kind == "bound" || row.kind == "exact",
        "{}:{}: kind: expected attack, bound or exact, got {}",
        file,
        record.line,
        shown(row.kind));
    row.certified = read.flag("certified");
    row.samples = read.count("samples");
    row.succeeded = read.count("succeeded");
    row.median_value = read.number("median_value");
    row.median_tightness = read.number("median_tightness");
    row.p10_tightness = read.number("p10_tightness");
    row.p90_tightness = read.number("p90_tightness");
    row.violations = read.count("violations");
    row.violation_rate = read.number("violation_rate");
    row.median_seconds = read.number("median_seconds");
    row.gradients_per_sample = read.number("gradients_per_sample");
    row.name = read.text("name");
    const auto [it, fresh] = seen.emplace(std::make_tuple(row.model, row.norm, row.method), record.line);
    BB_CHECK(
        fresh,
        "{}:{}: duplicate row for model {}, norm {}, method {} (first on line {})",
        file,
        record.line,
        row.model,
        row.norm,
        row.method,
        it->second);
    summary.summary.rows.push_back(std::move(row));
    summary.lines.push_back(record.line);
  }
  return summary;
}

SummaryFile read_summary_csv(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  BB_CHECK(fs::exists(status), "{}: no such file or folder (expected a run folder or its summary.csv)", path);
  std::string file = path;
  if (fs::is_directory(status)) {
    file = (fs::path(path) / "summary.csv").string();
    BB_CHECK(fs::exists(file), "{}: not found (is {} a run folder?)", file, path);
  }
  BB_CHECK(!fs::is_directory(file), "{}: a folder, expected a summary.csv file", file);
  return parse_summary_csv(read_text_file(file), file);
}

void check_compare_options(const CompareOptions& options) {
  BB_CHECK(
      std::isfinite(options.tightness_tol) && options.tightness_tol >= 0 && options.tightness_tol < 1,
      "--tightness-tol: expected a relative tolerance in [0, 1), got {}",
      options.tightness_tol);
  BB_CHECK(
      std::isfinite(options.distortion_tol) && options.distortion_tol >= 0,
      "--distortion-tol: expected a relative tolerance >= 0, got {}",
      options.distortion_tol);
  BB_CHECK(
      std::isfinite(options.time_tol) && options.time_tol >= 0,
      "--time-tol: expected a relative tolerance >= 0, got {} (--ignore-time turns the time check off)",
      options.time_tol);
}

namespace {

std::string percent(double fraction) {
  return fmt::format("{:.3g}%", 100 * fraction);
}

// A relative change "+12.3%" of `now` against `before`.
std::string change(double before, double now) {
  if (before == 0) {
    return now == 0 ? "+0%" : "from 0";
  }
  return fmt::format("{:+.1f}%", 100 * (now - before) / before);
}

bool has(double figure) {
  return std::isfinite(figure);
}

std::vector<std::string> regressions_of(const SummaryRow& base, const SummaryRow& now, const CompareOptions& options) {
  std::vector<std::string> out;
  if (base.kind != now.kind) {
    out.push_back(fmt::format("kind {} -> {}", base.kind, now.kind));
  }
  if (now.kind == "bound") {
    if (has(base.median_tightness)) {
      if (!has(now.median_tightness)) {
        out.push_back(fmt::format("no median tightness (base {:.4g})", base.median_tightness));
      } else if (now.median_tightness < base.median_tightness * (1 - options.tightness_tol)) {
        out.push_back(fmt::format(
            "tightness {:.4g} -> {:.4g} ({}, tolerance -{})",
            base.median_tightness,
            now.median_tightness,
            change(base.median_tightness, now.median_tightness),
            percent(options.tightness_tol)));
      }
    }
    if (base.kind == "bound" && base.certified && !now.certified) {
      out.push_back("no longer certified");
    }
    if (now.certified && now.violations > 0) {
      out.push_back(fmt::format(
          "{} certified violation{} (bound above an attack)", now.violations, now.violations == 1 ? "" : "s"));
    }
  } else if (now.kind == "exact") {
    if (now.violations > 0) {
      out.push_back(fmt::format(
          "{} exact value{} above an attack", now.violations, now.violations == 1 ? "" : "s"));
    }
  } else if (now.kind == "attack") {
    if (has(base.median_value)) {
      if (!has(now.median_value)) {
        out.push_back(fmt::format("no successes (base distortion {:.4g})", base.median_value));
      } else if (now.median_value > base.median_value * (1 + options.distortion_tol)) {
        out.push_back(fmt::format(
            "distortion {:.4g} -> {:.4g} ({}, tolerance +{})",
            base.median_value,
            now.median_value,
            change(base.median_value, now.median_value),
            percent(options.distortion_tol)));
      }
    }
  }
  if (options.check_time && has(base.median_seconds)) {
    if (!has(now.median_seconds)) {
      out.push_back("no median time");
    } else if (now.median_seconds > base.median_seconds * (1 + options.time_tol)) {
      out.push_back(fmt::format(
          "time {:.3g} s -> {:.3g} s ({}, tolerance +{})",
          base.median_seconds,
          now.median_seconds,
          change(base.median_seconds, now.median_seconds),
          percent(options.time_tol)));
    }
  }
  return out;
}

using Key = std::tuple<std::string, std::string, std::string>;

Key key_of(const SummaryRow& row) {
  return {row.model, row.norm, row.method};
}

}  // namespace

int64_t Comparison::regressed() const {
  return std::count_if(rows.begin(), rows.end(), [](const RowComparison& r) { return !r.regressions.empty(); });
}

int64_t Comparison::missing() const {
  return std::count_if(
      rows.begin(), rows.end(), [](const RowComparison& r) { return r.status == RowComparison::Status::kMissing; });
}

int64_t Comparison::added() const {
  return std::count_if(
      rows.begin(), rows.end(), [](const RowComparison& r) { return r.status == RowComparison::Status::kAdded; });
}

Comparison compare_summaries(const SummaryFile& base, const SummaryFile& current, const CompareOptions& options) {
  check_compare_options(options);
  Comparison comparison;
  comparison.base_file = base.file;
  comparison.current_file = current.file;
  comparison.options = options;
  std::map<Key, const SummaryRow*> now_rows;
  for (const auto& row : current.summary.rows) {
    now_rows.emplace(key_of(row), &row);
  }
  std::set<Key> matched;
  for (const auto& row : base.summary.rows) {
    RowComparison r;
    r.base = row;
    const auto it = now_rows.find(key_of(row));
    if (it == now_rows.end()) {
      r.status = RowComparison::Status::kMissing;
      r.regressions.push_back("missing in NEW");
    } else {
      r.current = *it->second;
      r.regressions = regressions_of(row, *it->second, options);
      r.options_changed = row.name != it->second->name;
      matched.insert(it->first);
    }
    comparison.rows.push_back(std::move(r));
  }
  for (const auto& row : current.summary.rows) {
    if (matched.count(key_of(row)) == 0) {
      RowComparison r;
      r.status = RowComparison::Status::kAdded;
      r.current = row;
      comparison.rows.push_back(std::move(r));
    }
  }
  return comparison;
}

namespace {

std::string cell(const std::optional<SummaryRow>& row, double SummaryRow::*field, const char* format) {
  if (!row || !has((*row).*field)) {
    return "-";
  }
  return fmt::format(fmt::runtime(format), (*row).*field);
}

std::string kind_label(const SummaryRow& row) {
  if (row.kind == "attack" || row.kind == "exact") {
    return row.kind;
  }
  return row.certified ? "bound, cert." : "bound, est.";
}

}  // namespace

std::string format_comparison_table(const Comparison& comparison) {
  const std::vector<std::string> header{
      "model", "norm", "method", "kind", "tightness", "(new)", "median value", "(new)", "s/sample", "(new)",
      "status"};
  // Numbers right-aligned, text left-aligned.
  const std::vector<bool> right{false, false, false, false, true, true, true, true, true, true, false};
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : comparison.rows) {
    const SummaryRow& any = r.any();
    std::string status;
    switch (r.status) {
      case RowComparison::Status::kAdded:
        status = "new in NEW";
        break;
      case RowComparison::Status::kMissing:
        status = "REGRESSED: missing in NEW";
        break;
      case RowComparison::Status::kMatched:
        status = r.regressions.empty() ? "ok"
                                       : fmt::format("REGRESSED: {}", fmt::join(r.regressions, "; "));
        break;
    }
    rows.push_back({
        any.model,
        any.norm,
        any.method,
        kind_label(r.current ? *r.current : any),
        cell(r.base, &SummaryRow::median_tightness, "{:.4g}"),
        cell(r.current, &SummaryRow::median_tightness, "{:.4g}"),
        cell(r.base, &SummaryRow::median_value, "{:.4g}"),
        cell(r.current, &SummaryRow::median_value, "{:.4g}"),
        cell(r.base, &SummaryRow::median_seconds, "{:.3g}"),
        cell(r.current, &SummaryRow::median_seconds, "{:.3g}"),
        status,
    });
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  auto line = [&](const std::vector<std::string>& fields) {
    std::string out;
    for (size_t c = 0; c < fields.size(); ++c) {
      if (c + 1 == fields.size()) {
        out += fields[c];  // the last column: no padding
      } else {
        out += right[c] ? fmt::format("{:>{}}  ", fields[c], width[c]) : fmt::format("{:<{}}  ", fields[c], width[c]);
      }
    }
    return out + "\n";
  };
  std::string out = fmt::format("BASE {}\nNEW  {}\n", comparison.base_file, comparison.current_file);
  out += line(header);
  for (const auto& row : rows) {
    out += line(row);
  }
  std::vector<std::string> changed;
  for (const auto& r : comparison.rows) {
    if (r.options_changed) {
      changed.push_back(fmt::format("{} {} {}", r.any().model, r.any().norm, r.any().method));
    }
  }
  if (!changed.empty()) {
    out += fmt::format(
        "note: run with other options in NEW (its name differs): {}\n", fmt::join(changed, ", "));
  }
  return out;
}

std::string format_verdict(const Comparison& comparison) {
  const auto& o = comparison.options;
  const std::string tolerances = fmt::format(
      "tolerances: tightness -{}, distortion +{}, time {}",
      percent(o.tightness_tol),
      percent(o.distortion_tol),
      o.check_time ? "+" + percent(o.time_tol) : std::string("not checked"));
  const int64_t total = static_cast<int64_t>(comparison.rows.size()) - comparison.added();
  const int64_t missing = comparison.missing();
  const int64_t added = comparison.added();
  std::string extra;
  if (added > 0) {
    extra = fmt::format(", {} new in NEW", added);
  }
  if (comparison.passed()) {
    return fmt::format(
        "compare: PASS: {} row{} of BASE matched, none regressed{} ({})",
        total,
        total == 1 ? "" : "s",
        extra,
        tolerances);
  }
  const int64_t regressed = comparison.regressed() - missing;
  std::string what = fmt::format("{} of {} row{} regressed", regressed, total, total == 1 ? "" : "s");
  if (missing > 0) {
    what += fmt::format(", {} missing in NEW", missing);
  }
  return fmt::format("compare: FAIL: {}{} ({})", what, extra, tolerances);
}

}  // namespace bb
