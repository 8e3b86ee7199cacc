"""PatchGAN discriminators (pix2pix, Isola et al.): one real/fake logit per overlapping image patch."""
from __future__ import annotations

from torch import nn

from .. import ops
from .layers import BiasLeakyReLU, init_weights
from .unet import norm_layer


class Act(nn.Module):
    """Leaky ReLU 0.2 through the fused op, after a normalisation (which already carries the shift)."""

    def forward(self, x):
        return ops.bias_leaky_relu(x, None, 0.2)


class PatchDiscriminator(nn.Module):
    """`layers` stride-2 4x4 convolutions, then two stride-1 ones.

    layers=3 sees 70x70 patches (the pix2pix default); 1 sees 16x16, 5 sees 286x286.
    Leaky ReLU 0.2 throughout; normalisation on all but the first and last convolution.
    """

    def __init__(self, in_channels: int, width: int = 64, layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = norm != "batch"
        seq: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1, bias=False), BiasLeakyReLU(width)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(width * prev, width * mult, 4, 2 if n < layers else 1, 1, bias=bias),
                    norm_layer(norm, width * mult), Act()]
        seq.append(nn.Conv2d(width * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*seq)
        init_weights(self)

    def forward(self, x):
        return self.net(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: classifies every pixel on its own (colour statistics, no structure)."""

    def __init__(self, in_channels: int, width: int = 64, norm: str = "batch"):
        super().__init__()
        bias = norm != "batch"
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), BiasLeakyReLU(width),
            nn.Conv2d(width, 2 * width, 1, bias=bias), norm_layer(norm, 2 * width), Act(),
            nn.Conv2d(2 * width, 1, 1, bias=bias))
        init_weights(self)

    def forward(self, x):
        return self.net(x)



def receptive_field(layers: int) -> int:
    """Side of the input patch one output logit of PatchDiscriminator(layers) sees."""
    rf = 1
    for stride in [1, 1] + [2] * layers:  # walking back from the output: two stride-1 convs, then stride-2 ones
        rf = (rf - 1) * stride + 4
    return rf
