// boundbench bound: runs one lower bound on the first test images of a data
// set and prints the median bound and its cost; with --attack, also a
// minimal-distortion attack on the same samples, and the tightness
// bound / attack distortion. --out writes one JSON object per sample.
#include <cmath>
#include <iostream>
#include <limits>

#include <torch/torch.h>

#include "attacks/attack.h"
#include "bench/cli.h"
#include "bounds/bound.h"
#include "bounds/sources.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "datasets/dataset.h"
#include "models/zoo.h"

namespace bb::cli {
namespace {

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

// The median of a float64 tensor as NumPy reads it (mean of the two middle
// values for an even count); NaN when empty.
double median_of(const torch::Tensor& v) {
  if (v.numel() == 0) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  auto sorted = std::get<0>(v.to(torch::kFloat64).flatten().sort());
  const int64_t n = sorted.numel();
  return (sorted[(n - 1) / 2].item<double>() + sorted[n / 2].item<double>()) / 2;
}

}  // namespace

int run_bound(const Args& args) {
  namespace po = boost::program_options;
  std::string model_name;
  std::string dataset;
  std::string bound_name;
  std::string attack_name;
  std::string norm_text;
  std::string device_name;
  std::string data_dir;
  std::string out;
  std::string seed_text;
  int64_t samples = 0;
  int64_t batch = 0;
  po::options_description options("boundbench bound");
  options.add_options()
      ("model", po::value(&model_name)->required(),
       fmt::format("zoo model ({}) or TorchScript file (with --dataset)", zoo_models_help()).c_str())
      ("dataset", po::value(&dataset), "data set (default: the zoo model's own)")
      ("bound", po::value(&bound_name)->required(),
       fmt::format("{}", fmt::join(bound_names(), ", ")).c_str())
      ("norm", po::value(&norm_text)->required(), "1, 2 or inf")
      ("attack", po::value(&attack_name),
       "also run these minimal-distortion attacks (fgsm, pgd, deepfool; comma-separated) on the same "
       "samples: tightness = bound / smallest distortion found")
      ("samples", po::value(&samples)->default_value(20), "first test images to bound")
      ("batch", po::value(&batch)->default_value(20), "images per batch")
      ("seed", po::value(&seed_text)->default_value("0"), "random seed, 0 to 2^64 - 1")
      ("device", po::value(&device_name)->default_value("cpu"), "cpu, cuda or cuda:N")
      ("data-dir", po::value(&data_dir), fmt::format("data folder (default: {})", data_dir_help()).c_str())
      ("out", po::value(&out), "write one JSON object per sample to this file");
  BoundOptions bound_options;
  po::options_description method_options("method options (the keys the method's name prints)");
  std::vector<std::pair<std::string, std::string>> given;
  for (const auto& field : option_fields(bound_options)) {
    method_options.add_options()(
        field.key.c_str(),
        po::value<std::string>()->value_name(option_text(bound_options, field.key)),
        field.help.c_str());
  }
  options.add(method_options);
  po::variables_map values;
  if (!parse(args, options, values,
             "usage: boundbench bound --model NAME --bound NAME --norm P [--attack NAME] [--samples N]")) {
    return 0;
  }
  for (const auto& field : option_fields(bound_options)) {
    if (values.count(field.key)) {
      set_option(bound_options, field.key, values[field.key].as<std::string>());
    }
  }
  const Norm p = parse_norm(norm_text);
  auto bound = make_bound(bound_name, p, bound_options);
  std::vector<std::unique_ptr<MinimalAttack>> attacks;
  std::vector<std::string> attack_methods;
  for (size_t from = 0; !attack_name.empty() && from <= attack_name.size();) {
    const size_t comma = std::min(attack_name.find(',', from), attack_name.size());
    attacks.push_back(make_attack(attack_name.substr(from, comma - from), p));
    attack_methods.push_back(attacks.back()->name());
    from = comma + 1;
  }
  const bool attack = !attacks.empty();
  BB_CHECK(samples > 0, "--samples: must be positive, got {}", samples);
  BB_CHECK(batch > 0, "--batch: must be positive, got {}", batch);
  const uint64_t seed = parse_seed(seed_text);
  if (!out.empty()) {
    check_output_path(out, "--out");
  }
  const torch::Device device = parse_device(device_name);
  seed_all(seed);
  Model model = load_model(model_name, dataset, device);
  bound->check(model);
  if (dataset.empty()) {
    BB_CHECK(!model.metadata.empty(), "--dataset is required with a TorchScript model");
    dataset = model.metadata.at("dataset").get<std::string>();
  }
  const std::string folder = data_dir.empty() ? default_data_dir() : data_dir;
  const Dataset data = load_dataset(dataset, "test", folder);
  BB_CHECK(
      samples <= data.images.size(0),
      "--samples {}: the {} test split has {} images",
      samples,
      dataset,
      data.images.size(0));
  // Theorem 1's sampled search over D also starts from training images.
  BoundContext context;
  context.seed = seed;
  if (bound_name == "theorem1-sampled" && bound_options.sampled.domain_starts > 0) {
    const Dataset train = load_dataset(dataset, "train", folder);
    context.starts = train.images.slice(0, 0, bound_options.sampled.domain_starts).to(device);
  }
  const std::string method = bound->name();
  const std::string images = fmt::format("{} test images", dataset);
  if (piecewise_linear(model) && method.find("sampled(") != std::string::npos &&
      bound_options.sampled.ascent_steps > 0) {
    std::cout << fmt::format(
        "note: {} is piecewise linear (ReLU): its gradient is piecewise constant, so the sampled "
        "maximum uses draws only (no gradient ascent)\n",
        model.source);
  }

  std::vector<nlohmann::json> rows;
  std::vector<double> bound_values;
  std::vector<double> tightness;
  int64_t above = 0;
  int64_t rejected = 0;
  double bound_seconds = 0;
  double attack_seconds = 0;  // all attacks together
  int64_t gradients = 0;
  Progress progress(method, samples);
  for (int64_t start = 0; start < samples; start += batch) {
    const int64_t end = std::min(samples, start + batch);
    auto x = data.images.slice(0, start, end).to(device);
    auto c = model.classifier.checked_logits(x, images, start).argmax(1);
    context.index = torch::arange(start, end, torch::kInt64).to(device);
    BoundResult result;
    // The reference: the smallest distortion any attack reached.
    torch::Tensor success;
    torch::Tensor distance;
    try {
      result = bound->run(model, x, c, context);
      for (const auto& one : attacks) {
        AttackResult broken = one->run(model.classifier, x, c);
        attack_seconds += broken.seconds;
        auto found = torch::where(broken.success, broken.distance, torch::full_like(broken.distance, INFINITY)).cpu();
        distance = distance.defined() ? torch::minimum(distance, found) : found;
      }
      if (attack) {
        success = torch::isfinite(distance);
      }
    } catch (const NonFiniteLogits& e) {
      throw e.renumbered(start, fmt::format("{} on {}", method, images));
    }
    bound_seconds += result.seconds;
    const int64_t n = end - start;
    auto value = result.value.cpu();
    auto target = result.target.cpu();
    auto grad_norm = result.grad_norm.cpu();
    auto radius = result.radius.cpu();
    auto spent = result.gradients.cpu();
    auto predicted = c.cpu();
    auto rejected_fit = result.fit_rejected.defined() ? result.fit_rejected.cpu() : torch::Tensor();
    for (int64_t i = 0; i < n; ++i) {
      const double v = value[i].item<double>();
      bound_values.push_back(v);
      gradients += spent[i].item<int64_t>();
      nlohmann::json row{
          {"sample", start + i},
          {"label", data.labels[start + i].item<int64_t>()},
          {"predicted", predicted[i].item<int64_t>()},
          {"model", model.source},
          {"model_sha256", model.sha256},
          {"method", method},
          {"bound", bound_name},
          {"kind", "bound"},
          {"norm", norm_name(p)},
          {"seed", seed},
          {"certified", result.certified},
          {"value", number_or_null(v)},
          {"target", target[i].item<int64_t>()},
          {"grad_norm", number_or_null(grad_norm[i].item<double>())},
          {"radius", number_or_null(radius[i].item<double>())},
          {"gradients", spent[i].item<int64_t>()},
          {"seconds", result.seconds / static_cast<double>(n)},
      };
      if (rejected_fit.defined()) {
        const bool r = rejected_fit[i].item<bool>();
        row["fit_rejected"] = r;
        rejected += r ? 1 : 0;
      }
      if (attack) {
        const bool ok = success[i].item<bool>();
        row["attacks"] = attack_methods;
        row["attack_success"] = ok;
        row["attack_distance"] = ok ? nlohmann::json(distance[i].item<double>()) : nlohmann::json();
        if (ok) {
          const double t = v / distance[i].item<double>();
          row["tightness"] = number_or_null(t);
          tightness.push_back(t);
          above += t > 1 ? 1 : 0;
        }
      }
      rows.push_back(std::move(row));
    }
    progress.advance(n);
  }
  progress.finish();

  const auto as_tensor = [](const std::vector<double>& v) {
    return torch::tensor(v, torch::kFloat64);
  };
  std::cout << fmt::format(
      "{} on {} ({} {} test images)\n"
      "  {} bound, {}: median {:.4g}\n"
      "  {:.1f} gradient evaluations per sample, {:.3f} s per sample ({:.1f} s)\n",
      method, model.source, samples, dataset,
      bound->certified() ? "certified" : "estimated", norm_name(p), median_of(as_tensor(bound_values)),
      static_cast<double>(gradients) / static_cast<double>(samples),
      bound_seconds / static_cast<double>(samples), bound_seconds);
  if (!rows.empty() && rows.front().contains("fit_rejected")) {
    std::cout << fmt::format(
        "  extreme-value fit rejected (largest sample used) for {} of {} samples\n", rejected, samples);
  }
  if (attack) {
    std::cout << fmt::format(
        "  against {} ({:.1f} s): broke {} of {}; median tightness bound/distortion {:.4g}; "
        "{} bounds above the smallest distortion: {}\n",
        fmt::join(attack_methods, " and "), attack_seconds, tightness.size(), samples, median_of(as_tensor(tightness)),
        bound->certified() ? "certified" : "estimated", above);
  }
  if (!out.empty()) {
    std::string lines;
    for (const auto& row : rows) {
      lines += row.dump() + "\n";
    }
    write_atomically(out, lines);
  }
  // A certified bound above a distortion an attack reached is a bug, never a
  // tolerance: fail after writing everything.
  if (attack && bound->certified() && above > 0) {
    std::cerr << fmt::format(
        "boundbench bound: {} certified bounds lie above an attack's distortion: a soundness bug\n",
        above);
    return 1;
  }
  return 0;
}

}  // namespace bb::cli
