"""U-Net generator for image-to-image translation (Ronneberger et al.; pix2pix, Isola et al.).

Encoder: 4x4 stride-2 convolutions, leaky ReLU 0.2 before each (the first has
none), normalisation after each except the first and the innermost. Decoder:
ReLU, 4x4 stride-2 transposed convolution, normalisation and, in the inner
decoder blocks, dropout 0.5; then tanh. Every decoder level concatenates the
matching encoder level's activated features (skip connection).

`upsampling` "nearest" or "bilinear" replaces each transposed convolution by
2x upsampling followed by a 3x3 stride-1 convolution with zero padding 1 (the
same zero padding the transposed convolutions and the encoder use), which
avoids their checkerboard artifacts (Odena et al. 2016). The ReLU before it
and the upsampling run as one fused condgan.ops pass. "resize" is the old
name of "nearest".

`forward` accepts any height and width: the input is padded to a multiple of
2**depth and the output cropped back, so full-resolution, non-square images
translate directly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from .layers import init_weights
from .small_conv import Conv4x2, ConvT4x2

NORMS = ("batch", "instance", "none")
UPSAMPLING = ("transpose", "nearest", "bilinear")
UPSAMPLING_ALIASES = {"resize": "nearest"}  # the old name, kept so saved configs still build


def upsampling_mode(name: str) -> str:
    """The decoder's upsampling, old names resolved to the current ones."""
    mode = UPSAMPLING_ALIASES.get(name, name)
    if mode not in UPSAMPLING:
        raise ValueError(f"unknown upsampling {name!r}; choose one of {', '.join(UPSAMPLING)}")
    return mode


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple]:
    """Pad H and W up to a multiple, centred, by edge replication.

    Edge replication works for any amount of padding (reflection cannot pad by
    more than the image's size), and the same code runs with symbolic sizes, so
    an exported graph pads exactly as eager PyTorch does.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not _tracing() and not ph and not pw:
        return x, (0, 0, 0, 0)
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return F.pad(x, pad, mode="replicate"), pad


def crop_padding(x: torch.Tensor, pad: tuple) -> torch.Tensor:
    left, right, top, bottom = pad
    if not _tracing() and not any(pad):
        return x
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


class UNetGenerator(nn.Module):
    """U-Net with `depth` stride-2 levels (8 for 256x256 images, 7 for 128x128)."""

    def __init__(self, in_channels: int, out_channels: int, depth: int = 8, width: int = 64,
                 norm: str = "batch", dropout: bool = True, upsampling: str = "transpose"):
        super().__init__()
        if depth < 2:
            raise ValueError("a U-Net needs at least 2 levels")
        self.depth = depth
        self.upsampling = upsampling_mode(upsampling)
        widths = [min(width * 2 ** i, width * 8) for i in range(depth)]
        bias = norm != "batch"  # batch norm's shift makes a conv bias redundant
        self.down = nn.ModuleList()
        self.down_norm = nn.ModuleList()
        for i in range(depth):
            cin = in_channels if i == 0 else widths[i - 1]
            self.down.append(Conv4x2(cin, widths[i], bias=bias))
            inner = 0 < i < depth - 1
            self.down_norm.append(norm_layer(norm, widths[i]) if inner else nn.Identity())
        self.up = nn.ModuleList()
        self.up_norm = nn.ModuleList()
        self.up_drop = nn.ModuleList()
        for i in range(depth):
            cin = widths[i] if i == depth - 1 else 2 * widths[i]
            cout = out_channels if i == 0 else widths[i - 1]
            if self.upsampling == "transpose":
                self.up.append(ConvT4x2(cin, cout, bias=bias or i == 0))
            else:
                self.up.append(nn.Conv2d(cin, cout, 3, 1, 1, bias=bias or i == 0))
            self.up_norm.append(norm_layer(norm, cout) if i > 0 else nn.Identity())
            # dropout in the decoder blocks between the innermost and the first 16x-width one
            self.up_drop.append(nn.Dropout(0.5) if dropout and 4 <= i <= depth - 2 else nn.Identity())
        init_weights(self)

    def _up(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """ReLU, then decoder level i's 2x upsampling convolution."""
        if self.upsampling == "transpose":
            return self.up[i](F.relu(h))
        return self.up[i](ops.upsample2x_bias_leaky_relu(h, None, 0.0, 1.0, self.upsampling))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, pad = pad_to_multiple(x, 2 ** self.depth)
        h = self.down[0](x)
        skips = []
        for i in range(1, self.depth):
            a = ops.bias_leaky_relu(h, None, 0.2)
            skips.append(a)
            h = self.down_norm[i](self.down[i](a))
        for i in range(self.depth - 1, 0, -1):
            h = self.up_drop[i](self.up_norm[i](self._up(i, h)))
            h = torch.cat([skips[i - 1], h], 1)
        return crop_padding(torch.tanh(self._up(0, h)), pad)
