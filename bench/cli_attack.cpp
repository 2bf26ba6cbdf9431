// boundbench attack: runs one attack on the first test images of a data set
// and prints success rate, distortion and cost; --out writes one JSON object
// per sample.
#include <filesystem>
#include <fstream>
#include <iostream>

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
  double epsilon = 0;
  int64_t samples = 0;
  int64_t batch = 0;
  uint64_t seed = 0;
  po::options_description options("boundbench attack");
  options.add_options()
      ("model", po::value(&model_name)->required(), "zoo model name or TorchScript file")
      ("dataset", po::value(&dataset), "data set (default: the zoo model's own)")
      ("attack", po::value(&attack_name)->required(), "fgsm, pgd or deepfool")
      ("norm", po::value(&norm_text)->required(), "1, 2 or inf")
      ("eps", po::value(&epsilon), "fixed budget (fgsm, pgd); without it: minimal distortion")
      ("samples", po::value(&samples)->default_value(100), "first test images to attack")
      ("batch", po::value(&batch)->default_value(100), "images per batch")
      ("seed", po::value(&seed)->default_value(0), "random seed")
      ("device", po::value(&device_name)->default_value("cpu"), "cpu, cuda or cuda:N")
      ("data-dir", po::value(&data_dir), "data folder (default: $BOUNDBENCH_DATA_DIR, else the cache)")
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
    fixed_attack = make_fixed_budget_attack(attack_name, p);
  } else {
    minimal_attack = make_attack(attack_name, p);
  }
  BB_CHECK(samples > 0, "--samples: must be positive, got {}", samples);
  BB_CHECK(batch > 0, "--batch: must be positive, got {}", batch);
  if (!out.empty()) {
    const auto parent = std::filesystem::absolute(out).parent_path();
    BB_CHECK(std::filesystem::is_directory(parent), "--out {}: folder {} does not exist", out, parent.string());
  }
  const torch::Device device = parse_device(device_name);
  seed_all(seed);
  Model model = load_model(model_name, dataset, device);
  if (dataset.empty()) {
    BB_CHECK(!model.metadata.empty(), "--dataset is required with a TorchScript model");
    dataset = model.metadata.at("dataset").get<std::string>();
  }
  const Dataset data = load_dataset(dataset, "test", data_dir.empty() ? default_data_dir() : data_dir);
  samples = std::min(samples, data.images.size(0));
  const std::string method = fixed ? fixed_attack->name() : minimal_attack->name();

  std::vector<AttackResult> results;
  std::vector<torch::Tensor> predicted;
  Progress progress(method, samples);
  for (int64_t start = 0; start < samples; start += batch) {
    auto x = data.images.slice(0, start, std::min(samples, start + batch)).to(device);
    auto c = model.classifier.predict(x);
    predicted.push_back(c.cpu());
    results.push_back(
        fixed ? fixed_attack->run(model.classifier, x, c, torch::tensor(epsilon))
              : minimal_attack->run(model.classifier, x, c));
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
