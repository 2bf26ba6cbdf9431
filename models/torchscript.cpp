#include "models/torchscript.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/remove_mutation.h>

#include "core/error.h"
#include "core/sha256.h"

namespace bb {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// The useful line of an exception message. Errors raised inside the
// TorchScript interpreter start with a traceback and end with the cause
// ("RuntimeError: ..."); others have the cause on their first line.
std::string reason_of(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  const std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) {
      end = text.size();
    }
    std::string line = text.substr(begin, end - begin);
    const auto first = line.find_first_not_of(" \t\r");
    if (first != std::string::npos) {
      lines.push_back(line.substr(first));
    }
    begin = end + 1;
  }
  if (lines.empty()) {
    return "no message";
  }
  const std::string marker = "RuntimeError: ";
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->rfind(marker, 0) == 0) {
      return it->substr(marker.size());
    }
  }
  return lines.front();
}

// ---------------------------------------------------------------------------
// Reading the graph.

// "export.py:42" for the line of the module's code that produced `node`: the
// call site in forward when the node was inlined from a submodule or a
// library function, else the node's own line. Empty when the file was saved
// without debug information.
std::string position(const Node* node) {
  torch::jit::SourceRange range = node->sourceRange();
  if (auto stack = node->callstack()) {
    range = (*stack)->source_range();
  }
  if (auto original = range.findSourceRangeThatGenerated()) {
    range = *original;
  }
  const auto where = range.file_line_col();
  if (!where || std::get<0>(*where).empty() || std::get<0>(*where) == "<string>") {
    return "";  // no debug information, or TorchScript's own builtins
  }
  // Tracing records the innermost Python frame, often in torch's own code:
  // "torch/nn/functional.py:782" says more than "functional.py:782".
  const std::string& file = std::get<0>(*where);
  const auto torch_dir = file.rfind("/torch/");
  const std::string shown = torch_dir != std::string::npos
      ? file.substr(torch_dir + 1)
      : std::filesystem::path(file).filename().string();
  return fmt::format("{}:{}", shown, std::get<1>(*where));
}

std::string label(const Node* node) {
  const std::string where = position(node);
  const std::string kind = node->kind().toQualString();
  return where.empty() ? kind : fmt::format("{} at {}", kind, where);
}

// True if `node`, or a node in one of its blocks (the branches of a
// prim::If, the body of a prim::Loop), reads `value`.
bool uses(const Node* node, const Value* value) {
  for (const Value* input : node->inputs()) {
    if (input == value) {
      return true;
    }
  }
  for (const torch::jit::Block* block : node->blocks()) {
    for (const Node* inner : block->nodes()) {
      if (uses(inner, value)) {
        return true;
      }
    }
    for (const Value* output : block->outputs()) {
      if (output == value) {
        return true;
      }
    }
  }
  return false;
}

bool is_tensor(const Value* value) {
  return value->type()->isSubtypeOf(*c10::TensorType::get());
}

std::optional<c10::IValue> constant(const Value* value) {
  auto ivalue = torch::jit::toIValue(value);
  return ivalue ? std::optional<c10::IValue>(*ivalue) : std::nullopt;
}

// A constant number (a Python int or float, or a one-element tensor constant).
std::optional<double> constant_number(const Value* value) {
  const auto ivalue = constant(value);
  if (!ivalue) {
    return std::nullopt;
  }
  if (ivalue->isInt() || ivalue->isDouble()) {
    return ivalue->toScalar().toDouble();
  }
  if (ivalue->isTensor() && ivalue->toTensor().numel() == 1) {
    return ivalue->toTensor().item<double>();
  }
  return std::nullopt;
}

std::optional<std::vector<int64_t>> constant_ints(const Value* value) {
  const auto ivalue = constant(value);
  if (ivalue && ivalue->isIntList()) {
    return ivalue->toIntVector();
  }
  if (ivalue && ivalue->isInt()) {
    return std::vector<int64_t>{ivalue->toInt()};
  }
  return std::nullopt;
}

// A weight or bias: a tensor constant (after freezing, parameters are).
std::optional<torch::Tensor> constant_tensor(const Value* value) {
  const auto ivalue = constant(value);
  if (ivalue && ivalue->isTensor()) {
    return ivalue->toTensor().detach();
  }
  return std::nullopt;
}

// True for `x.size(0)`, also through the int -> tensor -> int round trip
// that tracing records (prim::NumToTensor, aten::Int).
bool is_batch_size(const Value* value) {
  const Node* node = value->node();
  while (node->kind() == c10::aten::Int || node->kind() == c10::prim::NumToTensor) {
    node = node->input(0)->node();
  }
  if (node->kind() != c10::aten::size || node->inputs().size() != 2) {
    return false;
  }
  const auto dim = constant_number(node->input(1));
  return dim && *dim == 0;
}

// ---------------------------------------------------------------------------
// Building the chain: one handler per supported op.

struct Chain {
  LayerList layers;
  int64_t rank = 4;  // of the current value: [N, C, H, W] until flattened
};

// A handler gets the node and the position of its one non-constant tensor
// input (the previous op's output). It appends what the op does to the chain
// and returns "", or returns why it cannot.
using Handler = std::function<std::string(const Node*, size_t, Chain&)>;

std::string shape_text(const torch::Tensor& t) {
  return fmt::format("{}", t.sizes());
}

// A constant operand of an elementwise op as a per-channel vector [C] (or
// [1] for a number), if it broadcasts that way against a value of `rank`:
// its shape, left-padded with ones, must be [1, C, 1, ..., 1].
std::optional<torch::Tensor> channel_vector(const Value* value, int64_t rank) {
  const auto t = constant_tensor(value);
  if (t && t->dim() > rank) {
    return std::nullopt;
  }
  if (const auto number = constant_number(value)) {
    return torch::full({1}, *number, torch::kDouble);
  }
  if (!t || !t->is_floating_point()) {
    return std::nullopt;
  }
  const int64_t pad = rank - t->dim();
  for (int64_t d = 0; d < t->dim(); ++d) {
    const int64_t axis = d + pad;
    if (axis != 1 && t->size(d) != 1) {
      return std::nullopt;
    }
  }
  return t->reshape({-1}).to(torch::kCPU, torch::kDouble);
}

// Appends y = x * scale + shift, folded into the previous layer when that is
// a ChannelAffine too. Parameters are kept in double until the chain is done.
void push_affine(Chain& chain, const torch::Tensor& scale, const torch::Tensor& shift) {
  torch::Tensor new_scale = scale;
  torch::Tensor new_shift = shift;
  const bool fold = !chain.layers.empty() && chain.layers.back().kind == LayerKind::ChannelAffine;
  if (fold) {
    const Layer& last = chain.layers.back();
    new_scale = last.weight * scale;
    new_shift = last.bias * scale + shift;
  }
  // Both [C], or both [1] when every constant so far was a number.
  const auto sizes = (new_scale + new_shift).sizes();
  Layer layer{
      LayerKind::ChannelAffine, new_scale.expand(sizes).clone(), new_shift.expand(sizes).clone()};
  if (fold) {
    chain.layers.back() = layer;
  } else {
    chain.layers.push_back(layer);
  }
}

// An elementwise op between the chain's value x and a constant c, as
// y = x * scale + shift; `refused` says why not.
struct Affine {
  torch::Tensor scale;
  torch::Tensor shift;
  std::string refused;
};
using AffineRule = Affine (*)(const Node* node, const torch::Tensor& c, bool x_first);

Affine refuse(std::string why) {
  return {{}, {}, std::move(why)};
}

torch::Tensor number(double value) {
  return torch::full({1}, value, torch::kDouble);
}

// The alpha of add, sub and rsub (their third input).
std::optional<double> alpha_of(const Node* node) {
  return node->inputs().size() < 3 ? std::optional<double>(1.0) : constant_number(node->input(2));
}

// aten::add(x, c, a) = x + a*c; aten::add(c, x, a) = c + a*x
Affine add_rule(const Node* node, const torch::Tensor& c, bool x_first) {
  const auto a = alpha_of(node);
  if (!a) {
    return refuse("alpha is not a constant");
  }
  return x_first ? Affine{number(1), *a * c, ""} : Affine{number(*a), c, ""};
}

// aten::sub(x, c, a) = x - a*c; aten::sub(c, x, a) = c - a*x
Affine sub_rule(const Node* node, const torch::Tensor& c, bool x_first) {
  const auto a = alpha_of(node);
  if (!a) {
    return refuse("alpha is not a constant");
  }
  return x_first ? Affine{number(1), -*a * c, ""} : Affine{number(-*a), c, ""};
}

// aten::rsub(x, c, a) = c - a*x; aten::rsub(c, x, a) = x - a*c
Affine rsub_rule(const Node* node, const torch::Tensor& c, bool x_first) {
  return sub_rule(node, c, !x_first);
}

Affine mul_rule(const Node*, const torch::Tensor& c, bool) {
  return {c, number(0), ""};
}

// aten::div(x, c), without a rounding mode
Affine div_rule(const Node* node, const torch::Tensor& c, bool x_first) {
  if (!x_first) {
    return refuse("division by the input");
  }
  if (node->inputs().size() > 2 && !node->input(2)->type()->cast<c10::NoneType>()) {
    return refuse("division with a rounding mode");
  }
  if ((c == 0).any().item<bool>()) {
    return refuse("division by zero");
  }
  return {1.0 / c, number(0), ""};
}

// aten::neg(x) = -x (what scripting makes of `1.0 - x`, with an add).
std::string on_neg(const Node*, size_t, Chain& chain) {
  push_affine(chain, number(-1), number(0));
  return "";
}

// Input normalisation written out in forward: (x - mean) / std, x * 2 - 1.
// The constant must be a number or per channel ([C, 1, 1], [1, C, 1, 1]).
Handler affine(AffineRule rule) {
  return [rule](const Node* node, size_t data, Chain& chain) -> std::string {
    if (data > 1) {
      return "unexpected operand layout";
    }
    const Value* other = node->input(data == 0 ? 1 : 0);
    const auto c = channel_vector(other, chain.rank);
    if (!c) {
      const auto t = constant_tensor(other);
      return t ? fmt::format("constant of shape {} is not per channel", shape_text(*t))
               : "operand is not a constant";
    }
    const Affine map = rule(node, *c, data == 0);
    if (map.refused.empty()) {
      push_affine(chain, map.scale, map.shift);
    }
    return map.refused;
  };
}

std::string linear_layer(
    const torch::Tensor& weight,
    const std::optional<torch::Tensor>& bias,
    Chain& chain) {
  if (chain.rank != 2) {
    return "applied to a 4-D tensor, expected [N, features]";
  }
  if (weight.dim() != 2) {
    return fmt::format("weight of shape {}", shape_text(weight));
  }
  chain.layers.push_back({LayerKind::Linear, weight, bias ? *bias : torch::Tensor()});
  return "";
}

// aten::linear(x, weight, bias?)
std::string on_linear(const Node* node, size_t data, Chain& chain) {
  const auto weight = constant_tensor(node->input(1));
  const auto bias = constant_tensor(node->input(2));
  if (data != 0 || !weight || (!bias && !constant(node->input(2)))) {
    return "weight or bias is not a constant";
  }
  return linear_layer(*weight, bias, chain);
}

// aten::addmm(bias, x, weight^T, beta, alpha): F.linear of older exports.
std::string on_addmm(const Node* node, size_t data, Chain& chain) {
  const auto bias = constant_tensor(node->input(0));
  const auto weight_t = constant_tensor(node->input(2));
  if (data != 1 || !bias || !weight_t || weight_t->dim() != 2) {
    return "not of the form bias + x W^T";
  }
  const auto beta = constant_number(node->input(3));
  const auto alpha = constant_number(node->input(4));
  if (!beta || !alpha || *beta != 1.0 || *alpha != 1.0) {
    return "beta or alpha != 1";
  }
  if (bias->dim() > 1 && bias->size(0) != 1) {
    return fmt::format("bias of shape {}", shape_text(*bias));
  }
  return linear_layer(weight_t->t().contiguous(), bias->reshape({-1}), chain);
}

// aten::matmul(x, W^T) / aten::mm(x, W^T): older exports, followed by
// aten::add(_) of the bias, which push_bias folds into this layer.
std::string on_matmul(const Node* node, size_t data, Chain& chain) {
  const auto weight_t = constant_tensor(node->input(1));
  if (data != 0 || !weight_t || weight_t->dim() != 2) {
    return "not of the form x W^T";
  }
  return linear_layer(weight_t->t().contiguous(), std::nullopt, chain);
}

std::optional<std::vector<int64_t>> pair_of(const Value* value) {
  auto ints = constant_ints(value);
  if (ints && ints->size() == 1) {
    ints->push_back(ints->front());
  }
  if (!ints || ints->size() != 2) {
    return std::nullopt;
  }
  return ints;
}

std::string conv_layer(
    const Node* node,
    size_t data,
    Chain& chain,
    bool transposed,
    const Value* groups_value) {
  const auto weight = constant_tensor(node->input(1));
  const auto bias = constant_tensor(node->input(2));
  if (data != 0 || !weight || (!bias && !constant(node->input(2)))) {
    return "weight or bias is not a constant";
  }
  if (weight->dim() != 4 || chain.rank != 4) {
    return fmt::format(
        "weight of shape {}: only 2-D convolutions are supported", shape_text(*weight));
  }
  const auto stride = pair_of(node->input(3));
  const auto padding = pair_of(node->input(4));
  const auto dilation = pair_of(node->input(5));
  const auto groups = constant_number(groups_value);
  if (!padding) {
    return "padding is not a pair of numbers";
  }
  if (!stride || !dilation || !groups) {
    return "stride, dilation or groups is not a constant";
  }
  if (transposed) {
    return "transposed";
  }
  if ((*dilation)[0] != 1 || (*dilation)[1] != 1) {
    return "dilation != 1";
  }
  if (*groups != 1) {
    return "groups != 1";
  }
  Layer layer{LayerKind::Conv2d, *weight, bias ? *bias : torch::Tensor()};
  layer.stride = *stride;
  layer.padding = *padding;
  chain.layers.push_back(layer);
  return "";
}

// aten::conv2d(x, weight, bias, stride, padding, dilation, groups)
std::string on_conv2d(const Node* node, size_t data, Chain& chain) {
  return conv_layer(node, data, chain, false, node->input(6));
}

// aten::_convolution(x, weight, bias, stride, padding, dilation, transposed,
// output_padding, groups, ...): what tracing records for nn.Conv2d.
std::string on_convolution(const Node* node, size_t data, Chain& chain) {
  const auto transposed = constant(node->input(6));
  if (!transposed || !transposed->isBool()) {
    return "transposed is not a constant";
  }
  return conv_layer(node, data, chain, transposed->toBool(), node->input(8));
}

Handler activation(LayerKind kind) {
  return [kind](const Node*, size_t, Chain& chain) -> std::string {
    chain.layers.push_back({kind, {}, {}});
    return "";
  };
}

// aten::softplus(x, beta, threshold)
std::string on_softplus(const Node* node, size_t, Chain& chain) {
  const auto beta = constant_number(node->input(1));
  const auto threshold = constant_number(node->input(2));
  if (!beta || !threshold || !(*beta > 0) || *threshold != 20.0) {
    return "beta not a positive constant or threshold != 20";
  }
  Layer layer{LayerKind::Softplus, {}, {}};
  layer.beta = *beta;
  chain.layers.push_back(layer);
  return "";
}

std::string push_flatten(Chain& chain) {
  if (chain.rank != 2) {
    chain.layers.push_back({LayerKind::Flatten, {}, {}});
    chain.rank = 2;
  }
  return "";
}

// aten::flatten(x, 1, -1)
std::string on_flatten(const Node* node, size_t, Chain& chain) {
  const auto start = constant_number(node->input(1));
  const auto end = constant_number(node->input(2));
  if (!start || !end || *start != 1 || (*end != -1 && *end != chain.rank - 1)) {
    return "only flatten(x, 1) is supported";
  }
  return push_flatten(chain);
}

// aten::view / aten::reshape to [N, -1], where N is -1 or x.size(0), and -1
// may also be the number of features spelt out (x.view(-1, 320)): a model
// whose logits have one row per input can only mean a flatten by that.
std::string on_view(const Node* node, size_t, Chain& chain) {
  const Value* shape = node->input(1);
  std::vector<const Value*> dims;
  if (shape->node()->kind() == c10::prim::ListConstruct) {
    for (const Value* dim : shape->node()->inputs()) {
      dims.push_back(dim);
    }
  } else if (const auto ints = constant_ints(shape)) {
    if (ints->size() == 2 && (*ints)[0] == -1 && (*ints)[1] > 0) {
      return push_flatten(chain);
    }
    if (ints->size() == 2 && (*ints)[0] > 0 && (*ints)[1] == -1) {
      return "flattens to a fixed batch size";
    }
  }
  if (dims.size() != 2) {
    return "only a flatten to [N, -1] is supported";
  }
  const auto first = constant_number(dims[0]);
  const auto second = constant_number(dims[1]);
  const bool batch = is_batch_size(dims[0]) || (first && *first == -1);
  if (!batch || !second || (*second != -1 && (*second <= 0 || (first && *first != -1)))) {
    return "only a flatten to [N, -1] is supported";
  }
  return push_flatten(chain);
}

// aten::batch_norm(x, weight?, bias?, running_mean, running_var, training,
// momentum, eps, cudnn_enabled) in eval mode: a per-channel affine map.
// (Freezing already folds one that follows a convolution into it.)
std::string on_batch_norm(const Node* node, size_t data, Chain& chain) {
  const auto training = constant(node->input(5));
  if (!training || !training->isBool() || training->toBool()) {
    return "training mode: batch statistics";
  }
  const auto mean = constant_tensor(node->input(3));
  const auto var = constant_tensor(node->input(4));
  const auto eps = constant_number(node->input(7));
  if (data != 0 || !mean || !var || !eps) {
    return "running statistics are not constants";
  }
  auto scale = 1.0 / (var->to(torch::kCPU, torch::kDouble) + *eps).sqrt();
  auto shift = -mean->to(torch::kCPU, torch::kDouble) * scale;
  if (const auto weight = constant_tensor(node->input(1))) {
    scale = scale * weight->to(torch::kCPU, torch::kDouble);
    shift = shift * weight->to(torch::kCPU, torch::kDouble);
  }
  if (const auto bias = constant_tensor(node->input(2))) {
    shift = shift + bias->to(torch::kCPU, torch::kDouble);
  }
  push_affine(chain, scale.reshape({-1}), shift.reshape({-1}));
  return "";
}

// Ops that leave the values unchanged in eval mode.
std::string on_dropout(const Node* node, size_t, Chain&) {
  const auto train = constant(node->input(2));
  if (!train || !train->isBool() || train->toBool()) {
    return "dropout in training mode";
  }
  return "";
}

std::string on_identity(const Node*, size_t, Chain&) {
  return "";
}

const std::unordered_map<c10::Symbol, Handler>& handlers() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<c10::Symbol, Handler>();
    auto add = [t](const char* kind, Handler handler) {
      (*t)[c10::Symbol::fromQualString(kind)] = std::move(handler);
    };
    add("aten::linear", on_linear);
    add("aten::addmm", on_addmm);
    add("aten::matmul", on_matmul);
    add("aten::mm", on_matmul);
    add("aten::conv2d", on_conv2d);
    add("aten::_convolution", on_convolution);
    for (const char* kind : {"aten::relu", "aten::relu_"}) {
      add(kind, activation(LayerKind::ReLU));
    }
    for (const char* kind : {"aten::tanh", "aten::tanh_"}) {
      add(kind, activation(LayerKind::Tanh));
    }
    add("aten::softplus", on_softplus);
    add("aten::flatten", on_flatten);
    for (const char* kind : {"aten::view", "aten::reshape"}) {
      add(kind, on_view);
    }
    for (const char* kind : {"aten::add", "aten::add_"}) {
      add(kind, affine(add_rule));
    }
    for (const char* kind : {"aten::sub", "aten::sub_"}) {
      add(kind, affine(sub_rule));
    }
    add("aten::rsub", affine(rsub_rule));
    add("aten::neg", on_neg);
    for (const char* kind : {"aten::mul", "aten::mul_"}) {
      add(kind, affine(mul_rule));
    }
    for (const char* kind : {"aten::div", "aten::div_"}) {
      add(kind, affine(div_rule));
    }
    add("aten::batch_norm", on_batch_norm);
    for (const char* kind : {"aten::dropout", "aten::feature_dropout"}) {
      add(kind, on_dropout);
    }
    for (const char* kind : {"aten::contiguous", "aten::detach"}) {
      add(kind, on_identity);
    }
    return t;
  }();
  return *table;
}

bool holds_tensor(const c10::TypePtr& type) {
  if (type->isSubtypeOf(*c10::TensorType::get())) {
    return true;
  }
  for (const auto& contained : type->containedTypes()) {
    if (holds_tensor(contained)) {
      return true;
    }
  }
  return false;
}

// True for a node that neither reads nor makes a tensor, nor holds one that
// does: int and list arithmetic, and checks such as F.batch_norm's batch
// size test (a prim::Loop and a prim::If that raises).
bool is_scalar_only(const Node* node) {
  for (const Value* value : node->inputs()) {
    if (holds_tensor(value->type())) {
      return false;
    }
  }
  for (const Value* value : node->outputs()) {
    if (holds_tensor(value->type())) {
      return false;
    }
  }
  for (const torch::jit::Block* block : node->blocks()) {
    for (const Node* inner : block->nodes()) {
      if (!is_scalar_only(inner)) {
        return false;
      }
    }
  }
  return true;
}

// Constants, ops that only read sizes (for a view, or for an input check
// such as BatchNorm2d's x.dim() != 4), and ops on numbers alone: skipped.
bool is_bookkeeping(const Node* node) {
  static const std::unordered_set<c10::Symbol> kinds{
      c10::prim::Constant, c10::aten::size, c10::aten::dim, c10::prim::ListConstruct,
      c10::prim::NumToTensor, c10::aten::Int};
  return kinds.count(node->kind()) > 0 || is_scalar_only(node);
}

// A Linear from aten::matmul/mm gets its bias from the aten::add that
// follows it; everything else keeps the ChannelAffine that the add made.
void fold_matmul_bias(LayerList& layers) {
  for (size_t i = 1; i < layers.size(); ++i) {
    Layer& linear = layers[i - 1];
    const Layer& affine = layers[i];
    if (linear.kind == LayerKind::Linear && !linear.bias.defined() &&
        affine.kind == LayerKind::ChannelAffine && (affine.weight == 1).all().item<bool>() &&
        (affine.bias.numel() == linear.weight.size(0) || affine.bias.numel() == 1)) {
      linear.bias = affine.bias.expand({linear.weight.size(0)}).clone();
      layers.erase(layers.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
}

// ChannelAffine parameters were built in double on the CPU: give every layer
// the dtype and device of the model's first weight.
void finish(LayerList& layers) {
  torch::TensorOptions options = torch::TensorOptions().dtype(torch::kFloat);
  for (const auto& layer : layers) {
    if ((layer.kind == LayerKind::Linear || layer.kind == LayerKind::Conv2d) &&
        layer.weight.defined()) {
      options = layer.weight.options();
      break;
    }
  }
  for (auto& layer : layers) {
    if (layer.weight.defined()) {
      layer.weight = layer.weight.to(options);
    }
    if (layer.bias.defined()) {
      layer.bias = layer.bias.to(options);
    }
  }
}

std::shared_ptr<torch::jit::Graph> frozen_forward_graph(const torch::jit::Module& module) {
  try {
    torch::jit::Module copy = module.clone();
    copy.eval();
    torch::jit::Module frozen = torch::jit::freeze(copy);
    auto graph = frozen.get_method("forward").graph()->copy();
    torch::jit::Inline(*graph);
    torch::jit::RemoveTensorMutation(graph);
    torch::jit::ConstantPropagation(graph);
    torch::jit::EliminateDeadCode(graph);
    return graph;
  } catch (const c10::Error& e) {
    throw Error(fmt::format("cannot freeze the TorchScript module: {}", reason_of(e)));
  }
}

}  // namespace

LayerList layers_from_torchscript(const torch::jit::Module& module) {
  const auto graph = frozen_forward_graph(module);

  std::vector<Value*> inputs;
  for (Value* input : graph->inputs()) {
    if (!input->type()->cast<c10::ClassType>()) {  // skip `self`
      inputs.push_back(input);
    }
  }
  BB_CHECK(
      inputs.size() == 1 && is_tensor(inputs[0]),
      "forward takes {} arguments, expected one tensor",
      inputs.size());

  Chain chain;
  std::vector<std::string> unsupported;
  const Value* current = inputs[0];
  for (const Node* node : graph->nodes()) {
    if (is_bookkeeping(node)) {
      continue;
    }
    std::vector<size_t> data;  // the non-constant tensor inputs
    for (size_t i = 0; i < node->inputs().size(); ++i) {
      const Value* input = node->input(i);
      if (is_tensor(input) && !torch::jit::toIValue(input)) {
        data.push_back(i);
      }
    }
    bool takes_current = false;
    for (size_t i : data) {
      takes_current = takes_current || node->input(i) == current;
    }
    const auto handler = handlers().find(node->kind());
    if (handler == handlers().end()) {
      unsupported.push_back(label(node));
    } else if (data.size() != 1 || !takes_current) {
      unsupported.push_back(fmt::format("{} (not a chain)", label(node)));
    } else {
      const std::string why = handler->second(node, data[0], chain);
      if (!why.empty()) {
        unsupported.push_back(fmt::format("{} ({})", label(node), why));
      }
    }
    // Follow the data through unsupported ops too (a branch included), to
    // name every one of them.
    if (uses(node, current) && node->outputs().size() >= 1) {
      current = node->output(0);
    }
  }
  if (graph->outputs().size() != 1 || graph->outputs()[0] != current) {
    unsupported.push_back("forward does not return the end of the chain");
  }
  BB_CHECK(
      unsupported.empty(),
      "unsupported operations for certified bounds: {}",
      fmt::join(unsupported, ", "));
  fold_matmul_bias(chain.layers);
  finish(chain.layers);
  return chain.layers;
}

namespace {

// A deterministic batch spread over the input domain.
torch::Tensor probe_batch(const InputSpec& spec, int64_t n, torch::Device device) {
  std::vector<int64_t> shape{n};
  shape.insert(shape.end(), spec.shape.begin(), spec.shape.end());
  double lo = spec.domain.lo;
  double hi = spec.domain.hi;
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    lo = 0.0;
    hi = 1.0;
  }
  int64_t count = 1;
  for (int64_t d : shape) {
    count *= d;
  }
  auto u = torch::arange(count, torch::kDouble).mul(0.6180339887498949).frac();
  return (lo + (hi - lo) * u).to(torch::kFloat).view(shape).to(device);
}

}  // namespace

Model load_torchscript(const std::string& path, const InputSpec& spec, torch::Device device) {
  BB_CHECK(
      !std::filesystem::is_directory(path) && std::ifstream(path, std::ios::binary).good(),
      "{}: cannot open",
      path);
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: not a TorchScript module: {}", path, reason_of(e)));
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: not a TorchScript module: {}", path, reason_of(e)));
  }
  BB_CHECK(
      module.find_method("forward").has_value(),
      "{}: not a TorchScript module (no forward method): a checkpoint saved with torch::save, as "
      "`boundbench train` writes, loads by name from its zoo (train --manifest, "
      "BOUNDBENCH_ZOO_DIR); export your own with torch.jit.trace or torch.jit.script",
      path);
  module.eval();
  module.to(device);

  Classifier::Forward forward = [module, path](const torch::Tensor& x) mutable {
    const c10::IValue out = module.forward({x});
    BB_CHECK(out.isTensor(), "{}: forward returns a {}, expected a tensor of logits", path,
             out.tagKind());
    return out.toTensor();
  };

  std::vector<int64_t> input_shape{2};
  input_shape.insert(input_shape.end(), spec.shape.begin(), spec.shape.end());
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    try {
      logits = forward(torch::zeros(input_shape, torch::TensorOptions().device(device)));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(fmt::format(
          "{}: model does not accept inputs of shape [N, {}] ({})",
          path,
          fmt::join(spec.shape, ", "),
          reason_of(e)));
    }
  }
  BB_CHECK(
      logits.dim() == 2 && logits.size(0) == 2 && logits.size(1) == spec.num_classes,
      "{}: model returns logits of shape {}, expected [2, {}]",
      path,
      logits.sizes(),
      spec.num_classes);

  Model model{
      Classifier(forward, spec, device, path), path, sha256_file(path), std::nullopt, "",
      nlohmann::json::object()};
  try {
    LayerList layers = layers_from_torchscript(module);
    // The chain must compute what the module computes.
    torch::NoGradGuard no_grad;
    const auto x = probe_batch(spec, 2, device);
    const auto expected = forward(x);
    const auto found = run_layers(layers, x);
    const double scale = std::max(1.0, expected.abs().max().item<double>());
    const double difference = found.sizes() == expected.sizes()
        ? (found - expected).abs().max().item<double>()
        : std::numeric_limits<double>::infinity();
    BB_CHECK(
        difference <= 1e-4 * scale,
        "the layer chain read from the graph does not reproduce the module's logits "
        "(max difference {:.3g})",
        difference);
    model.layers = std::move(layers);
  } catch (const Error& e) {
    model.layers_unavailable = e.what();
  } catch (const std::exception& e) {
    model.layers_unavailable = fmt::format("cannot read the layer chain: {}", reason_of(e));
  }
  return model;
}

}  // namespace bb
