// boundbench attack: runs one attack on the first test images of a data set
// and prints success rate, distortion and cost; --out writes one JSON object
// per sample.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

#include <torch/torch.h>

#include "attacks/attack.h"
#include "bench/cli.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "datasets/dataset.h"
#include "models/zoo.h"

namespace bb::cli {

int run_attack(const Args& args) {
  namespace po = boost::program_options;
  std::string model_name;
  std::string dataset;
  std::string attack_name;
  std::string norm_text;
  std::string device_name;
  std::string data_dir;
  std::string out;
  std::string seed_text;
  double epsilon = 0;
  int64_t samples = 0;
  int64_t batch = 0;
  po::options_description options("boundbench attack");
  options.add_options()
      ("model", po::value(&model_name)->required(),
       fmt::format("zoo model ({}) or TorchScript file (with --dataset)", zoo_models_help()).c_str())
      ("dataset", po::value(&dataset), "data set (default: the zoo model's own)")
      ("attack", po::value(&attack_name)->required(), "fgsm, pgd or deepfool")
      ("norm", po::value(&norm_text)->required(), "1, 2 or inf")
      ("eps", po::value(&epsilon), "fixed budget (fgsm, pgd); without it: minimal distortion")
      ("samples", po::value(&samples)->default_value(100), "first test images to attack")
      ("batch", po::value(&batch)->default_value(100), "images per batch")
      ("seed", po::value(&seed_text)->default_value("0"), "random seed, 0 to 2^64 - 1")
      ("device", po::value(&device_name)->default_value("cpu"), "cpu, cuda or cuda:N")
      ("data-dir", po::value(&data_dir), fmt::format("data folder (default: {})", data_dir_help()).c_str())
      ("out", po::value(&out), "write one JSON object per sample to this file");
  po::variables_map values;
  if (!parse(args, options, values,
             "usage: boundbench attack --model NAME --attack NAME --norm P [--eps E] [--samples N]")) {
    return 0;
  }
  const Norm p = parse_norm(norm_text);
  const bool fixed = values.count("eps") > 0;
  std::unique_ptr<FixedBudgetAttack> fixed_attack;
  std::unique_ptr<MinimalAttack> minimal_attack;
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
    fixed_attack = make_fixed_budget_attack(attack_name, p);
  } else {
    minimal_attack = make_attack(attack_name, p);
  }
  BB_CHECK(samples > 0, "--samples: must be positive, got {}", samples);
  BB_CHECK(batch > 0, "--batch: must be positive, got {}", batch);
  const uint64_t seed = parse_seed(seed_text);
  if (!out.empty()) {
    check_output_path(out, "--out");
  }
  const torch::Device device = parse_device(device_name);
  seed_all(seed);
  Model model = load_model(model_name, dataset, device);
  if (dataset.empty()) {
    BB_CHECK(!model.metadata.empty(), "--dataset is required with a TorchScript model");
    dataset = model.metadata.at("dataset").get<std::string>();
  }
  const Dataset data = load_dataset(dataset, "test", data_dir.empty() ? default_data_dir() : data_dir);
  BB_CHECK(
      samples <= data.images.size(0),
      "--samples {}: the {} test split has {} images",
      samples,
      dataset,
      data.images.size(0));
  const std::string method = fixed ? fixed_attack->name() : minimal_attack->name();
  const std::string images = fmt::format("{} test images", dataset);

  std::vector<AttackResult> results;
  std::vector<torch::Tensor> predicted;
  Progress progress(method, samples);
  for (int64_t start = 0; start < samples; start += batch) {
    auto x = data.images.slice(0, start, std::min(samples, start + batch)).to(device);
    // Every batch's logits are checked (the first before any attack runs);
    // NaN met by the attack is named by its sample in the data set too.
    auto c = model.classifier.checked_logits(x, images, start).argmax(1);
    predicted.push_back(c.cpu());
    try {
      results.push_back(
          fixed ? fixed_attack->run(model.classifier, x, c, torch::tensor(epsilon, torch::kFloat64))
                : minimal_attack->run(model.classifier, x, c));
    } catch (const NonFiniteLogits& e) {
      throw e.renumbered(start, fmt::format("{} on {}", method, images));
    }
    progress.advance(x.size(0));
  }
  progress.finish();
  auto cat = [&](auto field) {
    std::vector<torch::Tensor> parts;
    for (const auto& r : results) {
      parts.push_back(field(r).cpu());
    }
    return torch::cat(parts);
  };
  auto success = cat([](const AttackResult& r) { return r.success; });
  auto distance = cat([](const AttackResult& r) { return r.distance; });
  auto gradients = cat([](const AttackResult& r) { return r.gradients; });
  double seconds = 0;
  for (const auto& r : results) {
    seconds += r.seconds;
  }
  auto pred = torch::cat(predicted);
  auto labels = data.labels.slice(0, 0, samples);
  const double clean = (pred == labels).to(torch::kFloat64).mean().item<double>();
  const int64_t found = success.sum().item<int64_t>();
  auto found_distance = distance.masked_select(success);
  std::cout << fmt::format(
      "{} on {} ({} {} test images, clean accuracy {:.1f}%)\n"
      "  success {}/{} ({:.1f}%)",
      method, model.source, samples, dataset, 100 * clean, found, samples,
      100.0 * static_cast<double>(found) / static_cast<double>(samples));
  if (found > 0) {
    std::cout << fmt::format(
        ", {} distortion of successes: median {:.4g}, mean {:.4g}",
        norm_name(p),
        found_distance.median().item<double>(),
        found_distance.mean().item<double>());
  }
  std::cout << fmt::format(
      "\n  {:.1f} gradient evaluations per sample, {:.3f} s per sample ({:.1f} s)\n",
      gradients.to(torch::kFloat64).mean().item<double>(),
      seconds / static_cast<double>(samples),
      seconds);
  if (!out.empty()) {
    std::string lines;
    for (int64_t i = 0; i < samples; ++i) {
      const bool ok = success[i].item<bool>();
      nlohmann::json row{
          {"sample", i},
          {"label", labels[i].item<int64_t>()},
          {"predicted", pred[i].item<int64_t>()},
          {"model", model.source},
          {"method", method},
          {"norm", norm_name(p)},
          {"success", ok},
          {"distance", ok ? nlohmann::json(distance[i].item<double>()) : nlohmann::json()},
          {"gradients", gradients[i].item<int64_t>()},
      };
      if (fixed) {
        row["epsilon"] = epsilon;
      }
      lines += row.dump() + "\n";
    }
    write_atomically(out, lines);
  }
  return 0;
}

}  // namespace bb::cli
