// The classifier wrapper: what attacks and bounds ask of a model. Logits,
// predicted class c, margins g_j = f_c - f_j, and input gradients of all g_j
// in one batched backward, on the model's device, in eval mode.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/norm.h"

namespace bb {

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
  // Throws bb::Error naming `what` if the logits of x hold NaN or inf, or if
  // their shape is not [N, k]. One host sync: call it once, on a first batch.
  void check_logits(const torch::Tensor& x, const std::string& what) const;

  // Logits [N, k] without a graph.
  torch::Tensor logits(const torch::Tensor& x) const;
  // Logits with autograd (for attacks that build their own objective).
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
  // (double backprop).
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
