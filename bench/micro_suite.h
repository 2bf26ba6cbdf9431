// The runtime suite of boundbench_micro (`--suite registry`, the default):
// one Google Benchmark per (method, model, norm, batch) of the harness's
// method registry (harness/methods.h: every attack and bound the run command
// runs, through the same public Method::run), on the first B test images
// each zoo model classifies correctly, and per (model, batch) the baselines:
// one forward+backward pass of the batch, and the batched gradients of the
// k - 1 class margins.
//
// Every method benchmark pairs each run with forward+backward passes of the
// same batch and reports, as counters:
//   samples_per_s, gradients_per_s, gradients_per_sample;
//   ratio_to_fwd_bwd     its time over one forward+backward pass of the batch;
//   ratio_to_gradients   its time over the passes its gradient evaluations
//                        need (gradients per sample x forward+backward), where
//                        it makes any;
//   quality: success_rate and median_distortion (attacks), finite_rate and
//   median_bound (bounds), proven_rate and median_exact (exact-milp),
// so that a faster but weaker change shows in `boundbench compare`.
// A (method, model, norm) whose time per sample at a smaller batch predicts
// more than --max-seconds at this one is skipped (reported as an error with
// the estimate): the suite stays within hours on a 2-core machine.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "core/classifier.h"
#include "core/norm.h"
#include "harness/methods.h"

namespace bb::micro {

struct SuiteOptions {
  std::vector<std::string> models;
  std::vector<int64_t> batches;  // ascending
  std::vector<Norm> norms;
  std::vector<std::string> methods;  // registry names
  double max_seconds = 20;           // per benchmark, predicted from the smaller batches
  int64_t iterations = 1;            // runs per method benchmark
  MethodOptions options;  // the harness defaults unless --set key=value
  torch::Device device = torch::kCPU;
  std::string data_dir;  // empty: default_data_dir()
};

// One forward and backward pass of the batch (the margin against class c,
// summed), device synchronised: the physical limit every cost is read
// against, in both suites.
double forward_backward_seconds(const Classifier& model, const torch::Tensor& x, const torch::Tensor& c);

// Registers the suite's benchmarks (loads the models and test images now).
// Methods that cannot serve a model (Method::check) are left out, each with a
// note on stderr.
void register_suite(const SuiteOptions& options);

}  // namespace bb::micro
