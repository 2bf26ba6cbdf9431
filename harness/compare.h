// `boundbench compare BASE NEW`: reads two summary.csv files (the format is
// in harness/records.h), matches their rows by (model, norm, method) and
// names every regression of NEW against BASE.
//
// A matched row regresses when, in NEW:
//  - a bound's median tightness falls below base * (1 - tightness_tol), or
//    has no median tightness where BASE had one;
//  - a certified bound has violations > 0 (a soundness bug; whatever BASE had),
//    or a bound certified in BASE is no longer certified;
//  - an attack's median distortion (median_value) rises above
//    base * (1 + distortion_tol), or has none (no successes) where BASE had one;
//  - median_seconds rises above base * (1 + time_tol), unless check_time is off;
//  - an exact row (exact-milp) has violations > 0 (a proven minimum above an
//    attack's distortion: a bug);
//  - the kind (attack, bound or exact) changed.
// A (model, norm, method) of BASE that NEW lacks regresses too; one that only
// NEW has is listed, never a failure. Estimated bounds may have violations
// (they are estimates): those never fail.
//
// Malformed input (a missing file, a missing column, an unparsable number, a
// duplicate row, a broken quote) is a one-line bb::Error "FILE:LINE: ...".
// Rows are bb::SummaryRow (harness/records.h), as the harness writes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/records.h"

namespace bb {

// RFC 4180: fields separated by commas, records by LF or CRLF; a field in
// double quotes may hold commas, line breaks and doubled quotes (""). A
// leading UTF-8 byte order mark is skipped; blank lines are skipped.
struct CsvRecord {
  int64_t line = 0;  // the line the record starts on, from 1
  std::vector<std::string> fields;
};
// `file` names the source in error messages ("FILE:LINE: ...").
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& file);

// summary.csv as read back: the rows as summarise() makes them (NaN where a
// figure does not exist: an empty field), with where each came from.
struct SummaryFile {
  std::string file;            // the summary.csv read
  Summary summary;             // rows only (violations are not in the CSV)
  std::vector<int64_t> lines;  // the line each row starts on, from 1
};

// The columns summary.csv must have, in the order summary_csv writes them.
// Readers look them up by name: their order may differ and extra columns
// are ignored.
const std::vector<std::string>& summary_columns();

// `path`: a run folder (its summary.csv is read) or a summary.csv file.
SummaryFile read_summary_csv(const std::string& path);
// The same from text; `file` names it in error messages.
SummaryFile parse_summary_csv(const std::string& text, const std::string& file);

struct CompareOptions {
  double tightness_tol = 0.05;   // relative fall of a bound's median tightness
  double distortion_tol = 0.05;  // relative rise of an attack's median distortion
  double time_tol = 0.5;         // relative rise of median_seconds
  bool check_time = true;        // false: times are printed, never compared
};

struct RowComparison {
  enum class Status { kMatched, kMissing, kAdded };
  Status status = Status::kMatched;
  std::optional<SummaryRow> base;     // absent for kAdded
  std::optional<SummaryRow> current;  // absent for kMissing
  std::vector<std::string> regressions;  // empty: ok
  bool options_changed = false;          // matched, but `name` differs
  const SummaryRow& any() const { return base ? *base : *current; }
};

struct Comparison {
  std::string base_file;
  std::string current_file;
  CompareOptions options;
  // BASE's rows in its order (matched or missing), then those only NEW has.
  std::vector<RowComparison> rows;
  int64_t regressed() const;  // rows with regressions (missing ones included)
  int64_t missing() const;
  int64_t added() const;
  bool passed() const { return regressed() == 0; }
};

// Throws bb::Error when a tolerance is negative or not finite, or
// tightness_tol >= 1.
void check_compare_options(const CompareOptions& options);
Comparison compare_summaries(const SummaryFile& base, const SummaryFile& current, const CompareOptions& options);

// The table of every row (model, norm, method, kind, base/new median
// tightness, median value, median seconds, status) and the notes.
std::string format_comparison_table(const Comparison& comparison);
// One line: "compare: PASS ..." or "compare: FAIL ...".
std::string format_verdict(const Comparison& comparison);

}  // namespace bb
