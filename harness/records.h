// The files of a run folder (boundbench run, attack and bound all write one):
//
// samples.jsonl — one JSON object per (model, norm, sample, method), appended
// batch by batch (a killed run keeps every finished batch):
//   model         zoo name or TorchScript path
//   model_sha256  the checkpoint's sha256
//   dataset       "mnist", "fashion-mnist", "cifar10"
//   norm          "L1", "L2" or "Linf"
//   sample        index of the image in the test split (the seed's key too)
//   label, predicted   true and predicted class at the clean image
//   method        registry name: "pgd", "deepfool", "local-ball-interval-crown"
//   name          the full name with every option: "pgd-Linf(steps=40,...)+search(...)+refine(steps=20)"
//   kind          "attack", "bound" or "exact" (exact-milp)
//   certified     bounds: whether the bound is certified; attacks: false; exact: true
//   success       attacks: an adversarial example was found; bounds: value is finite;
//                 exact: the minimum was proven
//   value         attacks: the distortion ||x_adv - x||_p (null when it failed);
//                 bounds: the lower bound (null when not finite);
//                 exact: the proven minimal distortion (null when not proven)
//   seconds       this sample's share of its batch's wall time
//   gradients     gradient evaluations spent on this sample
//   seed          the run's seed
//   bounds also: target (minimising class), grad_norm, radius, and
//   fit_rejected (CLEVER-based bounds only)
//   exact also: proven, lower and upper (the bracket: both equal value when
//   proven; null where infinite), target (the minimiser's class, -1: none),
//   milp_seconds (the sample's own MILP time), nodes (branch-and-bound nodes),
//   classes (MILPs solved), skipped (classes the pre-activation bounds
//   excluded), binaries (unstable ReLUs), incumbent (the attacks' distortion
//   that set the ball), recheck (ok, failed or none), distance64 and margin64
//   (the minimiser's distance and f_j - f_c in float64), margin_model (the
//   same margin in the model's own dtype)
//
// The reference distortion of a (model, norm, sample) is the smallest value
// among its successful attack records; tightness = value / reference (for an
// attack: >= 1, 1 for the best attack of that sample; for a proven exact
// value: <= 1).
//
// summary.csv — one row per (model, norm, method), RFC 4180 (the name is
// quoted), empty fields where a figure does not exist:
//   model,norm,method,kind,certified,samples,succeeded,median_value,
//   median_tightness,p10_tightness,p90_tightness,violations,violation_rate,
//   median_seconds,gradients_per_sample,name
//   samples         records of the method
//   succeeded       attacks: successes; bounds: finite values
//   median_value    attacks: median distortion of the successes; bounds: median bound
//   *_tightness     over the samples that have a reference (attacks: where
//                   the attack succeeded); medians are the usual median (mean
//                   of the two middle values for an even count), p10/p90 by
//                   linear interpolation (NumPy's default)
//   violations      bounds: samples with tightness > 1, or above the proven exact
//                   value of the sample (an estimated bound above either, or a
//                   certified one: a soundness bug); exact: proven values above
//                   the smallest attack distortion (a bug: the exact value is the
//                   minimum); both compared with exact values up to
//                   kExactTolerance; attacks: 0
//   violation_rate  violations / samples with a reference
//   median_seconds  median of the per-sample seconds
//   gradients_per_sample  mean gradient evaluations per sample
//
// run.json — the configuration, model checksums, LibTorch version, BLAS,
// device, threads, seed, git revision, start and end time, the command line.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bb {

// Reads samples.jsonl. A last line without its newline (a run killed while
// appending) is dropped; `complete_bytes` receives the length of the
// complete lines (where appending resumes). Any other line that is not a JSON
// object is a bb::Error naming the file and line.
std::vector<nlohmann::json> read_records(const std::string& path, size_t* complete_bytes = nullptr);

// Appends whole lines to a file and flushes them to disk (one write per call).
class RecordWriter {
 public:
  explicit RecordWriter(const std::string& path);
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;
  ~RecordWriter();
  void append(const std::vector<nlohmann::json>& records);

 private:
  std::string path_;
  int fd_ = -1;
};

// One row of summary.csv.
struct SummaryRow {
  std::string model;
  std::string norm;
  std::string method;
  std::string kind;
  bool certified = false;
  int64_t samples = 0;
  int64_t succeeded = 0;
  double median_value = 0;      // NaN: none
  double median_tightness = 0;  // NaN: none
  double p10_tightness = 0;
  double p90_tightness = 0;
  int64_t violations = 0;
  double violation_rate = 0;    // NaN: no sample has a reference
  double median_seconds = 0;
  double gradients_per_sample = 0;
  std::string name;
};

// Relative tolerance of the comparisons with a proven exact value. The MILP
// is solved to 1e-9 on the float64 network; the attacks and the bounds read
// the model in its own dtype (float32 for the zoo), whose decision boundary
// lies elsewhere by the logits' rounding over the margin's slope: measured
// up to 5e-6 relative on a random float32 MLP (tests/test_exact_milp.cpp).
constexpr double kExactTolerance = 1e-4;

// A certified bound above the smallest distortion an attack reached or above
// the proven exact value of the sample, or a proven exact value above the
// smallest attack distortion (method is then exact-milp).
struct Violation {
  std::string model;
  std::string norm;
  int64_t sample = 0;
  std::string method;
  double bound = 0;      // the bound (or the exact value)
  double reference = 0;  // what it exceeds
  std::string against = "attack";  // "attack": the smallest attack distortion; "exact": the proven exact value
};
// One line: "mnist-mlp-small-relu Linf sample 3 crown-radius: bound 0.031 >
// proven exact minimum 0.030".
std::string describe(const Violation& violation);

struct Summary {
  std::vector<SummaryRow> rows;        // by model, norm, kind (attacks first), method, in order of appearance
  std::vector<Violation> violations;   // certified only
};
Summary summarise(const std::vector<nlohmann::json>& records);
std::string summary_csv(const Summary& summary);
// The same table for a terminal (fmt).
std::string summary_table(const Summary& summary);

// NumPy's median and linear-interpolation percentile (q in [0, 100]) of the
// finite values; NaN when there are none.
double percentile(std::vector<double> values, double q);

}  // namespace bb
