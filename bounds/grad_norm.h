// Gradient-norm sources: an upper estimate of
//   G_j(S) = max_{z in S} ||grad g_j(z)||_q,   g_j = f_c - f_j,  1/p + 1/q = 1,
// for every sample n (S = its region, B_p(x_n, R_n) ∩ D or D) and every class
// j of targets[n]. Every bound is a formula applied to such a figure; the
// source decides whether the bound is certified (the figure provably is an
// upper bound) or estimated (sampled or extrapolated: it may fall short of the
// true maximum, and the bound may then exceed the true minimal distortion).
// Every formula uses the figure only to bound how fast g_j can fall along a
// segment from the centre x inside S, so a source may bound the smaller
// max_{z in S} ||h(grad g_j(z))||_q instead, h dropping the sign of each
// coordinate that such a segment cannot use where x sits on a face of D, and
// for p = inf with a room radius rho weighing each sign by the room toward
// the face, min(1, distance / rho) (the interval source does:
// bounds/interval_jacobian.h). The second holds only for segments of length
// at least rho, or with the length read as rho: a caller that passes rho
// must use the figure that way (bounds/local_ball_shells.cpp).
// One source per file in bounds/, registered in bounds/registry.cpp.
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "core/random.h"
#include "core/region.h"
#include "models/model.h"

namespace bb {

struct GradNormRequest {
  const Model* model = nullptr;
  const Region* region = nullptr;  // q = dual(region->norm())
  torch::Tensor c;                 // int64 [N]: the predicted classes
  torch::Tensor targets;           // int64 [N, m]: classes j != c to bound
  RandomStreams* random = nullptr;  // one stream per sample (estimated sources draw from it)
  // Optional extra starting points in D for sampled searches over D
  // (Theorem 1 passes training images): [P, ...], shared by every sample.
  torch::Tensor starts;
  // Optional, float64 [N], p = inf only: the room radius rho above. Sources
  // may ignore it (their figure is then larger, and as sound).
  torch::Tensor room_radius;
};

struct GradNormResult {
  torch::Tensor value;         // float64 [N, m]: the upper estimate of G_j
  torch::Tensor gradients;     // int64 [N]: gradient evaluations spent on each sample
  // CLEVER only (else undefined): bool [N, m], the extreme-value fit was
  // rejected (K-S p-value below the threshold) and the largest sample stands in.
  torch::Tensor fit_rejected;
  double seconds = 0;
};

class GradNormSource {
 public:
  virtual ~GradNormSource() = default;
  // "sampled(draws=256,ascent_steps=20,...)": every hyper-parameter, with the
  // keys of its options struct.
  virtual std::string name() const = 0;
  virtual bool certified() const = 0;
  // Throws a bb::Error naming `method` if this source cannot serve `model`
  // for the norm p (a certified source needs the layer chain, say).
  virtual void check(const Model& model, Norm p, const std::string& method) const {}
  // Whether estimate() uses GradNormRequest::room_radius.
  virtual bool weighs_room() const { return false; }
  virtual GradNormResult estimate(const GradNormRequest& request) const = 0;
};

}  // namespace bb
