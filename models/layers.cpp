#include "models/layers.h"

#include "core/error.h"

namespace bb {

std::string layer_kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::ChannelAffine:
      return "ChannelAffine";
    case LayerKind::Linear:
      return "Linear";
    case LayerKind::Conv2d:
      return "Conv2d";
    case LayerKind::Flatten:
      return "Flatten";
    case LayerKind::ReLU:
      return "ReLU";
    case LayerKind::Softplus:
      return "Softplus";
    case LayerKind::Tanh:
      return "Tanh";
  }
  BB_ASSERT(false, "unhandled layer kind {}", static_cast<int>(kind));
}

bool is_activation(LayerKind kind) {
  return kind == LayerKind::ReLU || kind == LayerKind::Softplus || kind == LayerKind::Tanh;
}

namespace {

torch::Tensor channel_view(const torch::Tensor& v, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = v.numel();
  return v.view(shape);
}

}  // namespace

torch::Tensor Layer::forward(const torch::Tensor& x) const {
  namespace F = torch::nn::functional;
  switch (kind) {
    case LayerKind::ChannelAffine:
      return x * channel_view(weight, x) + channel_view(bias, x);
    case LayerKind::Linear:
      return F::linear(x, weight, bias);
    case LayerKind::Conv2d:
      return F::conv2d(x, weight, F::Conv2dFuncOptions().bias(bias).stride(stride).padding(padding));
    case LayerKind::Flatten:
      return x.flatten(1);
    case LayerKind::ReLU:
      return torch::relu(x);
    case LayerKind::Softplus:
      return F::softplus(x, F::SoftplusFuncOptions().beta(beta));
    case LayerKind::Tanh:
      return torch::tanh(x);
  }
  BB_ASSERT(false, "unhandled layer kind {}", static_cast<int>(kind));
}

std::string Layer::describe() const {
  switch (kind) {
    case LayerKind::Linear:
      return fmt::format("Linear({}->{})", weight.size(1), weight.size(0));
    case LayerKind::Conv2d:
      return fmt::format(
          "Conv2d({}->{}, k{}x{}, s{}, p{})", weight.size(1), weight.size(0), weight.size(2),
          weight.size(3), stride[0], padding[0]);
    case LayerKind::ChannelAffine:
      return fmt::format("ChannelAffine({})", weight.numel());
    case LayerKind::Softplus:
      return beta == 1.0 ? "Softplus" : fmt::format("Softplus(beta {})", beta);
    default:
      return layer_kind_name(kind);
  }
}

torch::Tensor run_layers(const LayerList& layers, const torch::Tensor& x) {
  torch::Tensor h = x;
  for (const auto& layer : layers) {
    h = layer.forward(h);
  }
  return h;
}

ChannelAffineImpl::ChannelAffineImpl(int64_t channels)
    : ChannelAffineImpl(torch::ones({channels}), torch::zeros({channels})) {}

ChannelAffineImpl::ChannelAffineImpl(torch::Tensor scale_, torch::Tensor shift_) {
  scale = register_buffer("scale", scale_);
  shift = register_buffer("shift", shift_);
}

torch::Tensor ChannelAffineImpl::forward(const torch::Tensor& x) {
  return x * channel_view(scale, x) + channel_view(shift, x);
}

namespace {
// The layer list only reads the parameters: without autograd's history the
// bounds' tensor code records no graph through them.
torch::Tensor detached(const torch::Tensor& t) {
  return t.defined() ? t.detach() : t;
}
}  // namespace

LayerList layers_of(const torch::nn::Sequential& network) {
  LayerList layers;
  std::vector<std::string> unsupported;
  for (size_t i = 0; i < network->size(); ++i) {
    const auto module = network->ptr(i);
    if (auto m = std::dynamic_pointer_cast<torch::nn::LinearImpl>(module)) {
      layers.push_back({LayerKind::Linear, detached(m->weight), detached(m->bias)});
    } else if (auto m = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(module)) {
      const auto& o = m->options;
      const auto* padding = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
      if (padding == nullptr || o.groups() != 1 || (*o.dilation())[0] != 1 ||
          (*o.dilation())[1] != 1) {
        unsupported.push_back(fmt::format("{}: Conv2d with groups, dilation or padding mode", i));
        continue;
      }
      Layer layer{LayerKind::Conv2d, detached(m->weight), detached(m->bias)};
      layer.stride = {(*o.stride())[0], (*o.stride())[1]};
      layer.padding = {(*padding)->at(0), (*padding)->at(1)};
      layers.push_back(layer);
    } else if (auto m = std::dynamic_pointer_cast<ChannelAffineImpl>(module)) {
      layers.push_back({LayerKind::ChannelAffine, m->scale, m->shift});
    } else if (std::dynamic_pointer_cast<torch::nn::FlattenImpl>(module)) {
      layers.push_back({LayerKind::Flatten, {}, {}});
    } else if (std::dynamic_pointer_cast<torch::nn::ReLUImpl>(module)) {
      layers.push_back({LayerKind::ReLU, {}, {}});
    } else if (auto m = std::dynamic_pointer_cast<torch::nn::SoftplusImpl>(module)) {
      const double beta = m->options.beta();
      if (!(beta > 0) || m->options.threshold() != 20.0) {
        unsupported.push_back(fmt::format("{}: Softplus with beta <= 0 or threshold != 20", i));
        continue;
      }
      Layer layer{LayerKind::Softplus, {}, {}};
      layer.beta = beta;
      layers.push_back(layer);
    } else if (std::dynamic_pointer_cast<torch::nn::TanhImpl>(module)) {
      layers.push_back({LayerKind::Tanh, {}, {}});
    } else {
      unsupported.push_back(fmt::format("{}: {}", i, module->name()));
    }
  }
  BB_CHECK(
      unsupported.empty(),
      "unsupported layers for certified bounds: {}",
      fmt::join(unsupported, "; "));
  return layers;
}

torch::nn::Sequential fold_batch_norm(const torch::nn::Sequential& network) {
  torch::NoGradGuard no_grad;
  std::vector<torch::nn::AnyModule> modules;
  size_t index = 0;
  for (const auto& module : *network) {
    auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(module.ptr());
    if (!bn) {
      modules.push_back(module);
      ++index;
      continue;
    }
    auto conv = modules.empty()
        ? nullptr
        : std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(modules.back().ptr());
    BB_CHECK(conv != nullptr, "layer {}: BatchNorm2d must follow a Conv2d to be folded", index);
    auto scale = bn->weight / (bn->running_var + bn->options.eps()).sqrt();
    const auto& o = conv->options;
    torch::nn::Conv2d copy(torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                               .stride(o.stride())
                               .padding(o.padding())
                               .dilation(o.dilation())
                               .groups(o.groups())
                               .bias(true));
    copy->to(conv->weight.device(), conv->weight.scalar_type());
    copy->weight.copy_(conv->weight * scale.view({-1, 1, 1, 1}));
    auto bias = conv->bias.defined() ? conv->bias : torch::zeros_like(bn->running_mean);
    copy->bias.copy_((bias - bn->running_mean) * scale + bn->bias);
    modules.back() = torch::nn::AnyModule(copy);
    ++index;
  }
  torch::nn::Sequential folded;
  for (auto& module : modules) {
    folded->push_back(module);
  }
  return folded;
}

}  // namespace bb
