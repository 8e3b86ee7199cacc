"""ResNet generator for image-to-image translation (Johnson et al. 2016; CycleGAN, Zhu et al. 2017).

7x7 stem, two stride-2 3x3 downsamplings, residual blocks (reflection
padding, 3x3 conv, norm, ReLU, 3x3 conv, norm, plus the input), two 2x
upsamplings back, a 7x7 output convolution and tanh.

Upsampling is a 3x3 stride-2 transposed convolution ("transpose", the
reference) or "nearest"/"bilinear": 2x upsampling through condgan.ops
followed by a 3x3 convolution with zero padding 1, which avoids checkerboard
artifacts (Odena et al. 2016). Where a ReLU comes right before the upsampling
(the second level) both run as one fused op; its old slot holds an Identity,
so the state-dict keys are those of the unfused layout. "resize" is the old
name of "nearest" and builds the same layout.

`antialias` makes each stride-2 downsampling a stride-1 3x3 convolution,
norm, ReLU and a fixed binomial blur with stride 2 (BlurDownsample2x; Zhang
2019, as in CUT): features shift-stable under small input translations, for
4x the arithmetic in those two convolutions.

Any input size works: it is padded to a multiple of 4 and cropped back.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .layers import BlurDownsample2x, Upsample2x, init_weights
from .unet import UPSAMPLING, UPSAMPLING_ALIASES, crop_padding, norm_layer, pad_to_multiple, upsampling_mode

__all__ = ["ResidualBlock", "ResnetGenerator", "UPSAMPLING", "UPSAMPLING_ALIASES"]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str, dropout: bool):
        super().__init__()
        bias = norm != "batch"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels),
                  nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, blocks: int = 9, width: int = 64,
                 norm: str = "instance", dropout: bool = False, upsampling: str = "transpose",
                 antialias: bool = False):
        super().__init__()
        upsampling = upsampling_mode(upsampling)
        bias = norm != "batch"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias), norm_layer(norm, width),
                  nn.ReLU(True)]
        for i in range(2):
            c = width * 2 ** i
            if antialias:
                layers += [nn.Conv2d(c, 2 * c, 3, 1, 1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True),
                           BlurDownsample2x(2 * c)]
            else:
                layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True)]
        layers += [ResidualBlock(width * 4, norm, dropout) for _ in range(blocks)]
        for i in range(2):
            c = width * 2 ** (2 - i)
            if upsampling == "transpose":
                layers.append(nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias))
            else:
                fuse = isinstance(layers[-1], nn.ReLU)
                if fuse:  # the ReLU moves into the fused upsampling; an Identity keeps the indices
                    layers[-1] = nn.Identity()
                layers += [Upsample2x(upsampling, relu=fuse), nn.Conv2d(c, c // 2, 3, 1, 1, bias=bias)]
            layers += [norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x, taps=()):
        """The translated image; with `taps` (ascending indices into self.net) also the activations after
        those layers, as (image, [features]): a loss that compares the encoder's features of this very
        input (CUT's PatchNCE) reads them here instead of running the encoder a second time."""
        x, pad = pad_to_multiple(x, 4)
        if not taps:
            return crop_padding(self.net(x), pad)
        x, feats = _tapped(self.net, x, taps)
        return crop_padding(x, pad), feats

    def encode(self, x, taps) -> list:
        """The activations after each of `taps` (ascending indices into self.net), running the net only as
        far as the last of them; the input is padded to a multiple of 4 as forward() pads it."""
        x, _ = pad_to_multiple(x, 4)
        return _tapped(self.net[:taps[-1] + 1], x, taps)[1]


def _tapped(layers: nn.Sequential, x, taps):
    """Run `layers` on x; (output, [activation after each layer index in taps]). A tapped activation is
    never overwritten: an in-place ReLU right after a tap runs out of place."""
    feats = []
    for i, layer in enumerate(layers):
        if feats and i - 1 == taps[len(feats) - 1] and isinstance(layer, nn.ReLU) and layer.inplace:
            x = F.relu(x)
        else:
            x = layer(x)
        if i in taps:
            feats.append(x)
    return x, feats
