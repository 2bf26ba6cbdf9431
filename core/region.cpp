#include "core/region.h"

#include <limits>

#include <torch/torch.h>

#include "core/error.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

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

Region Region::domain(torch::Tensor center, Norm p, Box box) {
  auto radius = torch::full({center.size(0)}, kInf, center.options());
  return Region(std::move(center), std::move(radius), p, box);
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

torch::Tensor Region::sample(int64_t draws, RandomStreams& streams) const {
  // Regions are all balls or all D in practice; a batch that mixes them
  // draws both for every sample (so a sample's draws would then depend on
  // its batch mixing them).
  auto infinite = torch::isinf(radius_);
  const bool any_infinite = infinite.any().item<bool>();
  const bool all_infinite = any_infinite && infinite.all().item<bool>();
  torch::Tensor in_ball;
  if (!all_infinite) {
    auto finite_radius = torch::where(infinite, torch::zeros_like(radius_), radius_);
    in_ball = sample_ball(center_, finite_radius, norm_, draws, streams).clamp(box_.lo, box_.hi);
  }
  if (!any_infinite) {
    return in_ball;
  }
  std::vector<int64_t> tail{draws};
  tail.insert(tail.end(), center_.sizes().begin() + 1, center_.sizes().end());
  auto in_box = box_.lo + (box_.hi - box_.lo) * streams.uniform(tail, center_.scalar_type());
  if (all_infinite) {
    return in_box;
  }
  std::vector<int64_t> shape(in_ball.dim(), 1);
  shape[0] = radius_.size(0);
  return torch::where(infinite.view(shape), in_box, in_ball);
}

bool Region::is_domain() const {
  return torch::isinf(radius_).all().item<bool>();
}

Region Region::rows(const torch::Tensor& rows) const {
  auto index = rows.to(center_.device());
  return Region(center_.index_select(0, index), radius_.index_select(0, index), norm_, box_);
}

std::pair<torch::Tensor, torch::Tensor> Region::interval_hull() const {
  auto r = per_sample(radius_, center_);
  return {(center_ - r).clamp_min(box_.lo), (center_ + r).clamp_max(box_.hi)};
}

std::string Region::describe() const {
  if (is_domain()) {
    return "D";
  }
  return fmt::format("B_{}(x, R) ∩ D", norm_name(norm_));
}

}  // namespace bb
