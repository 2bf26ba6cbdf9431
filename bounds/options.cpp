#include "bounds/options.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"

namespace bb {

std::vector<OptionField> option_fields(BoundOptions& o) {
  return {
      {"sampled.draws", "sampled maximum: uniform points per sample", &o.sampled.draws},
      {"sampled.chunk", "sampled maximum: draws made and evaluated together per sample", &o.sampled.chunk},
      {"sampled.ascent_steps", "sampled maximum: gradient-ascent steps (smooth activations only)", &o.sampled.ascent_steps},
      {"sampled.ascent_starts", "sampled maximum: best points per class that ascent starts from", &o.sampled.ascent_starts},
      {"sampled.ascent_rel_step", "sampled maximum: ascent step relative to min(R, diameter of D)", &o.sampled.ascent_rel_step},
      {"sampled.domain_starts", "sampled maximum over D: training images it also starts from", &o.sampled.domain_starts},
      {"clever.batches", "CLEVER: batches N_b (the paper: 500)", &o.clever.batches},
      {"clever.batch_size", "CLEVER: uniform draws per batch N_s (the paper: 1024)", &o.clever.batch_size},
      {"clever.min_pvalue", "CLEVER: K-S p-value below which the fit is rejected", &o.clever.min_pvalue},
      {"local_ball.octaves", "local ball: search R down to R0 2^-octaves", &o.local_ball.octaves},
      {"local_ball.bisection_steps", "local ball: bisection steps on log R", &o.local_ball.bisection_steps},
      {"local_ball.room", "local ball, Linf: weigh each coordinate by its room toward D's faces at the trial radius (true or false)", &o.local_ball.room},
      {"lipschitz.radius", "Lipschitz: radius R of the ball (default: L1 40, L2 2, Linf 0.1)", &o.lipschitz.radius},
      {"lipschitz.targets", "Lipschitz: all, top2, random or least", &o.lipschitz.targets},
      {"theorem1.cache_dir", "Theorem 1: keep G_j(D) on disk in this folder", &o.theorem1.cache_dir},
      {"interval.backward", "interval Jacobian: interval, recurjac (sign-aware merging) or linear (plus Shi et al.'s relaxation)", &o.interval.backward},
      {"interval.faces", "interval Jacobian: where x sits on a face of D, count only the directions into D (true or false)", &o.interval.faces},
      {"interval.refine", "interval Jacobian, merged forms: bound each input coordinate of the gradient through +e_k and -e_k (true or false; 2 d functional passes)", &o.interval.refine},
      {"shells.shells", "local-ball shells: shells (radii) per round of the integral's grid", &o.shells.shells},
      {"shells.rounds", "local-ball shells: rounds refining the grid below the radius where it failed", &o.shells.rounds},
      {"shells.room", "local-ball shells, Linf: from round 2, weigh each coordinate by its room toward D's faces at the last radius (true or false)", &o.shells.room},
      {"crown_radius.bisection_steps", "CROWN radius: bisection steps on epsilon", &o.crown_radius.bisection_steps},
  };
}

namespace {

const OptionField& find_field(const std::vector<OptionField>& fields, const std::string& key) {
  std::vector<std::string> keys;
  for (const auto& field : fields) {
    if (field.key == key) {
      return field;
    }
    keys.push_back(field.key);
  }
  throw Error(fmt::format("unknown option '{}' (valid: {})", key, fmt::join(keys, ", ")));
}

}  // namespace

void set_field(const std::vector<OptionField>& fields, const std::string& key, const std::string& text) {
  const OptionField& field = find_field(fields, key);
  auto bad = [&](const char* expected) {
    return Error(fmt::format("--{}: expected {}, got '{}'", key, expected, text));
  };
  std::visit(
      [&](auto* target) {
        using T = std::remove_pointer_t<decltype(target)>;
        if constexpr (std::is_same_v<T, std::string>) {
          *target = text;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (text == "1" || text == "true" || text == "yes") {
            *target = true;
          } else if (text == "0" || text == "false" || text == "no") {
            *target = false;
          } else {
            throw bad("true or false");
          }
        } else {
          size_t used = 0;
          T parsed{};
          try {
            if constexpr (std::is_same_v<T, int>) {
              parsed = std::stoi(text, &used);
            } else {
              parsed = std::stod(text, &used);
            }
          } catch (const std::exception&) {
            throw bad(std::is_same_v<T, int> ? "an integer" : "a number");
          }
          if (used != text.size()) {
            throw bad(std::is_same_v<T, int> ? "an integer" : "a number");
          }
          *target = parsed;
        }
      },
      field.value);
}

std::string field_text(const std::vector<OptionField>& fields, const std::string& key) {
  return std::visit(
      [](auto* value) -> std::string {
        using T = std::remove_pointer_t<decltype(value)>;
        if constexpr (std::is_same_v<T, bool>) {
          return *value ? "true" : "false";
        } else {
          return fmt::format("{}", *value);
        }
      },
      find_field(fields, key).value);
}

void set_option(BoundOptions& options, const std::string& key, const std::string& text) {
  try {
    set_field(option_fields(options), key, text);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind("unknown option", 0) == 0) {
      throw Error("unknown bound option" + what.substr(std::string("unknown option").size()));
    }
    throw;
  }
  if (key == "lipschitz.radius" && !(std::isfinite(options.lipschitz.radius) && options.lipschitz.radius > 0)) {
    options.lipschitz.radius = 0;  // back to the default
    throw Error(fmt::format("--lipschitz.radius: must be positive and finite, got {}", text));
  }
}

std::string option_text(const BoundOptions& options, const std::string& key) {
  BoundOptions copy = options;
  return field_text(option_fields(copy), key);
}

std::string describe_options(const BoundOptions& options, const std::vector<std::string>& keys) {
  std::vector<std::string> parts;
  for (const auto& key : keys) {
    parts.push_back(key + "=" + option_text(options, key));
  }
  return fmt::format("{}", fmt::join(parts, ","));
}

void validate(const BoundOptions& o) {
  auto positive = [](int value, const char* key) {
    BB_CHECK(value >= 1, "--{}: must be at least 1, got {}", key, value);
  };
  auto non_negative = [](int value, const char* key) {
    BB_CHECK(value >= 0, "--{}: must not be negative, got {}", key, value);
  };
  positive(o.sampled.draws, "sampled.draws");
  positive(o.sampled.chunk, "sampled.chunk");
  non_negative(o.sampled.ascent_steps, "sampled.ascent_steps");
  positive(o.sampled.ascent_starts, "sampled.ascent_starts");
  BB_CHECK(
      std::isfinite(o.sampled.ascent_rel_step) && o.sampled.ascent_rel_step > 0,
      "--sampled.ascent_rel_step: must be positive and finite, got {}",
      o.sampled.ascent_rel_step);
  non_negative(o.sampled.domain_starts, "sampled.domain_starts");
  BB_CHECK(o.clever.batches >= 2, "--clever.batches: must be at least 2 (a fit needs several maxima), got {}",
           o.clever.batches);
  positive(o.clever.batch_size, "clever.batch_size");
  BB_CHECK(
      o.clever.min_pvalue >= 0 && o.clever.min_pvalue < 1,
      "--clever.min_pvalue: must lie in [0, 1), got {}",
      o.clever.min_pvalue);
  positive(o.local_ball.octaves, "local_ball.octaves");
  non_negative(o.local_ball.bisection_steps, "local_ball.bisection_steps");
  BB_CHECK(
      o.lipschitz.radius == 0 || (std::isfinite(o.lipschitz.radius) && o.lipschitz.radius > 0),
      "--lipschitz.radius: must be positive and finite, got {}",
      o.lipschitz.radius);
  BB_CHECK(
      o.lipschitz.targets == "all" || o.lipschitz.targets == "top2" ||
          o.lipschitz.targets == "random" || o.lipschitz.targets == "least",
      "--lipschitz.targets: unknown '{}' (valid: all, top2, random, least)",
      o.lipschitz.targets);
  BB_CHECK(
      o.interval.backward == "interval" || o.interval.backward == "recurjac" ||
          o.interval.backward == "linear",
      "--interval.backward: unknown '{}' (valid: interval, recurjac, linear)",
      o.interval.backward);
  BB_CHECK(
      !o.interval.refine || o.interval.backward != "interval",
      "--interval.refine: needs --interval.backward recurjac or linear, not interval");
  positive(o.shells.shells, "shells.shells");
  positive(o.shells.rounds, "shells.rounds");
  non_negative(o.crown_radius.bisection_steps, "crown_radius.bisection_steps");
}

double default_radius(Norm p) {
  switch (p) {
    case Norm::L1:
      return 40.0;
    case Norm::L2:
      return 2.0;
    case Norm::Linf:
      return 0.1;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace bb
