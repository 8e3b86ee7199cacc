"""Building blocks shared by the nets; the hot elementwise parts go through condgan.ops."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .. import ops


class BiasLeakyReLU(nn.Module):
    """y = gain * leaky_relu(x + bias), bias per channel: one fused op instead of two passes."""

    def __init__(self, channels: int, negative_slope: float = 0.2, gain: float = 1.0, dim: int = 1):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.negative_slope, self.gain, self.dim = negative_slope, gain, dim

    def forward(self, x):
        return ops.bias_leaky_relu(x, self.bias, self.negative_slope, self.gain, self.dim)

    def extra_repr(self) -> str:
        return f"{self.bias.numel()}, negative_slope={self.negative_slope}"


class Upsample2x(nn.Module):
    """2x nearest or bilinear upsampling through condgan.ops; with relu=True, ReLU then upsample in one
    fused pass (ops.upsample2x_bias_leaky_relu with slope 0, which equals F.relu then upsample2x)."""

    def __init__(self, mode: str = "nearest", relu: bool = False):
        super().__init__()
        self.mode, self.relu = mode, relu

    def forward(self, x):
        if self.relu:
            return ops.upsample2x_bias_leaky_relu(x, None, 0.0, 1.0, self.mode)
        return ops.upsample2x(x, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, relu={self.relu}"


class BlurDownsample2x(nn.Module):
    """Anti-aliased 2x downsampling (Zhang 2019, "Making convolutional networks shift-invariant again").

    A fixed 3x3 binomial low-pass filter, [1, 2, 1] x [1, 2, 1] / 16, applied per channel with
    reflection padding and stride 2. It removes the highest frequency (a +1/-1 checkerboard) entirely
    before subsampling, so a 1-pixel shift of the input moves the output far less than a plain stride.
    The filter is a non-persistent buffer (never trained, not in state dicts) and runs as a depthwise
    F.conv2d, which exports to ONNX as an ordinary grouped Conv.
    """

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16.0
        self.channels = channels
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).contiguous(), persistent=False)

    def forward(self, x):
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, taps=[1, 2, 1]/4, stride=2"


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al. 2017; Miyato & Koyama 2018).

    Every layer of the generator then sees the label, not only its input, which is
    what makes "ask for a 7, get a 7" reliable.
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)  # used as 1 + scale
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.zeros_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        scale = self.scale(label)[:, :, None, None]
        shift = self.shift(label)[:, :, None, None]
        return torch.addcmul(shift, self.norm(x), 1.0 + scale)


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) when enabled."""
    return spectral_norm(module) if enabled else module


def conv(cin: int, cout: int, k: int, stride: int = 1, pad: int | None = None, sn: bool = False,
         bias: bool = False) -> nn.Module:
    """Convolution without its own bias by default: the following BiasLeakyReLU carries it."""
    pad = (k - 1) // 2 if pad is None else pad
    return maybe_sn(nn.Conv2d(cin, cout, k, stride, pad, bias=bias), sn)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation: N(0, std) for conv/linear/embedding weights, N(1, std) for norm scales."""
    # conditional norms keep their zero-initialised embeddings: identity scale and shift at the start
    keep = {id(e) for m in module.modules() if isinstance(m, ConditionalBatchNorm2d) for e in (m.scale, m.shift)}
    for m in module.modules():
        if id(m) in keep:
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
