// boundbench attack: runs one attack on the first test images of a data set
// (through the harness's runner) and prints success rate, distortion and
// cost; --out writes one JSON object per sample (harness/records.h).
#include <cmath>
#include <iostream>
#include <limits>

#include <torch/torch.h>

#include "bench/cli_single.h"
#include "core/error.h"

namespace bb::cli {

int run_attack(const Args& args) {
  namespace po = boost::program_options;
  SingleRun single;
  std::string attack_name;
  double epsilon = 0;
  po::options_description options("boundbench attack");
  add_single_options(options, single, 100);
  options.add_options()
      ("attack", po::value(&attack_name)->required(), "fgsm, pgd or deepfool")
      ("eps", po::value(&epsilon), "fixed budget (fgsm, pgd); without it: minimal distortion");
  options.add(method_options_description());
  po::variables_map values;
  if (!parse(args, options, values,
             "usage: boundbench attack --model NAME --attack NAME --norm P [--eps E] [--samples N]")) {
    return 0;
  }
  MethodOptions method_options;
  read_method_options(values, method_options);
  const Norm p = parse_norm(single.norm);
  const auto attacks = attack_names();
  BB_CHECK(
      std::find(attacks.begin(), attacks.end(), attack_name) != attacks.end(),
      "--attack: unknown attack '{}' (valid: {})",
      attack_name,
      fmt::join(attacks, ", "));
  const bool fixed = values.count("eps") > 0;
  if (fixed) {
    BB_CHECK(std::isfinite(epsilon) && epsilon > 0, "--eps: must be positive and finite, got {}", epsilon);
    // The attack runs in float32, the data's precision: the budget must survive the cast.
    BB_CHECK(
        epsilon >= std::numeric_limits<float>::min(),
        "--eps {}: below float32's smallest normal number {} (the attack runs in float32)",
        epsilon,
        std::numeric_limits<float>::min());
    BB_CHECK(
        epsilon <= std::numeric_limits<float>::max(),
        "--eps {}: beyond float32's range (the attack runs in float32)",
        epsilon);
  }
  const RunOutcome outcome = run_single(single, {attack_name}, method_options, fixed ? epsilon : 0);
  const auto& records = outcome.records;
  BB_ASSERT(!records.empty() && !outcome.summary.rows.empty(), "the attack returned no records");
  const SummaryRow& row = outcome.summary.rows.front();
  int64_t clean = 0;
  double mean_distance = 0;
  for (const auto& r : records) {
    clean += r.at("label") == r.at("predicted") ? 1 : 0;
    mean_distance += r.value("success", false) ? r.at("value").get<double>() : 0;
  }
  double seconds = 0;
  for (const auto& r : records) {
    seconds += r.at("seconds").get<double>();
  }
  const double n = static_cast<double>(records.size());
  std::cout << fmt::format(
      "{} on {} ({} {} test images, clean accuracy {:.1f}%)\n"
      "  success {}/{} ({:.1f}%)",
      row.name, row.model, records.size(), records.front().at("dataset").get<std::string>(),
      100.0 * static_cast<double>(clean) / n, row.succeeded, row.samples,
      100.0 * static_cast<double>(row.succeeded) / n);
  if (row.succeeded > 0) {
    std::cout << fmt::format(
        ", {} distortion of successes: median {:.4g}, mean {:.4g}",
        norm_name(p), row.median_value, mean_distance / static_cast<double>(row.succeeded));
  }
  std::cout << fmt::format(
      "\n  {:.1f} gradient evaluations per sample, {:.3f} s per sample ({:.1f} s)\n",
      row.gradients_per_sample, seconds / n, seconds);
  write_out(single.out, records);
  return 0;
}

}  // namespace bb::cli
