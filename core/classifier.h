// The classifier wrapper: what attacks and bounds ask of a model. Logits,
// predicted class c, margins g_j = f_c - f_j, and input gradients of all g_j
// in one batched backward, on the model's device, in eval mode.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/error.h"
#include "core/norm.h"

namespace bb {

// NaN or infinite logits: a bb::Error naming what was evaluated, the model and
// the first sample at fault, numbered from the first index the caller gave.
class NonFiniteLogits : public Error {
 public:
  // `where` is appended to the sample ("" or e.g. " at a candidate example").
  NonFiniteLogits(std::string what, std::string model, int64_t sample, std::string where = "");
  int64_t sample() const { return sample_; }
  // The same error for a batch that starts at sample `first` of `what`.
  NonFiniteLogits renumbered(int64_t first, const std::string& what) const;

 private:
  std::string what_;
  std::string model_;
  int64_t sample_;
  std::string where_;
};

// What a model expects: one input's shape (C, H, W), the number of classes and
// the input domain D.
struct InputSpec {
  std::vector<int64_t> shape;
  int64_t num_classes = 0;
  Box domain;
};

// Values and input gradients of margins g_j for a set of classes j.
struct MarginGradients {
  torch::Tensor values;  // [N, m]
  torch::Tensor grads;   // [N, m, C, H, W]
};

// misclassified() from logits [N, k] already computed.
torch::Tensor misclassified_logits(const torch::Tensor& logits, const torch::Tensor& c);

class Classifier {
 public:
  using Forward = std::function<torch::Tensor(const torch::Tensor&)>;

  // `forward` maps a batch [N, C, H, W] on `device` to logits [N, k]. The
  // caller has already put the underlying module in eval mode on `device`.
  Classifier(Forward forward, InputSpec spec, torch::Device device, std::string name);

  // A LibTorch module (a ModuleHolder such as torch::nn::Sequential or a
  // TORCH_MODULE type): switched to eval mode and moved to `device`.
  template <typename Holder>
  static Classifier from_module(
      Holder module,
      InputSpec spec,
      torch::Device device,
      std::string name) {
    module->eval();
    module->to(device);
    return Classifier(
        [module](const torch::Tensor& x) mutable { return module->forward(x); },
        std::move(spec),
        device,
        std::move(name));
  }

  const InputSpec& spec() const { return spec_; }
  torch::Device device() const { return device_; }
  const std::string& name() const { return name_; }
  int64_t num_classes() const { return spec_.num_classes; }

  // Throws bb::Error naming `what` unless x is a float batch [N, spec.shape].
  void check_input(const torch::Tensor& x, const std::string& what) const;
  // Logits [N, k] of x without a graph, checked: a shape other than [N, k] is
  // a bb::Error naming `what` and the model; a NaN or inf a NonFiniteLogits
  // naming the first sample at fault, numbered from first_index (the batch's
  // place in its data set). One host sync. Commands run it on every batch of
  // data (the first batch before any work), where they need the logits anyway.
  torch::Tensor checked_logits(
      const torch::Tensor& x,
      const std::string& what,
      int64_t first_index = 0) const;
  // checked_logits, for its checks alone.
  void check_logits(const torch::Tensor& x, const std::string& what) const;
  // The shape check of checked_logits alone, on logits already computed for a
  // batch of n inputs (loading a model runs it on a zero batch).
  void check_logits_shape(const torch::Tensor& logits, int64_t n, const std::string& what) const;
  // The finiteness check of checked_logits alone, on logits already computed.
  void check_finite(
      const torch::Tensor& logits,
      const std::string& what,
      int64_t first_index = 0,
      const std::string& where = "") const;

  // Logits [N, k] without a graph.
  torch::Tensor logits(const torch::Tensor& x) const;
  // Logits with autograd (for attacks that build their own objective). When x
  // requires a gradient, logits that carry none (a model that detaches its
  // output or runs under no_grad) are a bb::Error naming the model.
  torch::Tensor logits_with_grad(const torch::Tensor& x) const;
  // argmax_j f_j(x): [N] int64.
  torch::Tensor predict(const torch::Tensor& x) const;
  // bool [N]: some class j != c has a logit strictly above f_c(x). A tie
  // with c is not a misclassification (argmax would break it by index).
  torch::Tensor misclassified(const torch::Tensor& x, const torch::Tensor& c) const;
  // g_j(x) = f_c(x) - f_j(x) for every class j, [N, k]; g_c = 0.
  torch::Tensor margins(const torch::Tensor& x, const torch::Tensor& c) const;

  // g_j and grad_x g_j for the classes `targets` ([N, m] int64; undefined:
  // all k classes). The batch is replicated m times and one backward pass
  // gives all m gradients. With create_graph the results stay differentiable
  // (double backprop). Logits that carry no gradient are a bb::Error naming
  // the model.
  MarginGradients margin_gradients(
      const torch::Tensor& x,
      const torch::Tensor& c,
      const torch::Tensor& targets = {},
      bool create_graph = false) const;

 private:
  Forward forward_;
  InputSpec spec_;
  torch::Device device_;
  std::string name_;
};

}  // namespace bb
