// boundbench bound: runs one lower bound on the first test images of a data
// set (through the harness's runner) and prints the median bound and its
// cost; with --attack, also minimal-distortion attacks on the same samples,
// and the tightness bound / smallest attack distortion. --out writes one
// JSON object per sample and method (harness/records.h).
#include <iostream>
#include <set>

#include <torch/torch.h>

#include "bench/cli_single.h"
#include "core/error.h"

namespace bb::cli {

int run_bound(const Args& args) {
  namespace po = boost::program_options;
  SingleRun single;
  std::string bound_name;
  std::string attack_list;
  po::options_description options("boundbench bound");
  add_single_options(options, single, 20);
  options.add_options()
      ("bound", po::value(&bound_name)->required(),
       fmt::format("{}, or exact-milp (the exact minimum, small ReLU networks)", fmt::join(bound_names(), ", ")).c_str())
      ("attack", po::value(&attack_list),
       fmt::format("also run these minimal-distortion attacks ({}; comma-separated) on the same "
                   "samples: tightness = bound / smallest distortion found",
                   fmt::join(attack_names(), ", "))
           .c_str());
  options.add(method_options_description());
  po::variables_map values;
  if (!parse(args, options, values,
             "usage: boundbench bound --model NAME --bound NAME --norm P [--attack NAME] [--samples N]")) {
    return 0;
  }
  MethodOptions method_options;
  read_method_options(values, method_options);
  const Norm p = parse_norm(single.norm);
  auto bounds = bound_names();
  bounds.push_back("exact-milp");
  BB_CHECK(
      std::find(bounds.begin(), bounds.end(), bound_name) != bounds.end(),
      "--bound: unknown bound '{}' (valid: {})",
      bound_name,
      fmt::join(bounds, ", "));
  std::vector<std::string> methods{bound_name};
  for (size_t from = 0; !attack_list.empty() && from <= attack_list.size();) {
    const size_t comma = std::min(attack_list.find(',', from), attack_list.size());
    const std::string attack = attack_list.substr(from, comma - from);
    BB_CHECK(
        is_attack(attack),
        "--attack: unknown attack '{}' (valid: {})",
        attack,
        fmt::join(attack_names(), ", "));
    methods.push_back(attack);
    from = comma + 1;
  }
  const RunOutcome outcome = run_single(single, methods, method_options);
  const auto& rows = outcome.summary.rows;
  const SummaryRow* bound = nullptr;
  std::vector<const SummaryRow*> attacks;
  for (const auto& row : rows) {
    if (row.method == bound_name) {
      bound = &row;
    } else {
      attacks.push_back(&row);
    }
  }
  BB_ASSERT(bound != nullptr, "the bound returned no records");
  double seconds = 0;
  double attack_seconds = 0;
  int64_t rejected = 0;
  bool has_fit = false;
  for (const auto& r : outcome.records) {
    const double s = r.at("seconds").get<double>();
    if (r.at("method") == bound_name) {
      seconds += s;
      if (r.contains("fit_rejected")) {
        has_fit = true;
        rejected += r.at("fit_rejected").get<bool>() ? 1 : 0;
      }
    } else {
      attack_seconds += s;
    }
  }
  const double n = static_cast<double>(bound->samples);
  std::cout << fmt::format(
      "{} on {} ({} {} test images)\n"
      "  {}, {}: median {:.4g}\n"
      "  {:.1f} gradient evaluations per sample, {:.3f} s per sample ({:.1f} s)\n",
      bound->name, bound->model, bound->samples, outcome.records.front().at("dataset").get<std::string>(),
      bound->kind == "exact" ? fmt::format("exact, proven for {} of {}", bound->succeeded, bound->samples)
          : bound->certified ? "certified bound" : "estimated bound",
      norm_name(p), bound->median_value,
      bound->gradients_per_sample, seconds / n, seconds);
  if (has_fit) {
    std::cout << fmt::format(
        "  extreme-value fit rejected (largest sample used) for {} of {} samples\n", rejected, bound->samples);
  }
  if (!attacks.empty()) {
    std::vector<std::string> names;
    int64_t broken = 0;
    std::set<int64_t> samples;
    for (const auto& r : outcome.records) {
      if (r.at("kind") == "attack" && r.value("success", false)) {
        samples.insert(r.at("sample").get<int64_t>());
      }
    }
    broken = static_cast<int64_t>(samples.size());
    for (const auto* a : attacks) {
      names.push_back(a->name);
    }
    std::cout << fmt::format(
        "  against {} ({:.1f} s): broke {} of {}; median tightness bound/distortion {:.4g}; "
        "{} bounds above the smallest distortion: {}\n",
        fmt::join(names, " and "), attack_seconds, broken, bound->samples, bound->median_tightness,
        bound->certified ? "certified" : "estimated", bound->violations);
  }
  write_out(single.out, outcome.records);
  // A certified bound above a distortion an attack reached is a bug, never a
  // tolerance: fail after writing everything.
  if (!outcome.summary.violations.empty()) {
    for (const auto& v : outcome.summary.violations) {
      std::cerr << fmt::format("boundbench bound: {} (a soundness bug)\n", describe(v));
    }
    return 1;
  }
  return 0;
}

}  // namespace bb::cli
