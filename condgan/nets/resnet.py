"""ResNet generator for image-to-image translation (Johnson et al. 2016; CycleGAN, Zhu et al. 2017).

7x7 stem, two stride-2 3x3 downsamplings, residual blocks (reflection
padding, 3x3 conv, norm, ReLU, 3x3 conv, norm, plus the input), two 2x
upsamplings back, a 7x7 output convolution and tanh. Upsampling is a 3x3
stride-2 transposed convolution (the reference) or `resize`: 2x nearest
upsampling through condgan.ops followed by a 3x3 convolution, which avoids
checkerboard artifacts (Odena et al. 2016).

Any input size works: it is padded to a multiple of 4 and cropped back.
"""
from __future__ import annotations

from torch import nn

from .layers import Upsample2x, init_weights
from .unet import crop_padding, norm_layer, pad_to_multiple

UPSAMPLING = ("transpose", "resize")


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
                 norm: str = "instance", dropout: bool = False, upsampling: str = "transpose"):
        super().__init__()
        bias = norm != "batch"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias), norm_layer(norm, width),
                  nn.ReLU(True)]
        for i in range(2):
            c = width * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True)]
        layers += [ResidualBlock(width * 4, norm, dropout) for _ in range(blocks)]
        for i in range(2):
            c = width * 2 ** (2 - i)
            if upsampling == "transpose":
                layers.append(nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias))
            elif upsampling == "resize":
                layers += [Upsample2x("nearest"), nn.Conv2d(c, c // 2, 3, 1, 1, bias=bias)]
            else:
                raise ValueError(f"unknown upsampling {upsampling!r}; choose one of {', '.join(UPSAMPLING)}")
            layers += [norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x):
        x, pad = pad_to_multiple(x, 4)
        return crop_padding(self.net(x), pad)
