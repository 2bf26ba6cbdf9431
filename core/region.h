// Regions of the input space over which gradient norms are bounded:
// B_p(center, radius) ∩ D for each sample of a batch. An infinite radius gives
// the domain D itself (Theorem 1's region); a finite one the local ball of
// Hein & Andriushchenko and CLEVER. Both are convex, which the mean value
// argument behind every bound needs.
#pragma once

#include <string>
#include <utility>

#include <torch/types.h>

#include "core/norm.h"
#include "core/random.h"

namespace bb {

class Region {
 public:
  // D = box, carried per sample (the centers give the batch and input shape).
  // p is the norm of the distortion: gradient norms over D are taken in its
  // dual q.
  static Region domain(torch::Tensor center, Norm p, Box box);
  // B_p(center, radius) ∩ box; radius is [N] or a scalar, > 0, may be +inf.
  static Region ball(torch::Tensor center, torch::Tensor radius, Norm p, Box box);

  const torch::Tensor& center() const { return center_; }
  const torch::Tensor& radius() const { return radius_; }  // [N]
  Norm norm() const { return norm_; }
  Box box() const { return box_; }

  // The nearest point of the region (Euclidean), exact: see project_ball_box.
  torch::Tensor project(const torch::Tensor& z) const;
  // Whether each z_n ([N, ...]) lies in the region, up to a relative and
  // absolute tolerance `tol` on the norm and the box: bool [N].
  torch::Tensor contains(const torch::Tensor& z, double tol = 1e-6) const;
  // `draws` points per sample in the region, [N, draws, ...], each sample's
  // from its own stream (one stream per sample). Where the radius is
  // infinite they are uniform in the box; otherwise uniform in the ball and
  // then clipped to the box (clipping keeps them in the ball since the center
  // is in the box; they are then not uniform in the intersection, as in
  // CLEVER). Callers that need many draws ask for them in chunks, so memory
  // stays bounded; a sample's draws depend only on its stream.
  torch::Tensor sample(int64_t draws, RandomStreams& streams) const;
  // Whether every radius is infinite (the region is D itself).
  bool is_domain() const;
  // The regions of the samples `rows` (int64 [M]).
  Region rows(const torch::Tensor& rows) const;
  // Elementwise interval hull [lower, upper] of the region, each [N, ...]:
  // [max(x - R, lo), min(x + R, hi)] for every p.
  std::pair<torch::Tensor, torch::Tensor> interval_hull() const;
  // "D" or "B_L2(x, R) ∩ D": for logs and result rows.
  std::string describe() const;

 private:
  Region(torch::Tensor center, torch::Tensor radius, Norm p, Box box);

  torch::Tensor center_;
  torch::Tensor radius_;
  Norm norm_;
  Box box_;
};

}  // namespace bb
