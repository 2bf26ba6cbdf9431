// The exact minimal distortion by MILP with COIN-OR CBC (see
// bounds/exact_milp.h for the formulation and what is reported).
#include "bounds/exact_milp.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include <Cbc_C_Interface.h>
#include <Clp_C_Interface.h>
#include <torch/torch.h>

#include "bounds/preactivation.h"
#include "bounds/sources.h"
#include "core/error.h"
#include "core/region.h"
#include "core/runtime.h"

namespace bb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The ball's radius over the incumbent distortion: the minimiser (at most
// that far) lies strictly inside.
constexpr double kRadiusSlack = 1e-6;
// CBC's allowable gaps (absolute and relative), cutoff increment, integer
// and primal tolerances, on the objective and columns scaled to the ball's
// radius.
constexpr const char* kSolverTolerance = "1e-9";
// The re-check of a minimiser in float64: its distance equals the objective
// to this relative tolerance, and f_j - f_c >= -kMarginTolerance * (1 + the
// largest |logit|).
constexpr double kDistanceTolerance = 1e-6;
constexpr double kMarginTolerance = 1e-6;
// LP bounds (milp.lp_bounds) are widened by this, relative to 1 + |bound|:
// CLP's optimum is exact up to its tolerances (1e-9 primal, 1e-9 dual here).
constexpr double kLpSafety = 1e-6;
// Bisection steps of the CROWN radius that raises an open bracket's lower end.
constexpr int kCrownSteps = 12;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> items;
  size_t from = 0;
  while (from <= text.size()) {
    const size_t at = std::min(text.find(separator, from), text.size());
    items.push_back(text.substr(from, at - from));
    from = at + 1;
  }
  return items;
}

std::vector<std::string> incumbent_attacks(const std::string& text) {
  if (text == "none") {
    return {};
  }
  return split(text, '+');
}

// The network as dense float64 affine maps between its ReLUs (CPU):
// z_1 = W_1 x + b_1, a_k = relu(z_k), z_{k+1} = W_{k+1} a_k + b_{k+1}, ...,
// logits = W_L a_{L-1} + b_L; x and every a_k flattened (row-major, as the
// layers' own shapes flatten). relu_layer[k]: the index of the k-th ReLU in
// the layer list (the order of PreActivationBounds).
struct DenseNet {
  std::vector<torch::Tensor> weight;
  std::vector<torch::Tensor> bias;
  std::vector<int64_t> relu_layer;
  int64_t relus = 0;
};

// One layer applied to an affine map (A, a) from the segment's flattened
// input to the current values of shape `shape` (A undefined: identity).
void compose(const Layer& layer, std::vector<int64_t>& shape, torch::Tensor& A, torch::Tensor& a) {
  namespace F = torch::nn::functional;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(torch::kCPU);
  const int64_t width = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
  if (!A.defined()) {
    A = torch::eye(width, f64);
    a = torch::zeros({width}, f64);
  }
  switch (layer.kind) {
    case LayerKind::Flatten:
      shape = {width};
      return;
    case LayerKind::ChannelAffine: {
      auto scale = layer.weight.to(f64).reshape({-1});
      auto shift = layer.bias.defined() ? layer.bias.to(f64).reshape({-1}) : torch::zeros_like(scale);
      const int64_t per_channel = scale.numel() > 1 ? width / scale.numel() : width;
      auto s = scale.numel() > 1 ? scale.repeat_interleave(per_channel) : scale.expand({width});
      auto t = shift.numel() > 1 ? shift.repeat_interleave(per_channel) : shift.expand({width});
      A = A * s.unsqueeze(1);
      a = a * s + t;
      return;
    }
    case LayerKind::Linear: {
      auto W = layer.weight.to(f64);
      A = torch::matmul(W, A);
      a = torch::matmul(W, a);
      if (layer.bias.defined()) {
        a = a + layer.bias.to(f64);
      }
      shape = {W.size(0)};
      return;
    }
    case LayerKind::Conv2d: {
      // The columns of A as a batch of images through the convolution.
      auto options = F::Conv2dFuncOptions().stride(layer.stride).padding(layer.padding);
      auto W = layer.weight.to(f64);
      std::vector<int64_t> batch{A.size(1)};
      batch.insert(batch.end(), shape.begin(), shape.end());
      auto columns = F::conv2d(A.t().reshape(batch), W, options);
      std::vector<int64_t> one{1};
      one.insert(one.end(), shape.begin(), shape.end());
      auto offset = F::conv2d(
          a.reshape(one), W,
          layer.bias.defined() ? options.bias(layer.bias.to(f64)) : options);
      shape.assign(columns.sizes().begin() + 1, columns.sizes().end());
      A = columns.reshape({A.size(1), -1}).t().contiguous();
      a = offset.reshape({-1});
      return;
    }
    default:
      BB_ASSERT(false, "compose: {} is not affine", layer_kind_name(layer.kind));
  }
}

DenseNet densify(const LayerList& layers, const std::vector<int64_t>& input_shape) {
  torch::NoGradGuard no_grad;
  DenseNet net;
  std::vector<int64_t> shape = input_shape;
  torch::Tensor A;
  torch::Tensor a;
  auto close_segment = [&]() {
    if (!A.defined()) {  // no affine layer since the last ReLU: the identity
      const int64_t width = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
      A = torch::eye(width, torch::kFloat64);
      a = torch::zeros({width}, torch::kFloat64);
    }
    net.weight.push_back(A.contiguous());
    net.bias.push_back(a.contiguous());
    A = torch::Tensor();
    a = torch::Tensor();
  };
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].kind == LayerKind::ReLU) {
      close_segment();
      net.relu_layer.push_back(static_cast<int64_t>(i));
      net.relus += net.weight.back().size(0);
    } else {
      compose(layers[i], shape, A, a);
    }
  }
  close_segment();
  return net;
}

// The unsupported layers of a chain for the MILP, all of them.
std::vector<std::string> unsupported_layers(const LayerList& layers) {
  std::vector<std::string> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    switch (layers[i].kind) {
      case LayerKind::ChannelAffine:
      case LayerKind::Linear:
      case LayerKind::Conv2d:
      case LayerKind::Flatten:
      case LayerKind::ReLU:
        break;
      default:
        out.push_back(fmt::format("layer {} {}", i, layers[i].describe()));
    }
  }
  return out;
}

// The ReLU count of a chain: the width of every ReLU's input.
int64_t count_relus(const LayerList& layers, const std::vector<int64_t>& input_shape) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  auto h = torch::zeros(shape, layers.empty() || !layers.front().weight.defined()
                                   ? torch::kFloat32 : layers.front().weight.scalar_type());
  int64_t relus = 0;
  for (const auto& layer : layers) {
    if (layer.kind == LayerKind::ReLU) {
      relus += h.numel();
    }
    h = layer.forward(h.to(layer.weight.defined() ? layer.weight.scalar_type() : h.scalar_type()));
  }
  return relus;
}

// The layer chain in float64 on the CPU, for the re-check.
LayerList float64_layers(const LayerList& layers) {
  LayerList out = layers;
  for (auto& layer : out) {
    if (layer.weight.defined()) {
      layer.weight = layer.weight.to(torch::kCPU, torch::kFloat64);
    }
    if (layer.bias.defined()) {
      layer.bias = layer.bias.to(torch::kCPU, torch::kFloat64);
    }
  }
  return out;
}

// One sample's data for the MILPs, float64 on the CPU.
struct SampleData {
  std::vector<double> x;       // [d]
  std::vector<double> up;      // [d]: the largest increase u_i inside the ball's box and D
  std::vector<double> down;    // [d]: the largest decrease v_i
  std::vector<std::vector<double>> lower, upper;  // per ReLU layer: bounds on its input
  double radius = 0;           // R
  int64_t c = 0;
};

// What one class's MILP gave.
struct ClassOutcome {
  enum class Status { kOptimal, kCutOff, kStopped } status = Status::kStopped;
  double lower = 0;             // its minimum is at least this (a distortion)
  bool has_point = false;
  double objective = kInf;      // of the point (a distortion)
  std::vector<double> point;    // x + delta, [d]
  int64_t nodes = 0;
};

// The MILP (or its LP relaxation) of one sample as columns and ranged rows,
// built layer by layer (see exact_milp.h). Columns are in units of R: the
// objective is ||delta||_p / R, in [0, 1] on the ball, so that the solvers'
// absolute tolerances are relative to R.
class Formulation {
 public:
  struct Row {
    std::vector<int> cols;
    std::vector<double> coefs;
    double lower;
    double upper;
  };

  // delta = R (u - v): u_i, v_i (none where the box leaves no room), t
  // (Linf) with u_i, v_i <= t; L1: sum(u + v) <= 1.
  Formulation(const SampleData& s, Norm p) : radius_(s.radius) {
    const int64_t d = static_cast<int64_t>(s.x.size());
    u_.assign(d, -1);
    v_.assign(d, -1);
    const double cost = p == Norm::L1 ? 1.0 : 0.0;
    for (int64_t i = 0; i < d; ++i) {
      if (s.up[i] > 0) {
        u_[i] = add_column(0, s.up[i] / radius_, cost, false);
        prev_.push_back({u_[i], radius_, i});
      }
      if (s.down[i] > 0) {
        v_[i] = add_column(0, s.down[i] / radius_, cost, false);
        prev_.push_back({v_[i], -radius_, i});
      }
    }
    if (p == Norm::Linf) {
      const int t = add_column(0, 1, 1, false);
      for (int64_t i = 0; i < d; ++i) {
        for (int col : {u_[i], v_[i]}) {
          if (col >= 0) {
            rows_.push_back(Row{{col, t}, {1, -1}, -kInf, 0});
          }
        }
      }
    } else {
      Row ball{{}, {}, -kInf, 1};
      for (const auto& term : prev_) {
        ball.cols.push_back(term.col);
        ball.coefs.push_back(1);
      }
      rows_.push_back(std::move(ball));
    }
    constant_ = s.x;  // the first layer's input at delta = 0
  }

  // The affine function W[o] . h + b[o] of the current layer's input h, as
  // coefficients on its columns and a constant.
  Row affine(const torch::Tensor& W, const torch::Tensor& b, int64_t o) const {
    auto w = W.accessor<double, 2>();
    Row row{{}, {}, 0, 0};
    double constant = b.accessor<double, 1>()[o];
    for (size_t q = 0; q < constant_.size(); ++q) {
      constant += w[o][q] * constant_[q];
    }
    for (const auto& term : prev_) {
      const double coef = w[o][term.unit] * term.factor;
      if (coef != 0) {
        row.cols.push_back(term.col);
        row.coefs.push_back(coef);
      }
    }
    row.lower = row.upper = constant;  // the constant, kept here
    return row;
  }

  // A ReLU layer after the affine map (W, b), with bounds [l, u] on its
  // input: inactive neurons drop out, active ones are linear, each unstable
  // one gets z in [l, u], a in [0, u] and a binary (big-M).
  void add_relu_layer(const torch::Tensor& W, const torch::Tensor& b, const std::vector<double>& l,
                      const std::vector<double>& u) {
    std::vector<Term> next;
    for (int64_t o = 0; o < W.size(0); ++o) {
      if (u[o] <= 0) {
        continue;  // inactive on the whole ball: a = 0
      }
      Row define = affine(W, b, o);
      const double constant = define.lower;
      for (auto& coef : define.coefs) {
        coef = -coef;
      }
      if (l[o] >= 0) {
        // Active: a = z.
        const int a = add_column(l[o], u[o], 0, false);
        define.cols.push_back(a);
        define.coefs.push_back(1);
        define.lower = define.upper = constant;
        rows_.push_back(std::move(define));
        next.push_back({a, 1, o});
        continue;
      }
      const int z = add_column(l[o], u[o], 0, false);
      const int a = add_column(0, u[o], 0, false);
      const int bin = add_column(0, 1, 0, true);
      ++binaries_;
      define.cols.push_back(z);
      define.coefs.push_back(1);
      define.lower = define.upper = constant;
      rows_.push_back(std::move(define));
      rows_.push_back(Row{{a, z}, {1, -1}, 0, kInf});                 // a >= z
      rows_.push_back(Row{{a, z, bin}, {1, -1, -l[o]}, -kInf, -l[o]});  // a <= z - l (1 - b)
      rows_.push_back(Row{{a, bin}, {1, -u[o]}, -kInf, 0});           // a <= u b
      next.push_back({a, 1, o});
    }
    prev_ = std::move(next);
    constant_.assign(W.size(0), 0.0);
  }

  // f_j - f_c >= 0 through the last affine map.
  void add_margin(const torch::Tensor& W, const torch::Tensor& b, int64_t j, int64_t c) {
    Row fj = affine(W, b, j);
    Row fc = affine(W, b, c);
    Row row{{}, {}, fc.lower - fj.lower, kInf};
    add_terms(row, fj, 1);
    add_terms(row, fc, -1);
    rows_.push_back(std::move(row));
  }

  int binaries() const { return binaries_; }
  const std::vector<Row>& rows() const { return rows_; }
  const std::vector<double>& col_lower() const { return col_lower_; }
  const std::vector<double>& col_upper() const { return col_upper_; }
  const std::vector<double>& col_obj() const { return col_obj_; }
  const std::vector<char>& col_int() const { return col_int_; }

  // x + delta from a solution.
  std::vector<double> point(const SampleData& s, const double* solution) const {
    std::vector<double> out(s.x.size());
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = s.x[i] + radius_ * ((u_[i] >= 0 ? solution[u_[i]] : 0.0) - (v_[i] >= 0 ? solution[v_[i]] : 0.0));
    }
    return out;
  }

 private:
  struct Term {
    int col;
    double factor;  // the unit's value is factor * column
    int64_t unit;   // the unit of the layer's input
  };

  int add_column(double lower, double upper, double objective, bool integer) {
    col_lower_.push_back(lower);
    col_upper_.push_back(upper);
    col_obj_.push_back(objective);
    col_int_.push_back(integer ? 1 : 0);
    return static_cast<int>(col_lower_.size()) - 1;
  }

  static void add_terms(Row& row, const Row& from, double sign) {
    for (size_t q = 0; q < from.cols.size(); ++q) {
      auto at = std::find(row.cols.begin(), row.cols.end(), from.cols[q]);
      if (at == row.cols.end()) {
        row.cols.push_back(from.cols[q]);
        row.coefs.push_back(sign * from.coefs[q]);
      } else {
        row.coefs[at - row.cols.begin()] += sign * from.coefs[q];
      }
    }
  }

  double radius_;
  std::vector<int> u_, v_;
  std::vector<Term> prev_;         // the current layer input's columns
  std::vector<double> constant_;   // and its constant part
  std::vector<double> col_lower_, col_upper_, col_obj_;
  std::vector<char> col_int_;
  std::vector<Row> rows_;
  int binaries_ = 0;
};

// The LP relaxation of a formulation with CLP (binaries in [0, 1]): the
// minimum of any objective on its columns, warm-started from the last basis.
class Relaxation {
 public:
  explicit Relaxation(const Formulation& f) : model_(Clp_newModel()) {
    Clp_setLogLevel(model_, 0);
    const int n = static_cast<int>(f.col_lower().size());
    std::vector<double> zero(n, 0.0);
    std::vector<int> start(n + 1, 0);
    Clp_addColumns(model_, n, f.col_lower().data(), f.col_upper().data(), zero.data(), start.data(), nullptr,
                   nullptr);
    std::vector<double> lower, upper, values;
    std::vector<int> starts{0}, index;
    for (const auto& row : f.rows()) {
      lower.push_back(row.lower);
      upper.push_back(row.upper);
      index.insert(index.end(), row.cols.begin(), row.cols.end());
      values.insert(values.end(), row.coefs.begin(), row.coefs.end());
      starts.push_back(static_cast<int>(index.size()));
    }
    Clp_addRows(model_, static_cast<int>(lower.size()), lower.data(), upper.data(), starts.data(), index.data(),
                values.data());
    Clp_setPrimalTolerance(model_, 1e-9);
    Clp_setDualTolerance(model_, 1e-9);
    objective_.assign(n, 0.0);
  }
  Relaxation(const Relaxation&) = delete;
  Relaxation& operator=(const Relaxation&) = delete;
  ~Relaxation() { Clp_deleteModel(model_); }

  // min sum coefs * columns; -inf when CLP does not prove an optimum.
  double minimum(const std::vector<int>& cols, const std::vector<double>& coefs) {
    std::fill(objective_.begin(), objective_.end(), 0.0);
    for (size_t q = 0; q < cols.size(); ++q) {
      objective_[cols[q]] += coefs[q];
    }
    Clp_chgObjCoefficients(model_, objective_.data());
    first_ ? Clp_initialSolve(model_) : Clp_primal(model_, 0);
    first_ = false;
    return Clp_status(model_) == 0 ? Clp_objectiveValue(model_) : -kInf;
  }

 private:
  Clp_Simplex* model_;
  std::vector<double> objective_;
  bool first_ = true;
};

// One class's MILP with CBC.
class Milp {
 public:
  explicit Milp(const Formulation& f) : model_(Cbc_newModel()) {
    const int n = static_cast<int>(f.col_lower().size());
    for (int i = 0; i < n; ++i) {
      Cbc_addCol(model_, "", f.col_lower()[i], f.col_upper()[i], f.col_obj()[i], f.col_int()[i], 0, nullptr, nullptr);
    }
    if (f.binaries() == 0) {
      // A network without unstable ReLUs is a linear program: one unused
      // binary sends it through CBC's branch-and-cut driver all the same
      // (its cutoff, time limit and silence; the LP path of CBC's C
      // interface prints CLP's log and ignores both).
      Cbc_addCol(model_, "", 0, 1, 0, 1, 0, nullptr, nullptr);
    }
    for (const auto& row : f.rows()) {
      const int nz = static_cast<int>(row.cols.size());
      if (row.lower == row.upper) {
        Cbc_addRow(model_, "", nz, row.cols.data(), row.coefs.data(), 'E', row.lower);
      } else if (std::isfinite(row.lower)) {
        Cbc_addRow(model_, "", nz, row.cols.data(), row.coefs.data(), 'G', row.lower);
      } else {
        Cbc_addRow(model_, "", nz, row.cols.data(), row.coefs.data(), 'L', row.upper);
      }
    }
    Cbc_setParameter(model_, "log", "0");
    Cbc_setParameter(model_, "slog", "0");
  }
  Milp(const Milp&) = delete;
  Milp& operator=(const Milp&) = delete;
  ~Milp() { Cbc_deleteModel(model_); }

  // Solves with a time limit and a cutoff (a distortion; inf: none).
  ClassOutcome solve(const Formulation& f, const SampleData& s, double seconds, double cutoff, int threads) {
    const double scale = 1 / s.radius;
    Cbc_setParameter(model_, "timeMode", "elapsed");
    Cbc_setParameter(model_, "sec", fmt::format("{:.6f}", std::max(seconds, 1e-3)).c_str());
    for (const char* key : {"allow", "ratio", "increment", "integerT", "primalT"}) {
      Cbc_setParameter(model_, key, kSolverTolerance);
    }
    // The incumbent's cutoff does the heuristics' work; CBC's
    // preprocessing costs more than it saves on these small dense models.
    Cbc_setParameter(model_, "heur", "off");
    Cbc_setParameter(model_, "preprocess", "off");
    if (std::isfinite(cutoff)) {
      Cbc_setParameter(model_, "cutoff", fmt::format("{:.17g}", cutoff * scale).c_str());
    }
    if (threads > 1) {
      Cbc_setParameter(model_, "threads", std::to_string(100 + threads).c_str());
    }
    Cbc_solve(model_);
    ClassOutcome out;
    out.nodes = Cbc_getNodeCount(model_);
    const bool optimal = Cbc_isProvenOptimal(model_) != 0;
    const bool infeasible = Cbc_isProvenInfeasible(model_) != 0;
    const double* solution = Cbc_bestSolution(model_);
    if (solution != nullptr) {
      out.has_point = true;
      out.objective = Cbc_getObjValue(model_) / scale;
      out.point = f.point(s, solution);
    }
    if (optimal && out.has_point) {
      out.status = ClassOutcome::Status::kOptimal;
      out.lower = std::min(out.objective, Cbc_getBestPossibleObjValue(model_) / scale);
    } else if (infeasible) {
      // Nothing at or below the cutoff (or, without one, inside the ball).
      out.status = ClassOutcome::Status::kCutOff;
      out.lower = std::isfinite(cutoff) ? cutoff : s.radius;
      out.has_point = false;
    } else {
      out.status = ClassOutcome::Status::kStopped;
      // The best bound of the open nodes (those below the cutoff); where
      // CBC reports none (0: stopped before its root LP ended, or a
      // relaxation that changes class at delta = 0), the LP relaxation's
      // minimum, widened like the LP bounds.
      double best = Cbc_getBestPossibleObjValue(model_);
      if (!(std::isfinite(best) && best > 0)) {
        Relaxation lp(f);
        std::vector<int> cols;
        std::vector<double> coefs;
        for (size_t col = 0; col < f.col_obj().size(); ++col) {
          if (f.col_obj()[col] != 0) {
            cols.push_back(static_cast<int>(col));
            coefs.push_back(f.col_obj()[col]);
          }
        }
        const double relaxed = lp.minimum(cols, coefs);
        best = relaxed - kLpSafety * (1 + std::abs(relaxed));
      }
      out.lower = std::isfinite(best) && best > 0 ? std::min(best / scale, cutoff) : 0.0;
    }
    return out;
  }

 private:
  Cbc_Model* model_;
};

std::vector<double> to_vector(const torch::Tensor& t) {
  auto flat = t.to(torch::kCPU, torch::kFloat64).contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

nlohmann::json finite_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

}  // namespace

std::vector<OptionField> option_fields(MilpOptions& o) {
  return {
      {"milp.time_limit", "exact MILP: seconds per sample (all classes), wall clock", &o.time_limit},
      {"milp.preactivation", "exact MILP: pre-activation bounds for the big-M constants, crown or ibp",
       &o.preactivation},
      {"milp.incumbent", "exact MILP: attacks ('+'-separated, or none) whose best distortion sets the ball",
       &o.incumbent},
      {"milp.threads", "exact MILP: CBC threads", &o.threads},
      {"milp.max_relus", "exact MILP: networks with more ReLUs are refused", &o.max_relus},
      {"milp.lp_bounds", "exact MILP: tighten each unstable ReLU's bounds by LP over the layers before it",
       &o.lp_bounds},
  };
}

void validate(const MilpOptions& o) {
  BB_CHECK(std::isfinite(o.time_limit) && o.time_limit > 0, "--milp.time_limit: must be positive and finite, got {}",
           o.time_limit);
  BB_CHECK(o.preactivation == "crown" || o.preactivation == "ibp",
           "--milp.preactivation: unknown '{}' (valid: crown, ibp)", o.preactivation);
  const auto names = attack_names();
  for (const auto& name : incumbent_attacks(o.incumbent)) {
    BB_CHECK(std::find(names.begin(), names.end(), name) != names.end(),
             "--milp.incumbent: unknown attack '{}' in '{}' (valid: {}, '+'-separated, or none)", name, o.incumbent,
             fmt::join(names, ", "));
  }
  BB_CHECK(o.threads >= 1, "--milp.threads: must be at least 1, got {}", o.threads);
  BB_CHECK(o.max_relus >= 0, "--milp.max_relus: must not be negative, got {}", o.max_relus);
}

ExactMilp::ExactMilp(Norm p, const MilpOptions& options, const AttackOptions& attack)
    : norm_(p), options_(options), attack_(attack) {
  validate(options_);
}

std::string ExactMilp::name() const {
  return fmt::format(
      "exact-milp-{}(milp.time_limit={},milp.preactivation={},milp.lp_bounds={},milp.incumbent={},milp.threads={})",
      norm_name(norm_), options_.time_limit, options_.preactivation, options_.lp_bounds, options_.incumbent,
      options_.threads);
}

void ExactMilp::check(const Model& model) const {
  BB_CHECK(norm_ != Norm::L2,
           "exact-milp: L2 is not supported (its objective is quadratic and CBC solves linear programs only; "
           "use p = inf or 1)");
  const LayerList& layers = require_layers(model, "exact-milp");
  const auto bad = unsupported_layers(layers);
  BB_CHECK(bad.empty(), "exact-milp: model {} is not a chain of affine layers and ReLUs: {}", model.source,
           fmt::join(bad, ", "));
  const int64_t relus = count_relus(layers, model.classifier.spec().shape);
  BB_CHECK(relus <= options_.max_relus,
           "exact-milp: model {} has {} ReLUs, more than milp.max_relus = {} (the MILP is for small networks)",
           model.source, relus, options_.max_relus);
}

ExactResult ExactMilp::run(
    const Model& model,
    const torch::Tensor& x,
    const torch::Tensor& c,
    const AttackContext& context) const {
  const Classifier& classifier = model.classifier;
  classifier.check_input(x, "exact-milp inputs");
  const Box box = classifier.spec().domain;
  const int64_t n = x.size(0);
  if (n > 0) {
    const double lowest = x.min().item<double>();
    const double highest = x.max().item<double>();
    BB_CHECK(lowest >= box.lo && highest <= box.hi,
             "exact-milp inputs: values in [{}, {}] lie outside the domain D = [{}, {}]", lowest, highest, box.lo,
             box.hi);
  }
  BB_CHECK(c.dim() == 1 && c.size(0) == n, "exact-milp inputs: {} predicted classes for {} samples", c.numel(), n);
  check(model);
  const LayerList& layers = *model.layers;
  Stopwatch watch(classifier.device());
  const Norm p = norm_;
  const int64_t d = x[0].numel();
  const int64_t k = classifier.num_classes();

  // 1. The incumbent: the best distortion of the attacks.
  auto incumbent = torch::full({n}, kInf, torch::kFloat64);
  auto incumbent_point = x.clone();
  auto gradients = torch::zeros({n}, torch::kInt64);
  for (const auto& name : incumbent_attacks(options_.incumbent)) {
    AttackResult r = make_attack(name, p, attack_)->run(classifier, x, c, context);
    auto distance = torch::where(r.success, r.distance, torch::full_like(r.distance, kInf)).cpu();
    auto better = distance < incumbent;
    incumbent = torch::where(better, distance, incumbent);
    incumbent_point = torch::where(per_sample(better.to(x.device()), x), r.x_adv, incumbent_point);
    gradients += r.gradients.cpu();
  }
  const double diameter = domain_diameter(box, p, d);
  auto radius = torch::where(torch::isfinite(incumbent), incumbent * (1 + kRadiusSlack),
                             torch::full_like(incumbent, diameter))
                    .clamp_max(diameter);

  // 2. Pre-activation bounds over B_p(x, R) ∩ D, and the margins' lower
  // bounds there (CROWN's or, from the last layer's interval, IBP's).
  const DenseNet net = densify(layers, classifier.spec().shape);
  // A float64 centre keeps the radius in float64: the MILP's box and the
  // bounds' ball are the same set.
  const Region region = Region::ball(x.to(torch::kFloat64), radius.to(x.device()), p, box);
  const PreActivationBounds bounds =
      options_.preactivation == "crown" ? crown_bounds(layers, region) : ibp_bounds(layers, region);
  const auto targets = other_classes(c, k);
  torch::Tensor margin_lower;  // [N, k - 1]
  {
    torch::Tensor lo, hi;  // the last affine map's input interval, [N, width]
    if (bounds.lower.empty()) {
      auto [hull_lo, hull_hi] = region.interval_hull();
      lo = hull_lo.to(torch::kCPU, torch::kFloat64).reshape({n, -1});
      hi = hull_hi.to(torch::kCPU, torch::kFloat64).reshape({n, -1});
    } else {
      lo = torch::relu(bounds.lower.back().to(torch::kCPU, torch::kFloat64).reshape({n, -1}));
      hi = torch::relu(bounds.upper.back().to(torch::kCPU, torch::kFloat64).reshape({n, -1}));
    }
    const auto& W = net.weight.back();  // [k, width]
    const auto& b = net.bias.back();
    auto cpu_c = c.cpu();
    auto cpu_targets = targets.cpu();
    auto row = W.index_select(0, cpu_c).unsqueeze(1) - W.index({cpu_targets});  // [N, m, width]
    auto constant = b.index_select(0, cpu_c).unsqueeze(1) - b.index({cpu_targets});
    auto mid = ((lo + hi) / 2).unsqueeze(2);
    auto rad = ((hi - lo) / 2).unsqueeze(2);
    margin_lower = (torch::bmm(row, mid) - torch::bmm(row.abs(), rad)).squeeze(2) + constant;
    if (options_.preactivation == "crown") {
      margin_lower = torch::max(margin_lower,
                                crown_margin_lower(layers, region, bounds, c, targets).to(torch::kCPU, torch::kFloat64));
    }
  }
  const LayerList layers64 = float64_layers(layers);

  // 3. One MILP per class not excluded, per sample.
  ExactResult result;
  result.value = torch::full({n}, kNaN, torch::kFloat64);
  result.proven = torch::zeros({n}, torch::kBool);
  result.lower = torch::zeros({n}, torch::kFloat64);
  result.upper = torch::full({n}, kInf, torch::kFloat64);
  result.target = torch::full({n}, -1, torch::kInt64);
  result.gradients = gradients;
  auto best_points = x.to(torch::kCPU, torch::kFloat64).reshape({n, d}).clone();
  auto x_cpu = x.to(torch::kCPU, torch::kFloat64).reshape({n, d});
  auto incumbent_cpu = incumbent_point.to(torch::kCPU, torch::kFloat64).reshape({n, d});
  auto c_cpu = c.cpu();
  auto targets_cpu = targets.cpu();
  auto incumbent_class = classifier.logits(incumbent_point).argmax(1).cpu();
  std::vector<torch::Tensor> lower_cpu, upper_cpu;
  for (size_t q = 0; q < bounds.lower.size(); ++q) {
    lower_cpu.push_back(bounds.lower[q].to(torch::kCPU, torch::kFloat64).reshape({n, -1}));
    upper_cpu.push_back(bounds.upper[q].to(torch::kCPU, torch::kFloat64).reshape({n, -1}));
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto start = Clock::now();
    SampleData s;
    s.x = to_vector(x_cpu[i]);
    s.radius = radius[i].item<double>();
    s.c = c_cpu[i].item<int64_t>();
    s.up.resize(d);
    s.down.resize(d);
    for (int64_t q = 0; q < d; ++q) {
      s.up[q] = std::max(0.0, std::min(s.radius, box.hi - s.x[q]));
      s.down[q] = std::max(0.0, std::min(s.radius, s.x[q] - box.lo));
    }
    for (size_t q = 0; q < lower_cpu.size(); ++q) {
      s.lower.push_back(to_vector(lower_cpu[q][i]));
      s.upper.push_back(to_vector(upper_cpu[q][i]));
    }
    // The layers, each unstable ReLU's bounds first tightened by LP over
    // the relaxation of the layers before it (milp.lp_bounds).
    Formulation base(s, p);
    int64_t tightened = 0;
    for (size_t layer = 0; layer < s.lower.size(); ++layer) {
      auto& l = s.lower[layer];
      auto& u = s.upper[layer];
      if (options_.lp_bounds) {
        Relaxation lp(base);
        for (size_t o = 0; o < l.size(); ++o) {
          if (!(l[o] < 0 && u[o] > 0)) {
            continue;
          }
          Formulation::Row z = base.affine(net.weight[layer], net.bias[layer], static_cast<int64_t>(o));
          const double low = lp.minimum(z.cols, z.coefs) + z.lower;
          for (auto& coef : z.coefs) {
            coef = -coef;
          }
          const double high = z.lower - lp.minimum(z.cols, z.coefs);
          l[o] = std::max(l[o], low - kLpSafety * (1 + std::abs(low)));
          u[o] = std::min(u[o], high + kLpSafety * (1 + std::abs(high)));
          tightened += (l[o] >= 0 || u[o] <= 0) ? 1 : 0;
        }
      }
      base.add_relu_layer(net.weight[layer], net.bias[layer], l, u);
    }
    // The classes to solve: not excluded by the bounds (nor, with
    // milp.lp_bounds, by the LP relaxation of the whole network); the
    // attack's class first, then by the margin's lower bound (the lowest first).
    std::vector<std::pair<double, int64_t>> order;
    int64_t skipped = 0;
    std::unique_ptr<Relaxation> whole;
    if (options_.lp_bounds) {
      whole = std::make_unique<Relaxation>(base);
    }
    for (int64_t q = 0; q < k - 1; ++q) {
      double bound = margin_lower[i][q].item<double>();
      const int64_t j = targets_cpu[i][q].item<int64_t>();
      if (bound <= 0 && whole) {
        // min f_c - f_j over the relaxation.
        Formulation::Row fc = base.affine(net.weight.back(), net.bias.back(), s.c);
        Formulation::Row fj = base.affine(net.weight.back(), net.bias.back(), j);
        for (auto& coef : fj.coefs) {
          coef = -coef;
        }
        fc.cols.insert(fc.cols.end(), fj.cols.begin(), fj.cols.end());
        fc.coefs.insert(fc.coefs.end(), fj.coefs.begin(), fj.coefs.end());
        const double margin = whole->minimum(fc.cols, fc.coefs) + fc.lower - fj.lower;
        bound = std::max(bound, margin - kLpSafety * (1 + std::abs(margin)));
      }
      if (bound > 0) {
        ++skipped;
        continue;
      }
      const bool first = std::isfinite(incumbent[i].item<double>()) && j == incumbent_class[i].item<int64_t>();
      order.push_back({first ? -kInf : bound, j});
    }
    std::sort(order.begin(), order.end());

    const double attack_upper = incumbent[i].item<double>();
    double best = kInf;          // the best re-checked MILP point
    int64_t best_class = -1;
    std::vector<double> best_point;
    double lower = kInf;          // min over the classes
    bool failed_recheck = false;
    nlohmann::json failure;  // the last solution that failed the re-check
    int64_t nodes = 0;
    int64_t solved = 0;
    int binaries = 0;
    double margin64 = kNaN;
    double distance64 = kNaN;
    // Two passes over the classes: the first gives each at most an equal
    // share of half the limit (what one leaves goes to the next), the
    // second shares what is left among those still open, with the cutoff
    // the first pass found. A class ends optimal or cut off (done), or
    // stopped; its lower bound is kept across passes.
    std::vector<double> class_lower(order.size(), 0.0);
    std::vector<char> class_done(order.size(), 0);
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<size_t> open;
      for (size_t q = 0; q < order.size(); ++q) {
        if (!class_done[q]) {
          open.push_back(q);
        }
      }
      for (size_t at = 0; at < open.size(); ++at) {
        const size_t q = open[at];
        const int64_t j = order[q].second;
        const double left = options_.time_limit - seconds_since(start);
        if (left <= 0) {
          break;
        }
        double budget = left / static_cast<double>(open.size() - at);
        if (pass == 0) {
          budget = std::min(budget, options_.time_limit / (2.0 * static_cast<double>(order.size())));
        }
        Formulation f = base;
        f.add_margin(net.weight.back(), net.bias.back(), j, s.c);
        binaries = std::max(binaries, f.binaries());
        Milp milp(f);
        const double cutoff = std::min(s.radius, best);
        ClassOutcome out = milp.solve(f, s, budget, cutoff, options_.threads);
        solved += pass == 0 ? 1 : 0;
        nodes += out.nodes;
        class_lower[q] = std::max(class_lower[q], out.lower);
        class_done[q] = out.status != ClassOutcome::Status::kStopped;
        if (!out.has_point) {
          continue;
        }
        // Re-check in float64 through the layer chain.
        auto point = torch::from_blob(out.point.data(), {d}, torch::kFloat64).clone().clamp(box.lo, box.hi);
        auto delta = point - x_cpu[i];
        const double distance = lp_norm(delta.unsqueeze(0), p).item<double>();
        auto shaped = point.reshape(classifier.spec().shape).unsqueeze(0);
        auto logits = run_layers(layers64, shaped).squeeze(0);
        const double margin = (logits[j] - logits[s.c]).item<double>();
        const double logit_scale = 1 + logits.abs().max().item<double>();
        const bool distance_ok = out.status == ClassOutcome::Status::kOptimal
            ? std::abs(distance - out.objective) <= kDistanceTolerance * out.objective + 1e-12
            : distance <= out.objective * (1 + kDistanceTolerance) + 1e-12;
        const bool margin_ok = margin >= -kMarginTolerance * logit_scale;
        if (!(distance_ok && margin_ok)) {
          failed_recheck = true;
          failure = {{"class", j}, {"objective", out.objective}, {"distance64", distance}, {"margin64", margin}};
          continue;
        }
        if (out.objective < best) {
          best = out.objective;
          best_class = j;
          best_point = out.point;
          margin64 = margin;
          distance64 = distance;
        }
      }
    }
    bool finished = true;  // every class optimal or cut off
    for (size_t q = 0; q < order.size(); ++q) {
      lower = std::min(lower, class_lower[q]);
      finished = finished && class_done[q];
    }
    finished = finished && !failed_recheck;
    const double seconds = seconds_since(start);
    const double upper = std::min(best, attack_upper);
    lower = std::min(lower, upper);
    const bool none_anywhere = order.empty() && !std::isfinite(attack_upper) && finished;
    const bool proven = finished && !failed_recheck && (std::isfinite(best) || none_anywhere);
    nlohmann::json details{
        {"milp_seconds", std::round(seconds * 1e6) / 1e6},
        {"nodes", nodes},
        {"classes", solved},
        {"skipped", skipped},
        {"binaries", binaries},
        {"lp_stabilised", tightened},
        {"incumbent", finite_or_null(attack_upper)},
        {"recheck", failed_recheck ? "failed" : std::isfinite(best) ? "ok" : "none"},
        {"distance64", finite_or_null(distance64)},
        {"margin64", finite_or_null(margin64)},
    };
    if (failed_recheck) {
      details["recheck_failure"] = failure;
    }
    if (proven && none_anywhere) {
      // No class reachable anywhere in D: rho is infinite (no adversarial example).
      result.proven[i] = true;
      result.lower[i] = kInf;
    } else if (proven) {
      // The bracket closes on the minimum (the incumbent's own distance is
      // in the details).
      result.proven[i] = true;
      result.value[i] = best;
      result.lower[i] = best;
      result.upper[i] = best;
      result.target[i] = best_class;
      best_points[i] = torch::from_blob(best_point.data(), {d}, torch::kFloat64).clone().clamp(box.lo, box.hi);
    } else {
      result.lower[i] = lower;
      result.upper[i] = upper;
      if (std::isfinite(best) && best <= attack_upper) {
        result.target[i] = best_class;
        best_points[i] = torch::from_blob(best_point.data(), {d}, torch::kFloat64).clone().clamp(box.lo, box.hi);
      } else if (std::isfinite(attack_upper)) {
        result.target[i] = incumbent_class[i].item<int64_t>();
        best_points[i] = incumbent_cpu[i];
      }
    }
    result.details.push_back(std::move(details));
  }
  // Where the bracket stays open, its lower end is at least CROWN's
  // certified radius: bisection on log eps between it and the upper end,
  // keeping the largest eps at which CROWN proves every margin positive on
  // B_p(x, eps) ∩ D (the relaxation's own lower bound is often 0 on wide
  // balls, where the relaxed network can change class at delta = 0).
  {
    auto open = (~result.proven & (result.lower < result.upper) & torch::isfinite(result.upper)).nonzero().flatten();
    if (open.numel() > 0) {
      auto xs = x.index_select(0, open.to(x.device())).to(torch::kFloat64);
      auto cs = c.index_select(0, open.to(c.device()));
      auto ts = other_classes(cs, k);
      auto proven_at = [&](const torch::Tensor& eps) {
        const Region ball = Region::ball(xs, eps.to(xs.device()), p, box);
        const PreActivationBounds b = crown_bounds(layers, ball);
        return (std::get<0>(crown_margin_lower(layers, ball, b, cs, ts).min(1)) > 0).cpu();
      };
      auto low = result.lower.index_select(0, open);
      auto high = result.upper.index_select(0, open);
      auto hi = high.log();
      auto lo = torch::where(low > 0, low, high * 1e-3).log();
      auto best = low.clone();
      for (int step = 0; step < kCrownSteps; ++step) {
        auto mid = (lo + hi) / 2;
        auto eps = mid.exp();
        auto safe = proven_at(eps);
        best = torch::where(safe, torch::maximum(best, eps), best);
        lo = torch::where(safe, mid, lo);
        hi = torch::where(safe, hi, mid);
      }
      result.lower.index_copy_(0, open, torch::minimum(best, high));
      for (int64_t q = 0; q < open.size(0); ++q) {
        const int64_t i = open[q].item<int64_t>();
        result.details[i]["lower_crown"] = best[q].item<double>() > low[q].item<double>();
      }
    }
  }
  // The margin of the best point in the model's own dtype (a tie at the
  // boundary may read either way there).
  result.x_adv = best_points.reshape(x.sizes()).to(x.options());
  {
    torch::NoGradGuard no_grad;
    auto logits = classifier.logits(result.x_adv).to(torch::kCPU, torch::kFloat64);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j = result.target[i].item<int64_t>();
      result.details[i]["margin_model"] =
          j >= 0 ? finite_or_null((logits[i][j] - logits[i][c_cpu[i].item<int64_t>()]).item<double>())
                 : nlohmann::json();
    }
  }
  result.seconds = watch.seconds();
  return result;
}

}  // namespace bb
