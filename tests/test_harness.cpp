// The harness: one method interface over attacks and bounds, the runner
// (records appended, resume, per-sample determinism) and the summary.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "datasets/dataset.h"
#include "harness/methods.h"
#include "harness/records.h"
#include "harness/runner.h"
#include "models/layers.h"
#include "tests/helpers.h"

namespace bb {
namespace {

namespace fs = std::filesystem;

// Options small enough for tests, the same for every run that is compared.
MethodOptions small_options() {
  MethodOptions o;
  o.attack.pgd.steps = 5;
  o.attack.search.bisection_steps = 6;
  o.attack.refine.steps = 8;
  o.bound.sampled.draws = 16;
  o.bound.sampled.chunk = 8;
  o.bound.sampled.ascent_steps = 3;
  o.bound.sampled.domain_starts = 0;
  o.bound.clever.batches = 4;
  o.bound.clever.batch_size = 8;
  o.bound.local_ball.octaves = 6;
  o.bound.local_ball.bisection_steps = 4;
  o.bound.shells.shells = 2;
  o.bound.shells.rounds = 2;
  o.bound.crown_radius.bisection_steps = 4;
  return o;
}

// A one-hidden-layer softplus network 6 -> 10 -> 4 in float64 on [0, 1]^6:
// every method of the registry serves it (Hein's form too).
Model tiny_network() {
  torch::manual_seed(21);
  Layer first{LayerKind::Linear, torch::randn({10, 6}, torch::kFloat64), torch::randn({10}, torch::kFloat64) * 0.5};
  Layer act{LayerKind::Softplus};
  act.beta = 2.0;
  Layer last{LayerKind::Linear, torch::randn({4, 10}, torch::kFloat64) / std::sqrt(10.0), torch::zeros({4}, torch::kFloat64)};
  LayerList layers{first, act, last};
  Classifier classifier(
      [layers](const torch::Tensor& x) { return run_layers(layers, x); },
      InputSpec{{6}, 4, Box{0, 1}},
      torch::kCPU,
      "tiny");
  return Model{classifier, "tiny", "0123456789abcdef", layers, "", {}};
}

// Equal up to float64 rounding (a matrix product over another number of rows
// may add in another order), NaN where the other is NaN.
torch::Tensor same(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs() <= 1e-12 * a.abs()) | (torch::isnan(a) & torch::isnan(b));
}

// Every method, attack or bound: a sample's value, success and cost are the
// same whichever batch it runs in (its random numbers are keyed by the seed,
// the method and its index): the same successes and gradient counts, values
// to float64 rounding on this float64 network.
TEST(Methods, ASampleGivesTheSameResultInAnyBatch) {
  const Model model = tiny_network();
  torch::manual_seed(4);
  auto x = torch::rand({7, 6}, torch::kFloat64);
  auto c = model.classifier.predict(x);
  auto index = torch::arange(100, 107, torch::kInt64);
  for (const auto& name : method_names()) {
    if (name == "exact-milp") {
      continue;  // ReLU chains only: tests/test_exact_milp.cpp checks it in any batch
    }
    for (Norm p : {Norm::L2, Norm::Linf}) {
      std::unique_ptr<Method> method;
      try {
        method = make_method(name, p, small_options());
      } catch (const Error&) {
        continue;  // a norm this bound does not support
      }
      method->check(model);
      auto whole = method->run(model, x, c, MethodContext{3, index, {}});
      for (auto rows : {torch::tensor({4}, torch::kInt64), torch::tensor({6, 0, 2}, torch::kInt64)}) {
        auto part = make_method(name, p, small_options())
                        ->run(model, x.index_select(0, rows), c.index_select(0, rows),
                              MethodContext{3, index.index_select(0, rows), {}});
        EXPECT_TRUE(same(part.value, whole.value.index_select(0, rows)).all().item<bool>())
            << method->name() << " " << (part.value - whole.value.index_select(0, rows)).abs().max().item<double>();
        EXPECT_TRUE(torch::equal(part.success, whole.success.index_select(0, rows))) << method->name();
        EXPECT_TRUE(torch::equal(part.gradients, whole.gradients.index_select(0, rows))) << method->name();
      }
      // Not a comparison of failures alone.
      EXPECT_GT(whole.success.sum().item<int64_t>(), 0) << method->name();
    }
  }
}

// The attack keys parse like the bound keys, and the names print them.
TEST(Methods, OptionKeysAreTheKeysTheNamesPrint) {
  MethodOptions o;
  set_option(o, "pgd.steps", "100");
  set_option(o, "deepfool.overshoot", "0.05");
  set_option(o, "clever.batches", "50");
  set_option(o, "pgd.random_start", "false");
  EXPECT_EQ(option_text(o, "pgd.steps"), "100");
  const std::string pgd = make_method("pgd", Norm::L2, o)->name();
  EXPECT_NE(pgd.find("pgd-L2(steps=100,"), std::string::npos) << pgd;
  EXPECT_NE(pgd.find("random_start=false"), std::string::npos) << pgd;
  EXPECT_NE(make_method("deepfool", Norm::L2, o)->name().find("overshoot=0.05"), std::string::npos);
  EXPECT_NE(make_method("lipschitz-clever", Norm::L2, o)->name().find("clever.batches=50"), std::string::npos);
  testing::expect_error([&] { set_option(o, "pgd.step", "3"); }, {"pgd.step", "pgd.steps", "clever.batches"});
  testing::expect_error([&] { set_option(o, "pgd.steps", "many"); }, {"--pgd.steps", "an integer", "many"});
  set_option(o, "pgd.steps", "0");
  testing::expect_error([&] { make_method("pgd", Norm::L2, o); }, {"--pgd.steps", "at least 1"});
  testing::expect_error([&] { make_method("cw", Norm::L2); }, {"unknown method 'cw'", "deepfool", "crown-radius"});
}

nlohmann::json record(const std::string& method, const std::string& kind, bool certified, int64_t sample,
                      double value, double seconds = 0.5) {
  return {{"model", "m"}, {"norm", "L2"}, {"sample", sample}, {"method", method}, {"name", method + "(a=1,b=2)"},
          {"kind", kind}, {"certified", certified}, {"success", std::isfinite(value)},
          {"value", std::isfinite(value) ? nlohmann::json(value) : nlohmann::json()},
          {"seconds", seconds}, {"gradients", 10}};
}

// Reference = the smallest successful attack per sample; tightness and its
// percentiles as NumPy computes them; violations counted, certified ones listed.
TEST(Summary, TightnessAgainstTheSmallestAttackDistortion) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<nlohmann::json> records{
      record("pgd", "attack", false, 0, 2.0), record("deepfool", "attack", false, 0, 4.0),
      record("pgd", "attack", false, 1, nan), record("deepfool", "attack", false, 1, 1.0),
      record("pgd", "attack", false, 2, 3.0), record("deepfool", "attack", false, 2, 3.0),
      record("pgd", "attack", false, 3, nan), record("deepfool", "attack", false, 3, nan),
      record("lb", "bound", true, 0, 1.0), record("lb", "bound", true, 1, 0.5),
      record("lb", "bound", true, 2, 3.3), record("lb", "bound", true, 3, 0.1),
      record("est", "bound", false, 0, 2.2), record("est", "bound", false, 1, 0.25),
      record("est", "bound", false, 2, nan), record("est", "bound", false, 3, 1.0),
  };
  const Summary s = summarise(records);
  ASSERT_EQ(s.rows.size(), 4u);
  std::map<std::string, SummaryRow> rows;
  for (const auto& r : s.rows) {
    rows[r.method] = r;
  }
  // Attacks first, then certified, then estimated bounds.
  EXPECT_EQ(s.rows[0].kind, "attack");
  EXPECT_EQ(s.rows[2].method, "lb");
  EXPECT_EQ(s.rows[3].method, "est");
  // References: 2, 1, 3, none.
  EXPECT_EQ(rows["pgd"].succeeded, 2);
  EXPECT_DOUBLE_EQ(rows["pgd"].median_value, 2.5);
  EXPECT_DOUBLE_EQ(rows["pgd"].median_tightness, 1.0);  // 2/2 and 3/3
  EXPECT_DOUBLE_EQ(rows["deepfool"].median_tightness, 1.0);  // 2, 1, 1
  EXPECT_DOUBLE_EQ(rows["deepfool"].p90_tightness, 1.8);
  // lb: 0.5, 0.5, 1.1 (sample 3 has no reference).
  EXPECT_DOUBLE_EQ(rows["lb"].median_tightness, 0.5);
  EXPECT_NEAR(rows["lb"].p10_tightness, 0.5, 1e-15);
  EXPECT_NEAR(rows["lb"].p90_tightness, 0.98, 1e-12);
  EXPECT_EQ(rows["lb"].violations, 1);
  EXPECT_NEAR(rows["lb"].violation_rate, 1.0 / 3.0, 1e-15);
  ASSERT_EQ(s.violations.size(), 1u);
  EXPECT_EQ(s.violations[0].sample, 2);
  EXPECT_DOUBLE_EQ(s.violations[0].bound, 3.3);
  EXPECT_DOUBLE_EQ(s.violations[0].reference, 3.0);
  // est: 1.1 and 0.25 (an even count: the mean of the two).
  EXPECT_DOUBLE_EQ(rows["est"].median_tightness, (1.1 + 0.25) / 2);
  EXPECT_EQ(rows["est"].violations, 1);
  EXPECT_EQ(rows["est"].succeeded, 3);
  EXPECT_DOUBLE_EQ(rows["est"].median_value, 1.0);
  // The CSV quotes the names, which hold commas.
  const std::string csv = summary_csv(s);
  EXPECT_NE(csv.find(",\"lb(a=1,b=2)\"\n"), std::string::npos) << csv;
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "model,norm,method,kind,certified,samples,succeeded,median_value,median_tightness,p10_tightness,"
            "p90_tightness,violations,violation_rate,median_seconds,gradients_per_sample,name");
}

bool have_mnist() {
  return fs::exists(fs::path(default_data_dir()) / "mnist" / "t10k-images-idx3-ubyte");
}

RunConfig zoo_config() {
  RunConfig config;
  config.models = {"mnist-mlp-relu"};
  config.norms = {Norm::Linf, Norm::L2};
  config.methods = {"deepfool", "pgd", "lipschitz-sampled", "local-ball-interval-ibp", "hein-one-layer"};
  config.options = small_options();
  config.samples = 5;
  config.batch = 2;
  config.seed = 11;
  return config;
}

// (model, norm, method, sample) -> the record without its time.
std::map<std::string, nlohmann::json> by_key(const std::vector<nlohmann::json>& records) {
  std::map<std::string, nlohmann::json> out;
  for (auto r : records) {
    r.erase("seconds");
    const std::string key = fmt::format("{} {} {} {}", r.at("model").get<std::string>(), r.at("norm").get<std::string>(),
                                        r.at("method").get<std::string>(), r.at("sample").get<int64_t>());
    EXPECT_FALSE(out.count(key)) << "repeated record " << key;
    out[key] = r;
  }
  return out;
}

// A run killed while appending (some batches written, the last line torn)
// and resumed gives the records of an uninterrupted run, none lost or repeated.
TEST(Runner, ResumeAfterAKillEqualsAnUninterruptedRun) {
  if (!have_mnist()) {
    GTEST_SKIP() << "MNIST not fetched (scripts/setup.sh)";
  }
  testing::TempDir dir;
  const RunConfig config = zoo_config();
  RunOptions whole{dir.file("whole"), false, true, "test"};
  const RunOutcome full = run_suite(config, whole);
  // 2 norms x 4 methods (Hein's one-layer form is skipped) x 5 samples.
  EXPECT_EQ(full.records_total, 40);
  const auto run = nlohmann::json::parse(std::ifstream(dir.file("whole/run.json")));
  ASSERT_EQ(run.at("skipped").size(), 2u);
  EXPECT_EQ(run.at("skipped")[0].at("method"), "hein-one-layer");
  EXPECT_TRUE(run.contains("finished"));
  EXPECT_EQ(run.at("models").at("mnist-mlp-relu").at("sha256").get<std::string>().size(), 64u);

  // The killed run: run.json and the first 13 records, then half a line.
  fs::create_directory(dir.file("killed"));
  fs::copy_file(dir.file("whole/run.json"), dir.file("killed/run.json"));
  std::ifstream in(dir.file("whole/samples.jsonl"));
  std::ofstream out(dir.file("killed/samples.jsonl"));
  std::string line;
  for (int i = 0; i < 13 && std::getline(in, line); ++i) {
    out << line << "\n";
  }
  std::getline(in, line);
  out << line.substr(0, line.size() / 2);
  out.close();
  RunOptions resume{dir.file("killed"), true, true, "test --resume"};
  const RunOutcome resumed = run_suite(config, resume);
  EXPECT_EQ(resumed.records_written, 40 - 13);
  EXPECT_EQ(resumed.records_total, 40);
  EXPECT_EQ(by_key(resumed.records), by_key(full.records));
  const auto after = nlohmann::json::parse(std::ifstream(dir.file("killed/run.json")));
  EXPECT_EQ(after.at("resumed").size(), 1u);
  EXPECT_EQ(after.at("resumed")[0].at("records_before"), 13);
}

// A sample's records do not depend on --batch: the same random numbers, the
// same successes and costs; values agree to float32 rounding (the BLAS
// blocks a matrix product differently for other batch sizes).
TEST(Runner, RecordsDoNotDependOnTheBatch) {
  if (!have_mnist()) {
    GTEST_SKIP() << "MNIST not fetched (scripts/setup.sh)";
  }
  RunConfig config = zoo_config();
  config.methods = {"deepfool", "pgd", "lipschitz-sampled"};
  config.norms = {Norm::L2};
  config.samples = 8;
  std::vector<std::map<std::string, nlohmann::json>> runs;
  for (int64_t batch : {1, 7, 20}) {  // 20: the default
    config.batch = batch;
    runs.push_back(by_key(run_suite(config, RunOptions{}).records));
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (const auto& [key, a] : runs[0]) {
      const auto& b = runs[r].at(key);
      EXPECT_EQ(a.at("success"), b.at("success")) << key;
      EXPECT_EQ(a.at("gradients"), b.at("gradients")) << key;
      ASSERT_TRUE(a.at("value").is_number()) << key;
      EXPECT_NEAR(a.at("value").get<double>(), b.at("value").get<double>(), 1e-5 * a.at("value").get<double>()) << key;
    }
  }
}

TEST(Runner, RefusesBadFoldersAndOtherConfigurations) {
  if (!have_mnist()) {
    GTEST_SKIP() << "MNIST not fetched (scripts/setup.sh)";
  }
  testing::TempDir dir;
  RunConfig config = zoo_config();
  config.methods = {"deepfool", "lipschitz-global"};
  config.norms = {Norm::L2};
  config.samples = 2;
  run_suite(config, RunOptions{dir.file("first"), false, true, "test"});
  // The folder is taken.
  testing::expect_error([&] { run_suite(config, RunOptions{dir.file("first"), false, true, "test"}); },
                        {"--out", "not empty", "--resume"});
  // Another configuration cannot resume it; the differing keys are named.
  RunConfig other = config;
  other.seed = 12;
  other.options.attack.pgd.steps = 9;
  testing::expect_error([&] { run_suite(other, RunOptions{dir.file("first"), true, true, "test"}); },
                        {"another configuration", "seed (11 there, 12 here)", "options.pgd.steps"});
  testing::expect_error([&] { run_suite(config, RunOptions{dir.file("none"), true, true, "test"}); },
                        {"--resume", "no such run folder"});
  testing::expect_error([&] { run_suite(config, RunOptions{dir.file("no/such/parent"), false, true, "test"}); },
                        {"--out", "does not exist"});
  EXPECT_FALSE(fs::exists(dir.file("no")));
  RunConfig unknown = config;
  unknown.methods = {"deepfool", "fab"};
  testing::expect_error([&] { run_suite(unknown, RunOptions{dir.file("second"), false, true, "test"}); },
                        {"unknown method 'fab'", "crown-radius"});
  EXPECT_FALSE(fs::exists(dir.file("second"))) << "refused before any work";
}

}  // namespace
}  // namespace bb
