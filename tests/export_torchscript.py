"""Writes the TorchScript models that tests/test_torchscript.cpp loads.

Run with Debian's Python, which has torch 1.13:

    /usr/bin/python3 tests/export_torchscript.py OUT_DIR

For each model NAME it writes OUT_DIR/NAME.pt (the model, traced or scripted)
and OUT_DIR/NAME.data.pt, a scripted module with two buffers: `x`, the input
batch, and `logits`, what the eager model computes on it. Everything is
seeded, so every run writes the same weights and data.
"""

import os
import sys

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """(a), (b): input normalisation in forward, an eval-mode batch norm,
    view-flatten, ReLU and tanh."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.1307]).view(1, 1, 1))
        self.register_buffer("std", torch.tensor([0.3081]).view(1, 1, 1))
        self.bn = nn.BatchNorm2d(1)  # eval: one more per-channel affine map
        self.bn.running_mean.fill_(0.2)
        self.bn.running_var.fill_(1.5)
        nn.init.constant_(self.bn.weight, 0.8)
        nn.init.constant_(self.bn.bias, -0.1)
        self.fc1 = nn.Linear(784, 32)
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.bn((x - self.mean) / self.std)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


class CNN(nn.Module):
    """(c): scalar and per-channel affine ops, strided conv, softplus with
    beta 2, flatten."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.24, 0.26]).view(3, 1, 1))
        self.conv1 = nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(4, 6, kernel_size=3)
        self.fc = nn.Linear(6 * 6 * 6, 10)

    def forward(self, x):
        x = 2.0 * x - 1.0
        x = (x - self.mean) / self.std
        x = F.softplus(self.conv1(x), beta=2.0)
        x = F.relu(self.conv2(x))
        x = torch.flatten(x, 1)
        return self.fc(x)


class Legacy(nn.Module):
    """(c'): what older code and exports look like: addmm and matmul + add_
    for linear layers, in-place ReLU, x.view(-1, features), dropout, and an
    eval-mode batch norm after the convolution (folded into it)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 2.0)
        nn.init.uniform_(self.bn.weight, 0.5, 1.5)
        nn.init.uniform_(self.bn.bias, -0.5, 0.5)
        self.drop = nn.Dropout(0.5)
        self.w1 = nn.Parameter(torch.randn(32, 4 * 14 * 14) * 0.05)
        self.b1 = nn.Parameter(torch.randn(32) * 0.1)
        self.w2 = nn.Parameter(torch.randn(10, 32) * 0.2)
        self.b2 = nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)), inplace=True)
        x = self.drop(x.view(-1, 4 * 14 * 14))
        x = torch.tanh(torch.addmm(self.b1, x, self.w1.t()))
        x = x.matmul(self.w2.t())
        x += self.b2
        return x


class Unsupported(nn.Module):
    """(d): max pooling, batch norm with batch statistics, sigmoid."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.fc = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv(x), 2)
        x = F.batch_norm(x, None, None, training=True)
        x = torch.sigmoid(x)
        return self.fc(torch.flatten(x, 1))


class Residual(nn.Module):
    """(d'): supported ops that do not form a chain (a skip connection)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 16)
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(16, 10)

    def forward(self, x):
        h = F.relu(self.fc1(torch.flatten(x, 1)))
        h = h + self.fc2(h)
        return self.fc3(h)


class Cifar(nn.Module):
    """(e): expects 3x32x32 inputs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, stride=2)
        self.fc = nn.Linear(4 * 15 * 15, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x)), 1))


class Data(nn.Module):
    """Holds the input batch and the reference logits as buffers."""

    def __init__(self, x, logits):
        super().__init__()
        self.register_buffer("x", x)
        self.register_buffer("logits", logits)

    def forward(self):
        return self.logits


def export(out_dir, name, model, shape, scripted):
    torch.manual_seed(1000 + len(name))
    x = torch.rand(5, *shape)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        module = torch.jit.script(model) if scripted else torch.jit.trace(model, x)
    torch.jit.save(module, os.path.join(out_dir, name + ".pt"))
    torch.jit.save(torch.jit.script(Data(x, logits)), os.path.join(out_dir, name + ".data.pt"))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: export_torchscript.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    mnist, cifar = (1, 28, 28), (3, 32, 32)
    cases = [
        ("mlp_traced", MLP, mnist, False),
        ("mlp_scripted", MLP, mnist, True),
        ("cnn_traced", CNN, (3, 16, 16), False),
        ("cnn_scripted", CNN, (3, 16, 16), True),
        ("legacy_traced", Legacy, mnist, False),
        ("legacy_scripted", Legacy, mnist, True),
        ("unsupported_traced", Unsupported, mnist, False),
        ("unsupported_scripted", Unsupported, mnist, True),
        ("residual_scripted", Residual, mnist, True),
        ("cifar_traced", Cifar, cifar, False),
    ]
    for name, cls, shape, scripted in cases:
        torch.manual_seed(0)
        export(out_dir, name, cls(), shape, scripted)


if __name__ == "__main__":
    main()
