#include "core/region.h"

#include <limits>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// [N, 1, ..., 1] so that it broadcasts against a [N, ...] tensor.
}  // namespace

Region::Region(torch::Tensor center, torch::Tensor radius, Norm p, Box box)
    : center_(std::move(center)), radius_(std::move(radius)), norm_(p), box_(box) {
  BB_ASSERT(center_.dim() >= 2, "a region needs a batch of centers");
  if (radius_.dim() == 0) {
    radius_ = radius_.expand({center_.size(0)}).clone();
  }
  radius_ = radius_.to(center_.options());
  BB_ASSERT(
      radius_.dim() == 1 && radius_.size(0) == center_.size(0),
      "radius has {} entries for {} centers",
      radius_.numel(),
      center_.size(0));
}

Region Region::domain(torch::Tensor center, Box box) {
  auto radius = torch::full({center.size(0)}, kInf, center.options());
  return Region(std::move(center), std::move(radius), Norm::Linf, box);
}

Region Region::ball(torch::Tensor center, torch::Tensor radius, Norm p, Box box) {
  return Region(std::move(center), std::move(radius), p, box);
}

torch::Tensor Region::project(const torch::Tensor& z) const {
  return project_ball_box(center_, z, radius_, norm_, box_);
}

torch::Tensor Region::contains(const torch::Tensor& z, double tol) const {
  auto in_box = ((z >= box_.lo - tol) & (z <= box_.hi + tol))
                    .reshape({z.size(0), -1})
                    .all(1);
  auto distance = lp_norm(z - center_, norm_);
  auto in_ball = distance <= radius_ * (1 + tol) + tol;
  return in_box & in_ball;
}

torch::Tensor Region::sample(int64_t draws) const {
  auto infinite = torch::isinf(radius_);
  auto finite_radius = torch::where(infinite, torch::zeros_like(radius_), radius_);
  auto in_ball = sample_ball(center_, finite_radius, norm_, draws)
                     .clamp(box_.lo, box_.hi);
  auto in_box = box_.lo +
      (box_.hi - box_.lo) * torch::rand(in_ball.sizes(), in_ball.options());
  std::vector<int64_t> shape(in_ball.dim(), 1);
  shape[0] = radius_.size(0);
  return torch::where(infinite.view(shape), in_box, in_ball);
}

std::pair<torch::Tensor, torch::Tensor> Region::interval_hull() const {
  auto r = per_sample(radius_, center_);
  return {(center_ - r).clamp_min(box_.lo), (center_ + r).clamp_max(box_.hi)};
}

std::string Region::describe() const {
  if (torch::isinf(radius_).all().item<bool>()) {
    return "D";
  }
  return fmt::format("B_{}(x, R) ∩ D", norm_name(norm_));
}

}  // namespace bb
