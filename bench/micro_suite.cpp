#include "bench/micro_suite.h"

#include <iostream>
#include <map>
#include <memory>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "bounds/sources.h"
#include "core/error.h"
#include "core/runtime.h"
#include "datasets/dataset.h"
#include "harness/runner.h"
#include "models/zoo.h"

namespace bb::micro {

double forward_backward_seconds(const Classifier& model, const torch::Tensor& x, const torch::Tensor& c) {
  Stopwatch watch(model.device());
  auto z = x.detach().requires_grad_(true);
  auto logits = model.logits_with_grad(z);
  auto own = logits.gather(1, c.view({-1, 1}));
  auto grad = torch::autograd::grad({(logits - own).sum()}, {z})[0];
  benchmark::DoNotOptimize(grad.data_ptr());
  return watch.seconds();
}

namespace {

// One model and the first `batch` test images it classifies correctly (the
// largest batch of the suite; smaller batches take the first rows).
struct Data {
  Model model;
  torch::Tensor x, c, index;  // on the device; index: places in the test split
  torch::Tensor starts;       // training images, where a method wants them
};

std::shared_ptr<Data> load(const std::string& name, int64_t count, const SuiteOptions& o, bool starts) {
  auto data = std::make_shared<Data>(Data{load_model(name, "", o.device), {}, {}, {}, {}});
  const Model& model = data->model;
  BB_CHECK(!model.metadata.empty(), "--models: {} is not a zoo model (the suite runs zoo models)", name);
  const std::string dataset = model.metadata.at("dataset").get<std::string>();
  const std::string dir = o.data_dir.empty() ? default_data_dir() : o.data_dir;
  const Dataset test = load_dataset(dataset, "test", dir);
  const Selected selected = select_samples(model, test, count, "correct", o.device);
  data->index = selected.index;
  data->x = test.images.index_select(0, data->index).to(o.device);
  data->c = selected.predicted.to(o.device);
  if (starts) {
    data->starts = load_dataset(dataset, "train", dir)
                       .images.slice(0, 0, o.options.bound.sampled.domain_starts)
                       .to(o.device);
  }
  return data;
}

struct Batch {
  std::shared_ptr<Data> data;
  int64_t n;
  torch::Tensor x() const { return data->x.slice(0, 0, n); }
  torch::Tensor c() const { return data->c.slice(0, 0, n); }
  torch::Tensor index() const { return data->index.slice(0, 0, n); }
};

double forward_backward(const Batch& b) {
  return forward_backward_seconds(b.data->model.classifier, b.x(), b.c());
}

void bm_fwd_bwd(benchmark::State& state, Batch b) {
  double spent = 0;
  for (auto _ : state) {
    const double t = forward_backward(b);
    spent += t;
    state.SetIterationTime(t);
  }
  state.counters["samples_per_s"] = static_cast<double>(b.n * state.iterations()) / spent;
}

// The gradients of the k - 1 class margins of every sample, batched (one
// margin_gradients call: what DeepFool, CLEVER and the sampled bounds use).
void bm_k_gradients(benchmark::State& state, Batch b) {
  const Classifier& model = b.data->model.classifier;
  auto targets = other_classes(b.c(), model.num_classes());
  double spent = 0;
  double baseline = 0;
  for (auto _ : state) {
    baseline += forward_backward(b);
    Stopwatch watch(model.device());
    auto mg = model.margin_gradients(b.x(), b.c(), targets);
    benchmark::DoNotOptimize(mg.grads.data_ptr());
    const double t = watch.seconds();
    spent += t;
    state.SetIterationTime(t);
  }
  const double k1 = static_cast<double>(model.num_classes() - 1);
  state.counters["samples_per_s"] = static_cast<double>(b.n * state.iterations()) / spent;
  state.counters["gradients_per_s"] = static_cast<double>(b.n * state.iterations()) * k1 / spent;
  state.counters["ratio_to_fwd_bwd"] = spent / baseline;
  state.counters["ratio_to_gradients"] = spent / (baseline * k1);
}

// Seconds per sample each (method, model, norm) took at its largest batch so
// far: the estimate behind --max-seconds.
std::map<std::string, double>& seconds_per_sample() {
  static std::map<std::string, double> measured;
  return measured;
}

double median_of(const torch::Tensor& values) {
  return values.numel() == 0 ? std::nan("") : values.median().item<double>();
}

void set_if_finite(benchmark::State& state, const char* key, double value) {
  if (std::isfinite(value)) {
    state.counters[key] = value;
  }
}

void bm_method(benchmark::State& state, Batch b, std::shared_ptr<Method> method, std::string key,
               double max_seconds) {
  auto& measured = seconds_per_sample();
  if (auto it = measured.find(key); it != measured.end() && it->second * b.n > max_seconds) {
    state.SkipWithError(fmt::format(
        "skipped: about {:.0f} s predicted at batch {} from the smaller batches (> --max-seconds {:g})",
        it->second * b.n, b.n, max_seconds).c_str());
    return;
  }
  const MethodContext context{0, b.index().cpu(), b.data->starts};
  double spent = 0;
  double baseline = 0;
  double gradients = 0;
  MethodBatch last;
  try {
    for (auto _ : state) {
      baseline += 0.5 * (forward_backward(b) + forward_backward(b));
      last = method->run(b.data->model, b.x(), b.c(), context);
      spent += last.seconds;
      gradients += static_cast<double>(last.gradients.sum().item<int64_t>());
      state.SetIterationTime(last.seconds);
    }
  } catch (const std::exception& e) {
    // A method that fails is reported as such (and compare flags it).
    state.SkipWithError(fmt::format("failed: {}", e.what()).c_str());
    return;
  }
  const double runs = static_cast<double>(state.iterations());
  const double n = static_cast<double>(b.n);
  measured[key] = spent / runs / n;
  state.counters["samples_per_s"] = n * runs / spent;
  state.counters["gradients_per_s"] = gradients / spent;
  state.counters["gradients_per_sample"] = gradients / runs / n;
  state.counters["ratio_to_fwd_bwd"] = spent / baseline;
  if (gradients > 0) {
    state.counters["ratio_to_gradients"] = spent / (baseline * gradients / runs / n);
  }
  const auto& value = last.value;
  const auto& success = last.success;
  const double rate = success.to(torch::kFloat64).mean().item<double>();
  switch (method->kind()) {
    case MethodKind::Attack:
      state.counters["success_rate"] = rate;
      set_if_finite(state, "median_distortion", median_of(value.index({success})));
      break;
    case MethodKind::Bound:
      state.counters["finite_rate"] = rate;
      set_if_finite(state, "median_bound", median_of(value.index({torch::isfinite(value)})));
      break;
    case MethodKind::Exact:
      state.counters["proven_rate"] = rate;
      set_if_finite(state, "median_exact", median_of(value.index({success})));
      break;
  }
}

}  // namespace

void register_suite(const SuiteOptions& o) {
  BB_CHECK(!o.batches.empty(), "--batches: at least one batch size");
  for (int64_t b : o.batches) {
    BB_CHECK(b > 0, "--batches: sizes must be positive, got {}", b);
  }
  BB_CHECK(std::is_sorted(o.batches.begin(), o.batches.end()), "--batches: sizes must ascend");
  BB_CHECK(std::isfinite(o.max_seconds) && o.max_seconds > 0, "--max-seconds: must be positive, got {}",
           o.max_seconds);
  BB_CHECK(o.iterations >= 1, "--iterations: must be at least 1, got {}", o.iterations);
  validate(o.options);
  // Every method and norm first: an unknown name fails before any model loads.
  std::vector<std::pair<Norm, std::shared_ptr<Method>>> methods;
  for (const auto& name : o.methods) {
    for (Norm p : o.norms) {
      methods.emplace_back(p, std::shared_ptr<Method>(make_method(name, p, o.options)));
    }
  }
  const int64_t largest = o.batches.back();
  for (const auto& model_name : o.models) {
    bool starts = false;
    for (const auto& [p, method] : methods) {
      starts = starts || method->wants_starts();
    }
    auto data = load(model_name, largest, o, starts);
    auto reg = [&](const std::string& label, auto fn, auto... extra) {
      return benchmark::RegisterBenchmark(label.c_str(), fn, extra...)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    };
    for (int64_t n : o.batches) {
      reg(fmt::format("baseline/fwd_bwd/{}/batch:{}", model_name, n), bm_fwd_bwd, Batch{data, n});
      reg(fmt::format("baseline/k_gradients/{}/batch:{}", model_name, n), bm_k_gradients, Batch{data, n});
    }
    for (const auto& [p, method] : methods) {
      try {
        method->check(data->model);
      } catch (const Error& e) {
        std::cerr << fmt::format("boundbench_micro: {} left out on {} ({}): {}\n", method->key(), model_name,
                                 norm_name(p), e.what());
        continue;
      }
      const std::string key = fmt::format("{}/{}/{}", method->key(), model_name, norm_name(p));
      for (int64_t n : o.batches) {
        reg(fmt::format("{}/{}/batch:{}", kind_name(method->kind()), key, n), bm_method, Batch{data, n}, method, key,
            o.max_seconds)
            ->Iterations(o.iterations);
      }
    }
  }
}

}  // namespace bb::micro
