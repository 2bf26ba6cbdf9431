// Options of every bound and gradient-norm source, as structs with documented
// defaults, and one table of their keys ("clever.batches", ...). The command
// line, the sweeps and the benchmarks set them through the table; each
// method's name() prints the keys it reads with their values.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "core/norm.h"

namespace bb {

// Sampled maximum: uniform draws in the region, then (smooth activations
// only) projected gradient ascent on ||grad g_j||_q from the best points.
struct SampledOptions {
  int draws = 256;          // uniform points per sample (and per class pair over D)
  int chunk = 64;           // draws made and evaluated together per sample
  int ascent_steps = 20;    // ascent steps (skipped on piecewise linear networks)
  int ascent_starts = 4;    // best points per class that ascent starts from
  double ascent_rel_step = 0.05;  // ascent step relative to min(R, diameter of D)
  int domain_starts = 64;   // training images that searches over D also start from
};

// CLEVER (Weng et al. 2018): batch maxima of ||grad g_j||_q over independent
// uniform draws in B_p(x, R) ∩ D, fitted by a reverse Weibull law.
struct CleverOptions {
  int batches = 50;         // N_b (the paper: 500)
  int batch_size = 128;     // N_s (the paper: 1024)
  double min_pvalue = 0.001;  // K-S p-value below which the fit is rejected (max sample used)
};

// Local ball (Hein & Andriushchenko 2017): max over R of min(g / G(R), R), by
// bisection on log R between R0 2^-octaves and R0 = min_j g_j / ||grad g_j(x)||_q.
// With `room` (p = inf), every trial radius R weighs each pixel's two
// directions by its room toward D's faces at R, and counts only when it is
// shown whole (bounds/local_ball.cpp).
struct LocalBallOptions {
  int octaves = 20;
  int bisection_steps = 16;
  bool room = true;
};

// Lipschitz (CLEVER's formula): min_j g_j / L_j over B_p(x, R), capped at R.
struct LipschitzOptions {
  double radius = 0;          // R > 0; 0 (unset): the norm's default (L1 40, L2 2, Linf 0.1)
  std::string targets = "all";  // all, top2, random, least
};

// Theorem 1 over D: G_j(D) cached per (model, c, j, p, source).
struct Theorem1Options {
  std::string cache_dir;  // also keep G_j(D) on disk here (keyed by the model's sha256); empty: memory only
};

// Certified sources and references (bounds part 2).
struct IntervalOptions {
  // How the backward pass is bounded (bounds/interval_jacobian.h): "interval"
  // (Fast-Lip's interval arithmetic), "recurjac" (known upstream signs take
  // the matching derivative endpoint, merged), "linear" (recurjac plus Shi et
  // al.'s linear relaxation of the sign-unknown terms).
  std::string backward = "linear";
  // Where x sits on a face of D, count only the gradient's sign that a path
  // into D can use (bounds/interval_jacobian.h): sound, and much tighter on
  // images with saturated pixels. Off: the plain max ||grad g_j||_q.
  bool faces = true;
  // With the merged forms, bound every input coordinate of the gradient on
  // its own through the functionals +e_k and -e_k (2 d forward passes of the
  // functionals per margin, d the input size) and use those intervals for the
  // norms' chords (bounds/interval_jacobian.h): much tighter, and hundreds
  // of times the plain pass's cost on the MNIST MLP (README); meant for MLPs.
  bool refine = false;
};
// Local ball by shell integration: `shells` radii per round, equally spaced
// up to R0 in the first round and up to the radius where the budget ran out
// in each later one (bounds/local_ball_shells.cpp).
// With `room` (p = inf), every round after the first weighs each pixel's
// two directions by its room toward D's faces at the previous round's
// radius (bounds/local_ball_shells.cpp).
struct ShellOptions {
  int shells = 16;
  int rounds = 3;
  bool room = true;
};
struct CrownRadiusOptions {
  int bisection_steps = 20;
};

struct BoundOptions {
  SampledOptions sampled;
  CleverOptions clever;
  LocalBallOptions local_ball;
  LipschitzOptions lipschitz;
  Theorem1Options theorem1;
  IntervalOptions interval;
  ShellOptions shells;
  CrownRadiusOptions crown_radius;
};

// One settable option: its key ("clever.batches"), what it means, where it lives.
struct OptionField {
  std::string key;
  std::string help;
  std::variant<int*, double*, bool*, std::string*> value;
};
std::vector<OptionField> option_fields(BoundOptions& options);
// Sets / reads the field `key` of a table as text (any option table: the
// harness adds the attacks' keys). An unknown key lists every valid one; a
// value that does not parse as the field's type names the key.
void set_field(const std::vector<OptionField>& fields, const std::string& key, const std::string& text);
std::string field_text(const std::vector<OptionField>& fields, const std::string& key);
// Sets `key` from text; an unknown key or a bad value is a bb::Error naming it.
void set_option(BoundOptions& options, const std::string& key, const std::string& text);
// The value of `key` as text ("50", "0.001", "true", "all").
std::string option_text(const BoundOptions& options, const std::string& key);
// Checks every value (counts >= 1, radius finite, targets known, ...): a
// bb::Error naming the first bad option.
void validate(const BoundOptions& options);
// "key=value,key=value" for the keys given, in that order.
std::string describe_options(const BoundOptions& options, const std::vector<std::string>& keys);

// CLEVER's default radii in pixel space: L1 40, L2 2, Linf 0.1.
double default_radius(Norm p);

}  // namespace bb
