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
//   kind          "attack" or "bound"
//   certified     bounds: whether the bound is certified; attacks: false
//   success       attacks: an adversarial example was found; bounds: value is finite
//   value         attacks: the distortion ||x_adv - x||_p (null when it failed);
//                 bounds: the lower bound (null when not finite)
//   seconds       this sample's share of its batch's wall time
//   gradients     gradient evaluations spent on this sample
//   seed          the run's seed
//   bounds also: target (minimising class), grad_norm, radius, and
//   fit_rejected (CLEVER-based bounds only)
//
// The reference distortion of a (model, norm, sample) is the smallest value
// among its successful attack records; tightness = value / reference (for an
// attack: >= 1, 1 for the best attack of that sample).
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
//   violations      bounds: samples with tightness > 1 (an estimated bound above
//                   an attack, or a certified one: a soundness bug); attacks: 0
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

// A certified bound above the smallest distortion an attack reached.
struct Violation {
  std::string model;
  std::string norm;
  int64_t sample = 0;
  std::string method;
  double bound = 0;
  double reference = 0;
};

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
