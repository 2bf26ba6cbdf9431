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

namespace bb {

class Region {
 public:
  // D = box, carried per sample (the centers give the batch and input shape).
  static Region domain(torch::Tensor center, Box box);
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
  // `draws` points per sample in the region, [N, draws, ...]. Where the radius
  // is infinite they are uniform in the box; otherwise uniform in the ball and
  // then clipped to the box (clipping keeps them in the ball since the center
  // is in the box; they are then not uniform in the intersection).
  torch::Tensor sample(int64_t draws) const;
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
