// CLEVER's gradient-norm estimate (Weng et al. 2018): N_b batches of N_s
// independent uniform points in B_p(x, R) ∩ D (fresh draws for every batch,
// not resamples of one pool as ART does), the largest ||grad g_j||_q of each
// batch, and a reverse Weibull law fitted to those maxima (bounds/evt.h);
// its location estimates the maximum. Where the fit fails its K-S test the
// largest sample stands in. An extrapolation from samples: estimated.
#include <torch/torch.h>

#include "bounds/evt.h"
#include "bounds/sources.h"
#include "core/error.h"
#include "core/runtime.h"

namespace bb {
namespace {

class CleverSource : public GradNormSource {
 public:
  explicit CleverSource(const CleverOptions& options) : options_(options) {}

  std::string name() const override {
    BoundOptions all;
    all.clever = options_;
    return "clever(" + describe_options(all, {"clever.batches", "clever.batch_size", "clever.min_pvalue"}) + ")";
  }
  bool certified() const override { return false; }

  GradNormResult estimate(const GradNormRequest& request) const override {
    const Classifier& model = request.model->classifier;
    const Region& region = *request.region;
    BB_ASSERT(request.random != nullptr, "CLEVER needs random streams");
    Stopwatch watch(model.device());
    const Norm q = dual(region.norm());
    const int64_t n = region.center().size(0);
    const int64_t m = request.targets.size(1);
    std::vector<torch::Tensor> maxima;  // N_b x [N, m]
    for (int b = 0; b < options_.batches; ++b) {
      auto points = region.sample(options_.batch_size, *request.random);
      auto norms = gradient_norms(model, points, request.c, request.targets, q);  // [N, N_s, m]
      maxima.push_back(std::get<0>(norms.max(1)));
    }
    auto table = torch::stack(maxima, 2).reshape({n * m, options_.batches}).cpu().contiguous();
    evt::FitOptions fit;
    fit.min_pvalue = options_.min_pvalue;
    const auto fits = evt::fit_rows(table, fit);
    auto estimate = torch::empty({n * m}, torch::kFloat64);
    auto rejected = torch::empty({n * m}, torch::kBool);
    auto e = estimate.accessor<double, 1>();
    auto r = rejected.accessor<bool, 1>();
    for (int64_t i = 0; i < n * m; ++i) {
      e[i] = fits[static_cast<size_t>(i)].estimate;
      r[i] = fits[static_cast<size_t>(i)].rejected;
    }
    auto device = request.c.device();
    GradNormResult result;
    result.value = estimate.view({n, m}).to(device);
    result.fit_rejected = rejected.view({n, m}).to(device);
    result.gradients = torch::full(
        {n}, int64_t{options_.batches} * options_.batch_size * m,
        request.c.options().dtype(torch::kInt64));
    result.seconds = watch.seconds();
    return result;
  }

 private:
  CleverOptions options_;
};

}  // namespace

std::unique_ptr<GradNormSource> make_clever_source(const CleverOptions& options) {
  return std::make_unique<CleverSource>(options);
}

}  // namespace bb
