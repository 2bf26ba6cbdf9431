// boundbench compare: the RFC 4180 reader, summary.csv parsing and its
// errors, and every regression rule against a committed baseline
// (tests/data/compare/summary.csv), with NEW written to a temporary run folder.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/compare.h"
#include "tests/helpers.h"

namespace bb {
namespace {

const std::string kBaseline = std::string(BOUNDBENCH_SOURCE_DIR) + "/tests/data/compare";

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// summary.csv text for `rows`, written by the harness's own writer.
std::string to_csv(const std::vector<SummaryRow>& rows) {
  Summary summary;
  summary.rows = rows;
  return summary_csv(summary);
}

SummaryRow& find(std::vector<SummaryRow>& rows, const std::string& norm, const std::string& method) {
  for (auto& r : rows) {
    if (r.norm == norm && r.method == method) {
      return r;
    }
  }
  ADD_FAILURE() << "no row " << norm << " " << method << " in the baseline";
  return rows.front();
}

class Compare : public ::testing::Test {
 protected:
  // The baseline, read from the committed run folder.
  SummaryFile base() const { return read_summary_csv(kBaseline); }

  // Writes `rows` as NEW's run folder and compares the baseline with it.
  Comparison compare_with(const std::vector<SummaryRow>& rows, const CompareOptions& options = {}) {
    write_file(dir_.file("summary.csv"), to_csv(rows));
    return compare_summaries(base(), read_summary_csv(dir_.path().string()), options);
  }

  // The regressions of the row (norm, method), joined.
  static std::string reasons(const Comparison& c, const std::string& norm, const std::string& method) {
    for (const auto& r : c.rows) {
      if (r.any().norm == norm && r.any().method == method) {
        return fmt::format("{}", fmt::join(r.regressions, "; "));
      }
    }
    return "(no such row)";
  }

  testing::TempDir dir_;
};

TEST(Csv, QuotedFieldsWithCommasDoubledQuotesAndLineBreaks) {
  const auto records = parse_csv(
      "\xEF\xBB\xBF"
      "a,b,c\r\n"
      "1,\"x,y\",\"say \"\"hi\"\"\"\r\n"
      "\n"
      "2,\"two\nlines\",\n"
      "3,,\"\"",
      "t.csv");
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].fields, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(records[1].fields, (std::vector<std::string>{"1", "x,y", "say \"hi\""}));
  EXPECT_EQ(records[2].fields, (std::vector<std::string>{"2", "two\nlines", ""}));
  EXPECT_EQ(records[3].fields, (std::vector<std::string>{"3", "", ""}));
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[1].line, 2);
  EXPECT_EQ(records[2].line, 4);  // line 3 is blank
  EXPECT_EQ(records[3].line, 6);  // the quoted line break counts
}

TEST(Csv, BrokenQuotesNameTheLine) {
  testing::expect_error([] { parse_csv("a,b\n1,\"open\n2,3\n", "q.csv"); }, {"q.csv:2:", "never closed"});
  testing::expect_error([] { parse_csv("a,b\n1,\"x\"y\n", "q.csv"); }, {"q.csv:2:", "after a closing quote"});
  testing::expect_error([] { parse_csv("a,b\n\n1,x\"y\n", "q.csv"); }, {"q.csv:3:", "unquoted field"});
}

TEST(Summary, ReadsTheBaselineFromAFolderOrAFile) {
  const SummaryFile folder = read_summary_csv(kBaseline);
  const SummaryFile file = read_summary_csv(kBaseline + "/summary.csv");
  EXPECT_EQ(folder.file, kBaseline + "/summary.csv");
  ASSERT_EQ(folder.summary.rows.size(), 7u);
  ASSERT_EQ(file.summary.rows.size(), folder.summary.rows.size());
  EXPECT_EQ(folder.lines, (std::vector<int64_t>{2, 3, 4, 5, 6, 7, 8}));
  const SummaryRow& pgd = folder.summary.rows[0];
  EXPECT_EQ(pgd.model, "mnist-mlp-relu");
  EXPECT_EQ(pgd.norm, "Linf");
  EXPECT_EQ(pgd.method, "pgd");
  EXPECT_EQ(pgd.kind, "attack");
  EXPECT_FALSE(pgd.certified);
  EXPECT_EQ(pgd.samples, 20);
  EXPECT_DOUBLE_EQ(pgd.median_value, 0.0691);
  EXPECT_EQ(pgd.name, "pgd-Linf(steps=40,rel_step=0.025,random_start=1)+search(eps0=0.5,doublings=12,bisect=20)+refine(steps=20)");
  // Empty fields: figures that do not exist, NaN as summarise() leaves them.
  const SummaryRow& fgsm = folder.summary.rows[2];
  EXPECT_EQ(fgsm.succeeded, 0);
  EXPECT_TRUE(std::isnan(fgsm.median_value));
  EXPECT_TRUE(std::isnan(fgsm.median_tightness));
  EXPECT_TRUE(std::isnan(fgsm.violation_rate));
  const SummaryRow& crown = folder.summary.rows[3];
  EXPECT_TRUE(crown.certified);
  EXPECT_EQ(crown.kind, "bound");
  EXPECT_DOUBLE_EQ(crown.median_tightness, 0.136);
  EXPECT_DOUBLE_EQ(crown.median_seconds, 0.545);
  EXPECT_EQ(folder.summary.rows[5].violations, 2);
}

TEST(Summary, ColumnsByNameInAnyOrderExtraColumnsIgnored) {
  const SummaryFile s = parse_summary_csv(
      "name,extra,model,norm,method,kind,certified,samples,succeeded,median_value,median_tightness,"
      "p10_tightness,p90_tightness,violations,violation_rate,median_seconds,gradients_per_sample\n"
      "\"pgd(a=1,b=\"\"c\"\")\",zzz,m,L2,pgd,attack,false,3,3,0.5,1,1,1,0,0,0.25,10\n",
      "s.csv");
  ASSERT_EQ(s.summary.rows.size(), 1u);
  EXPECT_EQ(s.summary.rows[0].name, "pgd(a=1,b=\"c\")");
  EXPECT_EQ(s.summary.rows[0].method, "pgd");
  EXPECT_DOUBLE_EQ(s.summary.rows[0].median_seconds, 0.25);
}

// Doubles as summary_csv writes them ("%.6g", empty when not finite).
void expect_figure(double written, double read, const char* what) {
  if (std::isnan(written)) {
    EXPECT_TRUE(std::isnan(read)) << what;
  } else {
    EXPECT_NEAR(read, written, 1e-5 * std::abs(written)) << what;
  }
}

TEST(Summary, ReadsWhatTheHarnessWrites) {
  // Two samples of a model whose name needs quoting; deepfool fails on one,
  // the certified bound is above the attack on sample 1 (a violation).
  std::vector<nlohmann::json> records;
  auto record = [&](int64_t sample, const char* method, const char* kind, bool certified, bool success,
                    nlohmann::json value, double seconds) {
    records.push_back({{"model", "/models/a,b \"q\".pt"}, {"norm", "L2"}, {"sample", sample}, {"method", method},
                       {"name", std::string(method) + "(x=1,y=\"z\")"}, {"kind", kind}, {"certified", certified},
                       {"success", success}, {"value", value}, {"seconds", seconds}, {"gradients", 7}});
  };
  record(0, "pgd", "attack", false, true, 0.5, 0.25);
  record(1, "pgd", "attack", false, true, 0.4, 0.5);
  record(0, "deepfool", "attack", false, true, 0.6, 0.01);
  record(1, "deepfool", "attack", false, false, nullptr, 0.02);
  record(0, "crown-radius", "bound", true, true, 0.1, 1.0);
  record(1, "crown-radius", "bound", true, true, 0.45, 1.5);
  record(0, "lipschitz-global", "bound", true, false, nullptr, 0.001);
  record(1, "lipschitz-global", "bound", true, false, nullptr, 0.001);
  const Summary written = summarise(records);
  const SummaryFile read = parse_summary_csv(summary_csv(written), "w.csv");
  ASSERT_EQ(read.summary.rows.size(), written.rows.size());
  ASSERT_EQ(read.summary.rows.size(), 4u);
  for (size_t i = 0; i < written.rows.size(); ++i) {
    const SummaryRow& w = written.rows[i];
    const SummaryRow& r = read.summary.rows[i];
    EXPECT_EQ(r.model, w.model);
    EXPECT_EQ(r.norm, w.norm);
    EXPECT_EQ(r.method, w.method);
    EXPECT_EQ(r.kind, w.kind);
    EXPECT_EQ(r.certified, w.certified);
    EXPECT_EQ(r.samples, w.samples);
    EXPECT_EQ(r.succeeded, w.succeeded);
    EXPECT_EQ(r.violations, w.violations);
    EXPECT_EQ(r.name, w.name);
    expect_figure(w.median_value, r.median_value, "median_value");
    expect_figure(w.median_tightness, r.median_tightness, "median_tightness");
    expect_figure(w.p10_tightness, r.p10_tightness, "p10_tightness");
    expect_figure(w.p90_tightness, r.p90_tightness, "p90_tightness");
    expect_figure(w.violation_rate, r.violation_rate, "violation_rate");
    expect_figure(w.median_seconds, r.median_seconds, "median_seconds");
    expect_figure(w.gradients_per_sample, r.gradients_per_sample, "gradients_per_sample");
  }
  // The certified violation is there to be caught, against itself too.
  const Comparison c = compare_summaries(read, read, {});
  EXPECT_FALSE(c.passed());
  bool named = false;
  for (const auto& row : c.rows) {
    if (row.any().method == "crown-radius") {
      named = !row.regressions.empty() && row.regressions[0] == "1 certified violation (bound above an attack)";
    }
  }
  EXPECT_TRUE(named) << format_comparison_table(c);
}

std::string baseline_text() {
  std::ifstream in(kBaseline + "/summary.csv", std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// `text` with the first `from` replaced by `to` (which must be there).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "'" << from << "' not in the baseline";
  if (at != std::string::npos) {
    text.replace(at, from.size(), to);
  }
  return text;
}

TEST(Summary, MalformedInputNamesTheFileAndLine) {
  testing::TempDir dir;
  const std::string file = dir.file("summary.csv");
  const std::string text = baseline_text();
  auto expect_refused = [&](const std::string& bad, std::initializer_list<std::string> parts) {
    write_file(file, bad);
    testing::expect_error([&] { read_summary_csv(dir.path().string()); }, parts);
  };
  // The crown row (line 5) has median_seconds 0.545.
  expect_refused(replaced(text, "0.545", "0.5x5"), {file + ":5:", "median_seconds", "not a finite number", "'0.5x5'"});
  expect_refused(replaced(text, "0.545", "nan"), {file + ":5:", "median_seconds", "'nan'"});
  expect_refused(replaced(text, ",0.136,", ",1e999,"), {file + ":5:", "median_tightness"});
  expect_refused(replaced(text, "true,20,20,0.008966", "true,-3,20,0.008966"), {file + ":5:", "samples", "'-3'"});
  expect_refused(replaced(text, "true,20,20,0.008966", "yes,20,20,0.008966"), {file + ":5:", "certified", "'yes'"});
  expect_refused(replaced(text, "Linf,deepfool,attack", "Linf,deepfool,atack"), {file + ":3:", "kind", "'atack'"});
  expect_refused(replaced(text, "median_seconds", "median_secs"), {file + ":1:", "missing column 'median_seconds'"});
  expect_refused(replaced(text, "norm,method", "norm,norm"), {file + ":1:", "column 'norm' appears twice"});
  expect_refused(replaced(text, ",0.136,", ",0.136,,"), {file + ":5:", "17 fields, the header has 16"});
  const size_t second_line = text.find('\n') + 1;
  const std::string pgd_line = text.substr(second_line, text.find('\n', second_line) + 1 - second_line);
  expect_refused(text + pgd_line, {file + ":9:", "duplicate row", "method pgd", "first on line 2"});
  expect_refused(replaced(text, "\"deepfool-Linf(", "\"deepfool-Linf(\"oops"), {file + ":3:", "closing quote"});
  expect_refused("", {file + ":1:", "empty file"});
  // Missing files and folders.
  testing::expect_error([&] { read_summary_csv(dir.file("nowhere")); }, {dir.file("nowhere"), "no such file or folder"});
  std::filesystem::create_directories(dir.file("empty-run"));
  testing::expect_error(
      [&] { read_summary_csv(dir.file("empty-run")); }, {dir.file("empty-run") + "/summary.csv", "not found"});
}

TEST(Summary, AnEmptyFigureIsNotAnError) {
  const SummaryFile s = parse_summary_csv(replaced(baseline_text(), "0.545", ""), "s.csv");
  EXPECT_TRUE(std::isnan(s.summary.rows[3].median_seconds));
}

TEST_F(Compare, IdenticalSummariesPass) {
  const Comparison same = compare_summaries(base(), read_summary_csv(kBaseline + "/summary.csv"), {});
  EXPECT_TRUE(same.passed());
  EXPECT_EQ(same.regressed(), 0);
  EXPECT_EQ(same.missing(), 0);
  EXPECT_EQ(same.added(), 0);
  ASSERT_EQ(same.rows.size(), 7u);
  for (const auto& r : same.rows) {
    EXPECT_EQ(r.status, RowComparison::Status::kMatched);
    EXPECT_FALSE(r.options_changed);
  }
  // Written back and read again: still identical.
  const Comparison rewritten = compare_with(base().summary.rows);
  EXPECT_TRUE(rewritten.passed()) << format_comparison_table(rewritten);
  EXPECT_EQ(format_verdict(rewritten).rfind("compare: PASS: 7 rows of BASE matched, none regressed", 0), 0u)
      << format_verdict(rewritten);
}

TEST_F(Compare, TightnessDropBeyondToleranceFails) {
  auto rows = base().summary.rows;
  find(rows, "Linf", "local-ball-interval-crown").median_tightness = 0.12;  // -11.8%
  const Comparison c = compare_with(rows);
  EXPECT_FALSE(c.passed());
  EXPECT_EQ(c.regressed(), 1);
  EXPECT_NE(reasons(c, "Linf", "local-ball-interval-crown").find("tightness 0.136 -> 0.12"), std::string::npos)
      << reasons(c, "Linf", "local-ball-interval-crown");
  const std::string table = format_comparison_table(c);
  EXPECT_NE(table.find("local-ball-interval-crown"), std::string::npos);
  EXPECT_NE(table.find("REGRESSED: tightness 0.136 -> 0.12"), std::string::npos) << table;
  EXPECT_EQ(format_verdict(c).rfind("compare: FAIL: 1 of 7 rows regressed", 0), 0u) << format_verdict(c);
  // A looser tolerance lets it pass.
  CompareOptions loose;
  loose.tightness_tol = 0.2;
  EXPECT_TRUE(compare_with(rows, loose).passed());
}

TEST_F(Compare, TightnessDropWithinToleranceOrRisePasses) {
  auto rows = base().summary.rows;
  find(rows, "Linf", "local-ball-interval-crown").median_tightness = 0.13;  // -4.4%
  find(rows, "Linf", "crown-radius").median_tightness = 0.6;
  const Comparison c = compare_with(rows);
  EXPECT_TRUE(c.passed()) << format_comparison_table(c);
}

TEST_F(Compare, ABoundWithoutTightnessInNewFails) {
  auto rows = base().summary.rows;
  find(rows, "L2", "local-ball-sampled").median_tightness = std::nan("");
  const Comparison c = compare_with(rows);
  EXPECT_FALSE(c.passed());
  EXPECT_NE(reasons(c, "L2", "local-ball-sampled").find("no median tightness"), std::string::npos);
}

TEST_F(Compare, CertifiedViolationFails) {
  auto rows = base().summary.rows;
  auto& crown = find(rows, "Linf", "crown-radius");
  crown.violations = 1;
  crown.violation_rate = 0.05;
  const Comparison c = compare_with(rows);
  EXPECT_FALSE(c.passed());
  EXPECT_EQ(c.regressed(), 1);
  EXPECT_NE(reasons(c, "Linf", "crown-radius").find("1 certified violation"), std::string::npos)
      << reasons(c, "Linf", "crown-radius");
}

TEST_F(Compare, EstimatedViolationsAloneDoNotFail) {
  auto rows = base().summary.rows;
  auto& clever = find(rows, "Linf", "lipschitz-clever");  // 2 in BASE already
  clever.violations = 5;
  clever.violation_rate = 0.25;
  auto& sampled = find(rows, "L2", "local-ball-sampled");  // 0 in BASE
  sampled.violations = 3;
  sampled.violation_rate = 0.15;
  const Comparison c = compare_with(rows);
  EXPECT_TRUE(c.passed()) << format_comparison_table(c);
}

TEST_F(Compare, ABoundNoLongerCertifiedFails) {
  auto rows = base().summary.rows;
  find(rows, "Linf", "crown-radius").certified = false;
  const Comparison c = compare_with(rows);
  EXPECT_FALSE(c.passed());
  EXPECT_NE(reasons(c, "Linf", "crown-radius").find("no longer certified"), std::string::npos);
}

TEST_F(Compare, AttackDistortionRiseFails) {
  auto rows = base().summary.rows;
  find(rows, "Linf", "pgd").median_value = 0.08;  // +15.8%
  find(rows, "Linf", "deepfool").median_value = 0.05;  // a fall is an improvement
  const Comparison c = compare_with(rows);
  EXPECT_FALSE(c.passed());
  EXPECT_EQ(c.regressed(), 1);
  EXPECT_NE(reasons(c, "Linf", "pgd").find("distortion 0.0691 -> 0.08"), std::string::npos) << reasons(c, "Linf", "pgd");
  // Within 5%: passes.
  find(rows, "Linf", "pgd").median_value = 0.072;
  EXPECT_TRUE(compare_with(rows).passed());
  // An attack that no longer succeeds has no distortion: that fails too.
  find(rows, "Linf", "pgd").median_value = std::nan("");
  const Comparison none = compare_with(rows);
  EXPECT_NE(reasons(none, "Linf", "pgd").find("no successes"), std::string::npos);
}

TEST_F(Compare, SlowdownFailsUnlessTimeIsIgnored) {
  auto rows = base().summary.rows;
  find(rows, "Linf", "lipschitz-clever").median_seconds = 4.0;  // +56% against 2.559
  const Comparison c = compare_with(rows);
  EXPECT_FALSE(c.passed());
  EXPECT_NE(reasons(c, "Linf", "lipschitz-clever").find("time 2.56 s -> 4 s"), std::string::npos)
      << reasons(c, "Linf", "lipschitz-clever");
  CompareOptions no_time;
  no_time.check_time = false;
  const Comparison ignored = compare_with(rows, no_time);
  EXPECT_TRUE(ignored.passed());
  EXPECT_NE(format_verdict(ignored).find("time not checked"), std::string::npos) << format_verdict(ignored);
  CompareOptions looser;
  looser.time_tol = 1.0;
  EXPECT_TRUE(compare_with(rows, looser).passed());
  // +37%: within the default 50%.
  find(rows, "Linf", "lipschitz-clever").median_seconds = 3.5;
  EXPECT_TRUE(compare_with(rows).passed());
}

TEST_F(Compare, MissingMethodFailsNewMethodIsListed) {
  auto rows = base().summary.rows;
  rows.erase(rows.begin() + 2);  // fgsm
  SummaryRow added = rows[0];
  added.method = "pgd-restarts";
  rows.push_back(added);
  const Comparison c = compare_with(rows);
  EXPECT_FALSE(c.passed());
  EXPECT_EQ(c.missing(), 1);
  EXPECT_EQ(c.added(), 1);
  EXPECT_EQ(c.regressed(), 1);
  EXPECT_EQ(reasons(c, "Linf", "fgsm"), "missing in NEW");
  const std::string table = format_comparison_table(c);
  EXPECT_NE(table.find("REGRESSED: missing in NEW"), std::string::npos) << table;
  EXPECT_NE(table.find("new in NEW"), std::string::npos) << table;
  EXPECT_NE(format_verdict(c).find("1 missing in NEW, 1 new in NEW"), std::string::npos) << format_verdict(c);
  // The new method alone is no failure.
  auto only_added = base().summary.rows;
  only_added.push_back(added);
  EXPECT_TRUE(compare_with(only_added).passed());
}

TEST_F(Compare, ChangedOptionsAreNotedNotFailed) {
  auto rows = base().summary.rows;
  find(rows, "Linf", "pgd").name = "pgd-Linf(steps=100)";
  const Comparison c = compare_with(rows);
  EXPECT_TRUE(c.passed());
  EXPECT_NE(format_comparison_table(c).find("note: run with other options in NEW"), std::string::npos);
}

TEST_F(Compare, ToleranceChecks) {
  CompareOptions bad;
  bad.tightness_tol = 1;
  testing::expect_error([&] { compare_summaries(base(), base(), bad); }, {"--tightness-tol"});
  bad = {};
  bad.distortion_tol = -0.1;
  testing::expect_error([&] { compare_summaries(base(), base(), bad); }, {"--distortion-tol"});
  bad = {};
  bad.time_tol = std::nan("");
  testing::expect_error([&] { compare_summaries(base(), base(), bad); }, {"--time-tol", "--ignore-time"});
}

}  // namespace
}  // namespace bb
