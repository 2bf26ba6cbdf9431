// Soundness on the zoo: on the first 20 MNIST test images, for every MNIST
// model and norm, every certified bound of the registry that takes the model
// (hein-one-layer: the one-hidden-layer MLP only) is at most the smallest
// distortion DeepFool and PGD find on the same sample (and so are the
// shells over CROWN with interval.refine, on the MLPs). A certified
// bound above an attack's distortion is a bug to find, never a tolerance to
// widen: the comparison is exact. CROWN's bounds on the convolutional
// networks cost minutes per case on two cores, so there the CROWN-based
// bounds are left to the random small conv networks of
// test_preactivation.cpp and test_certified_sources.cpp.
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "attacks/attack.h"
#include "bounds/bound.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "models/zoo.h"

namespace bb {
namespace {

struct SoundnessCase {
  std::string model;
  Norm norm;
};

class ZooSoundness : public ::testing::TestWithParam<SoundnessCase> {};

TEST_P(ZooSoundness, CertifiedBoundsNeverExceedAnAttack) {
  const SoundnessCase& row = GetParam();
  const auto dir = default_data_dir();
  if (!std::filesystem::exists(std::filesystem::path(dir) / "mnist" / "t10k-images-idx3-ubyte")) {
    GTEST_SKIP() << "MNIST not fetched (scripts/setup.sh)";
  }
  const Model model = load_model(row.model, "", torch::kCPU);
  const auto data = load_dataset("mnist", "test", dir);
  auto x = data.images.slice(0, 0, 20);
  auto c = model.classifier.predict(x);
  // The reference: the smallest distortion of the two attacks.
  auto reference = torch::full({20}, std::numeric_limits<double>::infinity(), torch::kFloat64);
  for (const char* name : {"deepfool", "pgd"}) {
    auto result = make_attack(name, row.norm)->run(model.classifier, x, c);
    reference = torch::where(result.success, torch::minimum(reference, result.distance), reference);
  }
  ASSERT_GE(torch::isfinite(reference).sum().item<int64_t>(), 18) << "the attacks broke too few samples";
  // Options that keep the searches short: every radius they try is sound.
  BoundOptions options;
  options.local_ball.bisection_steps = 4;
  options.shells.shells = 2;
  options.shells.rounds = 2;
  options.crown_radius.bisection_steps = 6;
  const bool convolutional = row.model.find("cnn") != std::string::npos;
  // On the one-hidden-layer MLP CROWN's bounds are exact (one linear layer
  // before the activation) and cost 1024 exact ball ∩ box minimisations
  // per call: left to the random networks of test_hein.cpp, which hold the
  // CROWN-based local balls against Hein's closed form.
  const bool skip_crown = convolutional || row.model == "mnist-mlp1-softplus";
  int checked = 0;
  bool hein_checked = false;
  auto expect_sound = [&](const Bound& bound) {
    auto result = bound.run(model, x, c, {});
    auto above = (result.value > reference) & torch::isfinite(reference);
    EXPECT_FALSE(above.any().item<bool>())
        << bound.name() << " on " << row.model << ": certified bound above the attack at samples "
        << above.nonzero().flatten() << "\nbound " << result.value.masked_select(above)
        << "\nattack " << reference.masked_select(above);
    EXPECT_TRUE((result.value >= 0).all().item<bool>()) << bound.name();
    ++checked;
  };
  for (const auto& name : bound_names()) {
    auto bound = make_bound(name, row.norm, options);
    if (!bound->certified() || (skip_crown && name.find("crown") != std::string::npos)) {
      continue;
    }
    try {
      bound->check(model);
    } catch (const Error&) {
      continue;  // e.g. hein-one-layer on a deeper network
    }
    expect_sound(*bound);
    hein_checked = hein_checked || name == "hein-one-layer";
  }
  if (!skip_crown) {
    // interval.refine (off by default): the best gradient-norm bound with
    // every input coordinate of the gradient refined.
    BoundOptions refined = options;
    refined.interval.refine = true;
    expect_sound(*make_bound("local-ball-shells-interval-crown", row.norm, refined));
  }
  EXPECT_GE(checked, skip_crown ? 4 : 9);
  EXPECT_EQ(hein_checked, row.model == "mnist-mlp1-softplus");
}

std::string soundness_name(const ::testing::TestParamInfo<SoundnessCase>& info) {
  std::string name = info.param.model + "_" + norm_name(info.param.norm);
  for (char& ch : name) {
    if (ch == '-') {
      ch = '_';
    }
  }
  return name;
}

std::vector<SoundnessCase> soundness_cases() {
  std::vector<SoundnessCase> cases;
  // mnist-mlp1-softplus: the one-hidden-layer network, where hein-one-layer
  // runs too; mnist-mlp-small-relu: the exact MILP's target, cheap.
  for (const char* model : {"mnist-mlp-relu", "mnist-mlp-softplus", "mnist-mlp1-softplus", "mnist-mlp-small-relu",
                            "mnist-cnn-relu", "mnist-cnn-softplus"}) {
    for (Norm p : all_norms()) {
      cases.push_back({model, p});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Mnist, ZooSoundness, ::testing::ValuesIn(soundness_cases()), soundness_name);

}  // namespace
}  // namespace bb
