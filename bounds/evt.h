// The extreme-value fit of CLEVER: a reverse Weibull law fitted by maximum
// likelihood to the per-batch maxima of sampled gradient norms, checked by a
// Kolmogorov-Smirnov test. Its location (the law's right end point) is
// CLEVER's estimate of the local Lipschitz constant.
//
// The procedure is that of the reference implementation (CLEVER's clever.py
// on scipy; bounds-anchors §5), written anew in plain C++:
//   1. rescale the maxima s to x = (max(s) - s) / (max(s) - min(s)), in [0, 1];
//   2. for each initial shape c in {0.1, 1, 5, 10, 20, 50, 100}, fit a
//      three-parameter Weibull_min (shape c, loc, scale) to x by Nelder-Mead
//      on the negative log-likelihood plus 0.01 * scale^2 (the reference's
//      regulariser, which lands on the scale: see evt.cpp);
//   3. map back to the original scale: location L = max(s) - loc * range,
//      scale *= range;
//   4. keep the fit with the best two-sided one-sample K-S p-value on the
//      original maxima; below FitOptions::min_pvalue the fit is rejected and
//      the estimate falls back to the largest maximum.
// One deliberate difference: outside the support the objective is +inf, so a
// fitted location is never below the largest maximum. The reference's finite
// penalty lets its simplex leave maxima outside the support, and it can accept
// such a fit (an estimate below an observed gradient norm).
// Only the rows helper touches tensors; the core is plain double arithmetic.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace bb::evt {

struct FitOptions {
  // A best p-value below this (or NaN) rejects the fit (the reference: 0.001).
  double min_pvalue = 0.001;
};

struct WeibullFit {
  // Reverse Weibull: F(y) = exp(-((location - y) / scale)^shape) for
  // y < location, 1 above. NaN shape and scale for a constant sample.
  double shape = NAN;
  double location = NAN;
  double scale = NAN;
  // The K-S statistic sup |F_n - F| of the kept fit on the original maxima,
  // and its two-sided p-value (1 for a constant sample).
  double ks_statistic = NAN;
  double p_value = NAN;
  // True when the best p-value is NaN or below min_pvalue: `estimate` is then
  // the largest sample, and the other fields describe the rejected best fit.
  bool rejected = false;
  // The location of the accepted fit, else max(sample). Never below the
  // largest sample: an accepted fit's support must hold every maximum.
  double estimate = NAN;
};

// Fits the maxima (n >= 2 finite values) of CLEVER's batches. A constant
// sample (e.g. a linear model, whose gradient norm never varies) gives
// estimate = that value exactly, accepted, with p-value 1. Throws a bb::Error
// for n < 2 or a non-finite value. Cost: linear in n, about 0.9 ms of one
// core for 50 maxima, 8 ms for 500.
WeibullFit fit_reverse_weibull(const double* maxima, int64_t n, const FitOptions& options = {});

// P(D_n >= d): the two-sided one-sample Kolmogorov-Smirnov p-value of the
// statistic d for a sample of n, under a continuous null law. Exact, to
// rounding, for every n <= 625: the Marsaglia-Tsang-Wang matrix power while
// its matrix stays small (k = floor(n d) + 1 <= 50), twice the exact
// one-sided Smirnov tail where n d^2 >= 4 (p below ~3e-4; exact for d > 1/2,
// within 1e-10 relative below). Beyond (n > 625, n d > 50): Kolmogorov's limit
// at Vrbik's small-sample corrected argument, within 1% relative of the exact
// law (0.6% from n = 1000 on). NaN for a NaN d; a bb::Error for n < 1.
double ks_pvalue(double d, int64_t n);

// One fit per row of `maxima` (CPU float64 [R, n], n >= 2); rows run in
// parallel (at::parallel_for). Throws a bb::Error naming the first row with
// a non-finite value.
std::vector<WeibullFit> fit_rows(const torch::Tensor& maxima, const FitOptions& options = {});

}  // namespace bb::evt
