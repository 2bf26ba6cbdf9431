// A network as an ordered chain of supported layers, with their weights.
// The certified gradient-norm estimators (interval Jacobian, product of layer
// operator norms) walk this list layer by layer; the zoo's networks and
// TorchScript imports whose graph is such a chain both produce one.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace bb {

enum class LayerKind {
  ChannelAffine,  // y = x * scale[c] + shift[c]: input normalisation, folded batch norm
  Linear,         // y = x W^T + b on [N, features]
  Conv2d,         // 2-D convolution with stride, padding (dilation 1, groups 1)
  Flatten,        // [N, C, H, W] -> [N, C*H*W]
  ReLU,
  Softplus,       // log(1 + exp(beta x)) / beta (linear above beta x > 20, as torch)
  Tanh,
};

std::string layer_kind_name(LayerKind kind);
bool is_activation(LayerKind kind);

struct Layer {
  LayerKind kind;
  torch::Tensor weight;  // Linear [out, in]; Conv2d [out, in, kh, kw]; ChannelAffine: scale [C] or [1] (broadcast)
  torch::Tensor bias;    // [out] (ChannelAffine: shift [C]); may be undefined for Linear/Conv2d
  std::vector<int64_t> stride{1, 1};   // Conv2d only
  std::vector<int64_t> padding{0, 0};  // Conv2d only
  double beta = 1.0;                   // Softplus only: sharpness; |f''| <= beta / 4

  // Applies the layer (used to check that a chain reproduces its model).
  torch::Tensor forward(const torch::Tensor& x) const;
  // "Conv2d(1->32, k5, s2, p2)", "ReLU", "Softplus(beta 10)", ...
  std::string describe() const;
};

using LayerList = std::vector<Layer>;

// Runs the chain: equals the model's forward when the list was built right.
torch::Tensor run_layers(const LayerList& layers, const torch::Tensor& x);

// Per-channel affine map as a module: input normalisation inside the model
// (so that distortions are measured in pixel space) and folded batch norm.
class ChannelAffineImpl : public torch::nn::Module {
 public:
  explicit ChannelAffineImpl(int64_t channels = 1);
  ChannelAffineImpl(torch::Tensor scale, torch::Tensor shift);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor scale;
  torch::Tensor shift;
};
TORCH_MODULE(ChannelAffine);

// The layer list of a Sequential made of Linear, Conv2d, ChannelAffine,
// Flatten, ReLU, Softplus (any beta > 0, threshold 20) and Tanh modules.
// Every unsupported module is named in one bb::Error.
LayerList layers_of(const torch::nn::Sequential& network);

// A copy of `network` with every BatchNorm2d folded into the Conv2d before it,
// using the running statistics (for evaluation). A BatchNorm2d that does not
// follow a Conv2d is a bb::Error.
torch::nn::Sequential fold_batch_norm(const torch::nn::Sequential& network);

}  // namespace bb
