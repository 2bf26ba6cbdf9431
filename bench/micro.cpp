// Micro-benchmarks (Google Benchmark 1.7.1). Two suites:
//   --suite registry (the default): every method of the harness's registry
//     on every zoo model at batches 1, 16 and 128, norms 2 and inf, with
//     counters (bench/micro_suite.h): the runtime suite, compared against a
//     committed baseline with `boundbench compare BASE.json NEW.json`;
//   --suite steps: the cost of attack steps as a
// ratio to the physical limit on the same batch, one forward plus backward
// pass of the model, and of whole attack runs as a ratio to the gradient
// evaluations they make. Each iteration times the step or run and, paired
// with it, the baseline, so the ratio stays meaningful on a loaded machine.
// The attacks come from the public registries (attacks/attack.h) and are
// timed through their public run, as the command line runs them.
//
//   build/boundbench_micro [--suite registry|steps] [--models a,b] [--device cpu]
//                          [--batches 1,16,128] [--norms 2,inf] [--methods all] [--set key=value]...
//                          [--batch 100] (steps)
//                          [--benchmark_out=results/micro/NAME.json --benchmark_out_format=json]
#include <iostream>
#include <sstream>

#include <benchmark/benchmark.h>
#include <boost/program_options.hpp>
#include <torch/torch.h>

#include "attacks/attack.h"
#include "attacks/fmn.h"
#include "attacks/pgd.h"
#include "bench/micro_suite.h"  // margin_loss_gradient and Pgd's options (step kernel alone), the loss names
#include "bounds/bound.h"
#include "bounds/interval_jacobian.h"
#include "bounds/preactivation.h"
#include "bounds/sources.h"
#include "core/error.h"
#include "core/row_kernels.h"
#include "core/runtime.h"
#include "models/zoo.h"

namespace {

struct Setup {
  std::shared_ptr<bb::Model> model;
  torch::Tensor x;
  torch::Tensor c;
};

Setup make_setup(const std::string& name, int64_t batch, torch::Device device) {
  Setup s;
  s.model = std::make_shared<bb::Model>(bb::load_model(name, "", device));
  std::vector<int64_t> shape{batch};
  const auto& input = s.model->classifier.spec().shape;
  shape.insert(shape.end(), input.begin(), input.end());
  torch::manual_seed(0);
  s.x = torch::rand(shape, torch::TensorOptions().device(device));
  s.c = s.model->classifier.predict(s.x);
  return s;
}

// The budgets of the PGD step benchmarks: small enough that (almost) no row
// succeeds, so that every row is stepped and projected at every step (the
// step's worst case).
double pgd_budget(bb::Norm p) {
  return p == bb::Norm::Linf ? 0.003 : p == bb::Norm::L2 ? 0.05 : 0.5;
}

// One forward and backward pass of the margin loss: the baseline.
double forward_backward(const Setup& s) {
  return bb::micro::forward_backward_seconds(s.model->classifier, s.x, s.c);
}

void bm_forward_backward(benchmark::State& state, Setup s) {
  for (auto _ : state) {
    state.SetIterationTime(forward_backward(s));
  }
  state.SetItemsProcessed(state.iterations() * s.x.size(0));
}

// One step of PGD with its default options (40 steps, random start on;
// `loss` set: with that loss), timed as a whole default run from the registry
// (make_fixed_budget_attack, the public run) divided by its steps (its
// gradient evaluations per sample), so that the random start and the
// bookkeeping weigh in as they do in a real run. The run also projects its
// result once more and re-checks misclassification (one forward pass): less
// than 1/40 of the cost, spread over the steps here. The time is the run's
// own (AttackResult::seconds, device synchronised; input validation aside).
constexpr int kBaselineSamples = 4;

void bm_pgd_step(benchmark::State& state, Setup s, bb::Norm p, std::string loss) {
  bb::AttackOptions options;
  if (!loss.empty()) {
    options.pgd.loss = loss;
  }
  const auto pgd = bb::make_fixed_budget_attack("pgd", p, options);
  auto eps = torch::full({s.x.size(0)}, pgd_budget(p), s.x.options());
  double step = 0;
  double baseline = 0;
  double adversarial = 0;
  for (auto _ : state) {
    // The run is 40 steps: several baseline samples per run keep the paired
    // ratio from resting on one noisy forward+backward pass.
    for (int k = 0; k < kBaselineSamples; ++k) {
      baseline += forward_backward(s) / kBaselineSamples;
    }
    auto result = pgd->run(s.model->classifier, s.x, s.c, eps);
    benchmark::DoNotOptimize(result.x_adv.data_ptr());
    // Per gradient evaluation of the average row: steps (x the restarts
    // that row ran, where pgd.restarts > 1).
    const double t = result.seconds / result.gradients.to(torch::kFloat64).mean().item<double>();
    step += t;
    state.SetIterationTime(t);
    // Rows misclassified at the end (the run's re-check): PGD stops moving
    // them at their first success, so this says how much of the batch the
    // step kernel still moved. The same every iteration (fixed streams).
    adversarial = result.success.to(torch::kFloat64).mean().item<double>();
  }
  state.counters["ratio_to_fwd_bwd"] = step / baseline;
  state.counters["adversarial"] = adversarial;
}

// One FMN step: a whole run with the default options from the registry
// (make_attack, the public run) with refinement off, divided by its
// gradient evaluations per sample (steps x runs per sample), against a
// forward+backward pass of the same rows (the batch replicated once per
// targeted run, as FMN replicates it). Besides the steps, the run pays the
// forward pass that ranks the targets (targeted runs only), the choice of
// the closest example and the final re-check (one forward pass each): less
// than 1/100 of the run. The share of rows adversarial at the end says
// nothing of the step's cost here (FMN steps every row at every step).
void bm_fmn_step(benchmark::State& state, Setup s, bb::Norm p) {
  bb::AttackOptions options;
  options.refine.steps = 0;
  const auto fmn = bb::make_attack("fmn", p, options);
  const int64_t runs = std::max<int64_t>(
      1, bb::fmn_targeted_runs(options.fmn.targets, s.model->classifier.num_classes()));
  Setup rows{s.model, s.x.repeat_interleave(runs, 0), s.c.repeat_interleave(runs)};
  double step = 0;
  double baseline = 0;
  double adversarial = 0;
  for (auto _ : state) {
    for (int k = 0; k < kBaselineSamples; ++k) {
      baseline += forward_backward(rows) / kBaselineSamples;
    }
    auto result = fmn->run(s.model->classifier, s.x, s.c);
    benchmark::DoNotOptimize(result.x_adv.data_ptr());
    const double t = result.seconds / static_cast<double>(options.fmn.steps);
    step += t;
    state.SetIterationTime(t);
    adversarial = result.success.to(torch::kFloat64).mean().item<double>();
  }
  state.counters["ratio_to_fwd_bwd"] = step / baseline;
  state.counters["runs_per_sample"] = static_cast<double>(runs);
  state.counters["adversarial"] = adversarial;
}

// The fused step kernel alone (ascent_step after the backward pass), with
// each vector-unit variant this CPU has: x, a random start in the ball and
// the margin loss's gradient there, every row moved and projected.
//
// Each iteration pairs the kernel with a forward+backward pass, as in a PGD
// run, so the benchmark asks for less of the kernel's time (MinTime below).
void bm_step_kernel(benchmark::State& state, Setup s, bb::Norm p, std::string isa) {
  const bb::Pgd pgd(p, bb::PgdOptions{});
  auto eps = torch::full({s.x.size(0)}, pgd_budget(p), s.x.options());
  auto radius = eps.to(torch::kFloat64);
  auto step = radius * pgd.options().rel_stepsize;
  const bb::Box box = s.model->classifier.spec().domain;
  auto z = bb::sample_ball(s.x, eps, p, 1).select(1, 0).clamp(box.lo, box.hi);
  auto grad = bb::margin_loss_gradient(s.model->classifier, z, s.c).grad;
  bb::detail::use_row_kernel_isa(isa);
  double kernel = 0;
  double baseline = 0;
  for (auto _ : state) {
    baseline += forward_backward(s);
    bb::Stopwatch watch(s.model->classifier.device());
    auto moved = bb::ascent_step(s.x, z, grad, radius, step, p, box);
    benchmark::DoNotOptimize(moved.data_ptr());
    const double t = watch.seconds();
    kernel += t;
    state.SetIterationTime(t);
  }
  bb::detail::use_row_kernel_isa("");
  state.counters["ratio_to_fwd_bwd"] = kernel / baseline;
}

// A whole DeepFool run from the registry (make_attack, the public run; all
// classes as candidates, no refinement) against the gradient evaluations it
// made, computed batched: t_k, the k - 1 class margin gradients of the whole
// batch in one margin_gradients call (paired, every iteration), scaled by the
// run's gradient evaluations G (result.gradients) over the N (k - 1) of one
// full-batch iteration. The ratio is what the run adds to its gradients: the
// forward pass per iteration that checks which samples are still classified
// c, the step itself, the gathers and scatters of the samples still active
// (later iterations run on fewer of them, less efficiently batched), and the
// final re-check and distances. `iterations` is G / (N (k - 1)), the mean per
// sample; `batch_iterations`, the most any sample took, is how often the loop
// ran, each time with a forward pass of the whole batch: where a few samples
// need many more iterations than the rest, those forward passes, not counted
// in G, push the ratio up. A single iteration can no longer be timed alone
// (the registry gives whole runs only), so these figures are not comparable
// with the old deepfool_iteration ones.
void bm_deepfool_run(benchmark::State& state, Setup s, bb::Norm p) {
  bb::AttackOptions options;
  options.deepfool.candidates = 0;  // all classes
  options.refine.steps = 0;
  const auto deepfool = bb::make_attack("deepfool", p, options);
  const int64_t n = s.x.size(0);
  const int64_t k = s.model->classifier.num_classes();
  auto targets = torch::arange(k, s.c.options()).expand({n, k});
  double run = 0;
  double gradient_time = 0;  // t_k G / (N (k - 1)), summed over iterations
  double baseline = 0;
  double k_gradients = 0;
  double gradients = 0;
  double batch_iterations = 0;
  for (auto _ : state) {
    // A run is several batched iterations' worth of gradients: t_k (each
    // sample paired with a forward+backward pass) is sampled several times
    // per run, as PGD's baseline is, so the ratio does not rest on one noisy
    // measurement.
    double t_k = 0;
    for (int i = 0; i < kBaselineSamples; ++i) {
      baseline += forward_backward(s) / kBaselineSamples;
      bb::Stopwatch batched(s.model->classifier.device());
      auto mg = s.model->classifier.margin_gradients(s.x, s.c, targets.narrow(1, 0, k - 1));
      benchmark::DoNotOptimize(mg.grads.data_ptr());
      t_k += batched.seconds() / kBaselineSamples;
    }
    k_gradients += t_k;
    auto result = deepfool->run(s.model->classifier, s.x, s.c);
    benchmark::DoNotOptimize(result.x_adv.data_ptr());
    gradients = static_cast<double>(result.gradients.sum().item<int64_t>());
    batch_iterations = static_cast<double>(result.gradients.max().item<int64_t>()) / static_cast<double>(k - 1);
    gradient_time += t_k * gradients / static_cast<double>(n * (k - 1));
    run += result.seconds;
    state.SetIterationTime(result.seconds);
  }
  state.counters["ratio_to_gradients"] = run / gradient_time;
  state.counters["gradients_per_sample"] = gradients / static_cast<double>(n);
  state.counters["iterations"] = gradients / static_cast<double>(n * (k - 1));
  state.counters["batch_iterations"] = batch_iterations;
  state.counters["k_gradients_to_fwd_bwd"] = k_gradients / baseline;
}

// A bound from the registry on a few samples, against the gradient
// evaluations it makes, run batched the same way (margin_gradients on the
// same number of points and classes in the same chunks): the ratio is what
// sampling, bookkeeping and the fit add. The sample count and options are
// the bound benchmarks' own (--bound-samples; CLEVER 10 x 128, sampled 256
// draws), far below the defaults, so the whole run stays short.
struct BoundCase {
  std::string name;
  int64_t chunks;       // margin_gradients calls of the baseline
  int64_t chunk_draws;  // points per sample in each
};

void bm_bound(benchmark::State& state, Setup s, bb::Norm p, BoundCase bound_case, int64_t samples) {
  bb::BoundOptions options;
  options.clever.batches = 10;
  options.clever.batch_size = 128;
  options.sampled.draws = 256;
  options.sampled.chunk = 64;
  auto bound = bb::make_bound(bound_case.name, p, options);
  auto x = s.x.slice(0, 0, samples);
  auto c = s.c.slice(0, 0, samples);
  const int64_t k = s.model->classifier.num_classes();
  auto targets = bb::other_classes(c, k);
  std::vector<int64_t> shape{samples * bound_case.chunk_draws};
  shape.insert(shape.end(), x.sizes().begin() + 1, x.sizes().end());
  auto points = torch::rand(shape, x.options());
  auto row_c = c.repeat_interleave(bound_case.chunk_draws);
  auto row_targets = targets.repeat_interleave(bound_case.chunk_draws, 0);
  double spent = 0;
  double baseline = 0;
  double value = 0;
  int64_t gradients = 0;
  for (auto _ : state) {
    bb::Stopwatch batched(s.model->classifier.device());
    for (int64_t i = 0; i < bound_case.chunks; ++i) {
      auto mg = s.model->classifier.margin_gradients(points, row_c, row_targets);
      benchmark::DoNotOptimize(mg.grads.data_ptr());
    }
    baseline += batched.seconds();
    auto result = bound->run(*s.model, x, c, bb::BoundContext{});
    spent += result.seconds;
    value = result.value.median().item<double>();
    gradients = result.gradients.sum().item<int64_t>();
    state.SetIterationTime(result.seconds);
  }
  state.counters["ratio_to_gradients"] = spent / baseline;
  state.counters["gradients_per_sample"] = static_cast<double>(gradients) / static_cast<double>(samples);
  state.counters["median_bound"] = value;
}

// The interval Jacobian of all k-1 margins over B_p(x, eps) ∩ D (IBP bounds
// computed beforehand) against the k-1 plain margin gradients at x it
// bounds; and the CROWN pre-activation bounds against a forward+backward
// pass. Same samples, same radius (Linf 0.01, L2 0.1).
void bm_interval_jacobian(
    benchmark::State& state, Setup s, bb::Norm p, int64_t samples, bb::JacobianRelaxation relaxation,
    bool float64, bool refine) {
  // float64: the backward pass as on a GPU, to weigh the CPU's float32 one.
  bb::detail::use_float32_interval_backward(!float64);
  const auto& layers = *s.model->layers;
  auto x = s.x.slice(0, 0, samples);
  auto c = s.c.slice(0, 0, samples);
  auto targets = bb::other_classes(c, s.model->classifier.num_classes());
  const double eps = p == bb::Norm::Linf ? 0.01 : 0.1;
  auto region = bb::Region::ball(x, torch::full({samples}, eps, x.options()), p, s.model->classifier.spec().domain);
  const auto bounds = bb::ibp_bounds(layers, region);
  double spent = 0;
  double baseline = 0;
  for (auto _ : state) {
    bb::Stopwatch batched(s.model->classifier.device());
    auto mg = s.model->classifier.margin_gradients(x, c, targets);
    benchmark::DoNotOptimize(mg.grads.data_ptr());
    baseline += batched.seconds();
    bb::Stopwatch watch(s.model->classifier.device());
    auto bound = bb::interval_jacobian_norm(
        layers, bounds, c, targets, bb::dual(p), relaxation, s.model->classifier.spec().shape, {}, refine);
    benchmark::DoNotOptimize(bound.data_ptr());
    const double t = watch.seconds();
    spent += t;
    state.SetIterationTime(t);
  }
  state.counters["ratio_to_gradients"] = spent / baseline;
  bb::detail::use_float32_interval_backward(true);
}

void bm_crown_bounds(benchmark::State& state, Setup s, bb::Norm p, int64_t samples) {
  const auto& layers = *s.model->layers;
  Setup few{s.model, s.x.slice(0, 0, samples), s.c.slice(0, 0, samples)};
  const double eps = p == bb::Norm::Linf ? 0.01 : 0.1;
  auto region = bb::Region::ball(
      few.x, torch::full({samples}, eps, few.x.options()), p, s.model->classifier.spec().domain);
  double spent = 0;
  double baseline = 0;
  for (auto _ : state) {
    baseline += forward_backward(few);
    bb::Stopwatch watch(s.model->classifier.device());
    auto bounds = bb::crown_bounds(layers, region);
    benchmark::DoNotOptimize(bounds.lower.back().data_ptr());
    const double t = watch.seconds();
    spent += t;
    state.SetIterationTime(t);
  }
  state.counters["ratio_to_fwd_bwd"] = spent / baseline;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) {
      parts.push_back(part);
    }
  }
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  // --help: this program's options first (Google Benchmark's own --help,
  // which Initialize handles, lists only its --benchmark_* flags).
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    help = help || arg == "--help" || arg == "-h";
  }
  if (!help) {
    benchmark::Initialize(&argc, argv);
  }
  namespace po = boost::program_options;
  std::string suite;
  std::string models_text;
  std::string device_name;
  std::string batches_text;
  std::string norms_text;
  std::string methods_text;
  std::vector<std::string> sets;
  double max_seconds = 0;
  int64_t iterations = 0;
  int64_t batch = 0;
  int64_t bound_samples = 0;
  po::options_description options("boundbench_micro (plus the --benchmark_* flags)");
  options.add_options()
      ("suite", po::value(&suite)->default_value("registry"),
       "registry (every method of the registry, bench/micro_suite.h) or steps (attack steps, kernels)")
      ("models", po::value(&models_text)->default_value(""),
       "zoo models, comma-separated (registry: every zoo model; steps: mnist-mlp-relu,mnist-cnn-relu,cifar10-cnn-relu)")
      ("batches", po::value(&batches_text)->default_value("1,16,128"), "registry: batch sizes, ascending")
      ("norms", po::value(&norms_text)->default_value("2,inf"), "registry: norms")
      ("methods", po::value(&methods_text)->default_value("all"),
       "registry: method names, or all (every attack and bound: exact-milp only when named), attacks, bounds")
      ("set", po::value(&sets)->composing(), "registry: a method option, key=value (--set pgd.steps=100); repeatable")
      ("max-seconds", po::value(&max_seconds)->default_value(20, "20"),
       "registry: skip a benchmark predicted (from its smaller batches) to take longer")
      ("iterations", po::value(&iterations)->default_value(1), "registry: runs per method benchmark")
      ("batch", po::value(&batch)->default_value(100), "steps: images per batch")
      ("bound-samples", po::value(&bound_samples)->default_value(4), "steps: images per bound benchmark")
      ("device", po::value(&device_name)->default_value("cpu"), "cpu, cuda or cuda:N")
      ("help,h", "print this help");
  try {
    po::variables_map values;
    po::store(po::parse_command_line(argc, argv, options), values);
    if (values.count("help")) {
      std::cout << options << "\nand Google Benchmark's --benchmark_* flags (--benchmark_filter=REGEX,\n"
                << "--benchmark_out=FILE --benchmark_out_format=json, --benchmark_repetitions=N, ...).\n";
      return 0;
    }
    po::notify(values);
    BB_CHECK(suite == "registry" || suite == "steps", "--suite: unknown '{}' (valid: registry, steps)", suite);
    BB_CHECK(batch > 0, "--batch: must be positive, got {}", batch);
    BB_CHECK(
        bound_samples > 0 && bound_samples <= batch,
        "--bound-samples: must lie in [1, --batch], got {}",
        bound_samples);
    bb::configure_allocator();
    bb::configure_threads();
    const torch::Device device = bb::parse_device(device_name);
    benchmark::AddCustomContext("device", device.str());
    benchmark::AddCustomContext("libtorch", bb::torch_version());
    benchmark::AddCustomContext("threads", std::to_string(at::get_num_threads()));
    if (suite == "steps") {
      benchmark::AddCustomContext("batch", std::to_string(batch));
    }
    if (device.is_cpu()) {
      benchmark::AddCustomContext("row_kernels", bb::detail::row_kernel_isa());
    }
    benchmark::AddCustomContext("suite", suite);
    if (suite == "registry") {
      bb::micro::SuiteOptions o;
      o.device = device;
      o.models = split(models_text);
      if (o.models.empty()) {
        const auto manifest = bb::read_manifest(bb::default_zoo_dir());
        for (const auto& m : manifest.at("models")) {
          o.models.push_back(m.at("name").get<std::string>());
        }
      }
      for (const auto& b : split(batches_text)) {
        size_t used = 0;
        int64_t value = 0;
        try {
          value = std::stoll(b, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        BB_CHECK(used == b.size() && used > 0, "--batches: expected positive integers, got '{}'", b);
        o.batches.push_back(value);
      }
      for (const auto& p : split(norms_text)) {
        o.norms.push_back(bb::parse_norm(p, "--norms"));
      }
      for (const auto& name : split(methods_text)) {
        if (name == "all" || name == "attacks" || name == "bounds") {
          for (const auto& m : bb::method_names()) {
            const bool attack = bb::is_attack(m);
            if (m != "exact-milp" && (name == "all" || attack == (name == "attacks"))) {
              o.methods.push_back(m);
            }
          }
        } else {
          o.methods.push_back(name);
        }
      }
      for (const auto& kv : sets) {
        const auto eq = kv.find('=');
        BB_CHECK(eq != std::string::npos && eq > 0, "--set: expected key=value, got '{}'", kv);
        bb::set_option(o.options, kv.substr(0, eq), kv.substr(eq + 1));
      }
      o.max_seconds = max_seconds;
      o.iterations = iterations;
      benchmark::AddCustomContext("batches", batches_text);
      benchmark::AddCustomContext("max_seconds", fmt::format("{:g}", max_seconds));
      bb::micro::register_suite(o);
      benchmark::RunSpecifiedBenchmarks();
      benchmark::Shutdown();
      return 0;
    }
    if (models_text.empty()) {
      models_text = "mnist-mlp-relu,mnist-cnn-relu,cifar10-cnn-relu";
    }
    for (const auto& name : split(models_text)) {
      Setup s = make_setup(name, batch, device);
      auto reg = [&](const std::string& label, auto fn, auto... extra) {
        return benchmark::RegisterBenchmark(label.c_str(), fn, s, extra...)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      };
      reg(fmt::format("fwd_bwd/{}/batch:{}", name, batch), bm_forward_backward);
      for (bb::Norm p : bb::all_norms()) {
        reg(fmt::format("pgd_step/{}/{}/batch:{}", name, bb::norm_name(p), batch), bm_pgd_step, p, std::string());
      }
      // PGD's step with each loss (pgd_step above: the default one).
      for (bb::Norm p : bb::all_norms()) {
        for (const auto& loss : bb::pgd_loss_names()) {
          reg(fmt::format("pgd_loss_step/{}/{}/{}/batch:{}", name, bb::norm_name(p), loss, batch), bm_pgd_step, p,
              loss);
        }
      }
      for (bb::Norm p : bb::all_norms()) {
        reg(fmt::format("fmn_step/{}/{}/batch:{}", name, bb::norm_name(p), batch), bm_fmn_step, p);
      }
      if (device.is_cpu()) {
        for (bb::Norm p : bb::all_norms()) {
          for (const auto& isa : bb::detail::row_kernel_isas()) {
            reg(fmt::format("step_kernel/{}/{}/{}/batch:{}", name, bb::norm_name(p), isa, batch), bm_step_kernel, p,
                isa)
                ->MinTime(0.1);
          }
        }
      }
      for (bb::Norm p : bb::all_norms()) {
        reg(fmt::format("deepfool_run/{}/{}/batch:{}", name, bb::norm_name(p), batch), bm_deepfool_run, p);
      }
      for (bb::Norm p : {bb::Norm::L2, bb::Norm::Linf}) {
        // CLEVER: 10 batches of 128; sampled (ReLU: no ascent): the centre
        // and 4 chunks of 64, approximated in the baseline by 4 chunks.
        for (const BoundCase& bound_case : {BoundCase{"lipschitz-clever", 10, 128},
                                            BoundCase{"lipschitz-sampled", 4, 64}}) {
          reg(fmt::format("bound/{}/{}/{}/samples:{}", bound_case.name, name, bb::norm_name(p), bound_samples),
              bm_bound, p, bound_case, bound_samples)
              ->Iterations(2);
        }
        if (s.model->layers) {
          // The default (linear) under the name the baselines know; the plain
          // interval arithmetic and RecurJac's merging beside it.
          reg(fmt::format("interval_jacobian/{}/{}/samples:{}", name, bb::norm_name(p), bound_samples),
              bm_interval_jacobian, p, bound_samples, bb::JacobianRelaxation::Linear, false, false)
              ->Iterations(3);
          for (auto relaxation : {bb::JacobianRelaxation::Interval, bb::JacobianRelaxation::SignAware}) {
            reg(fmt::format("interval_jacobian_{}/{}/{}/samples:{}", bb::relaxation_name(relaxation), name,
                            bb::norm_name(p), bound_samples),
                bm_interval_jacobian, p, bound_samples, relaxation, false, false)
                ->Iterations(3);
          }
          reg(fmt::format("interval_jacobian_interval_float64/{}/{}/samples:{}", name, bb::norm_name(p),
                          bound_samples),
              bm_interval_jacobian, p, bound_samples, bb::JacobianRelaxation::Interval, true, false)
              ->Iterations(3);
          // interval.refine: every input coordinate through +e_k and -e_k.
          reg(fmt::format("interval_jacobian_refined/{}/{}/samples:{}", name, bb::norm_name(p), bound_samples),
              bm_interval_jacobian, p, bound_samples, bb::JacobianRelaxation::Linear, false, true)
              ->Iterations(2);
          reg(fmt::format("crown_bounds/{}/{}/samples:{}", name, bb::norm_name(p), bound_samples),
              bm_crown_bounds, p, bound_samples)
              ->Iterations(2);
        }
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "boundbench_micro: " << e.what() << "\n";
    return 2;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
