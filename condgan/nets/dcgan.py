"""DCGAN-style class-conditional generator and discriminator for any image size.

The generator starts from a small base grid (e.g. 7x7 for 28x28 images) and
doubles the resolution k times with "upsample, then 3x3 conv" blocks, which
avoid the checkerboard artifacts of strided transposed convolutions. The
discriminator mirrors it with stride-2 convolutions and is conditioned on the
label by projection (Miyato & Koyama 2018) or by concatenating one-hot maps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import BiasLeakyReLU, ConditionalBatchNorm2d, Upsample2x, conv, init_weights, maybe_sn


def resolution_plan(height: int, width: int, min_base: int = 4, max_levels: int = 6):
    """Halve (height, width) while both stay even and at least `min_base`: -> (base_h, base_w, levels)."""
    levels = 0
    while (levels < max_levels and height % 2 == 0 and width % 2 == 0
           and min(height, width) // 2 >= min_base):
        height, width, levels = height // 2, width // 2, levels + 1
    return height, width, levels


def level_channels(base_width: int, levels: int, max_channels: int) -> list[int]:
    """Channels at each resolution, coarsest first: base_width * 2^levels ... base_width."""
    return [min(base_width * 2 ** (levels - i), max_channels) for i in range(levels + 1)]


class _GBlock(nn.Module):
    """Upsample 2x, 3x3 conv, (class-conditional) BatchNorm, bias + leaky ReLU."""

    def __init__(self, cin: int, cout: int, num_classes: int, conditional: bool):
        super().__init__()
        self.up = Upsample2x("nearest")
        self.conv = conv(cin, cout, 3)
        self.norm = ConditionalBatchNorm2d(cout, num_classes) if conditional else nn.BatchNorm2d(cout, affine=False)
        self.act = BiasLeakyReLU(cout)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.up(x))
        h = self.norm(h, label) if isinstance(self.norm, ConditionalBatchNorm2d) else self.norm(h)
        return self.act(h)


class Generator(nn.Module):
    """(z, label) -> image in [-1, 1] of shape (channels, height, width).

    The label enters as a learned embedding concatenated to z and, with
    cond="cbn" (default), also through class-conditional BatchNorm in every block.
    """

    def __init__(self, latent_dim: int, num_classes: int, channels: int, height: int, width: int,
                 base_width: int = 32, embed_dim: int = 32, max_channels: int = 512, cond: str = "cbn"):
        super().__init__()
        if cond not in ("cbn", "input"):
            raise ValueError(f"cond must be 'cbn' or 'input', got {cond!r}")
        bh, bw, levels = resolution_plan(height, width)
        chans = level_channels(base_width, levels, max_channels)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.base_shape = (chans[0], bh, bw)
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.fc = nn.Linear(latent_dim + embed_dim, chans[0] * bh * bw, bias=False)
        self.fc_norm = nn.BatchNorm2d(chans[0], affine=False)
        self.fc_act = BiasLeakyReLU(chans[0])
        self.blocks = nn.ModuleList(_GBlock(cin, cout, num_classes, cond == "cbn")
                                    for cin, cout in zip(chans[:-1], chans[1:]))
        self.to_image = conv(chans[-1], channels, 3, bias=True)
        init_weights(self)

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(label)], dim=1)).view(-1, *self.base_shape)
        h = self.fc_act(self.fc_norm(h))
        for block in self.blocks:
            h = block(h, label)
        return torch.tanh(self.to_image(h))


class Discriminator(nn.Module):
    """(image, label) -> one realness logit per image."""

    def __init__(self, num_classes: int, channels: int, height: int, width: int, base_width: int = 32,
                 cond: str = "projection", spectral_norm: bool = False, max_channels: int = 512,
                 aux_classifier: bool = False):
        super().__init__()
        if cond not in ("projection", "concat"):
            raise ValueError(f"cond must be 'projection' or 'concat', got {cond!r}")
        _, _, levels = resolution_plan(height, width)
        chans = level_channels(base_width, levels, max_channels)[::-1]  # finest first
        self.cond, self.num_classes = cond, num_classes
        cin = channels + (num_classes if cond == "concat" else 0)
        layers = [conv(cin, chans[0], 3, sn=spectral_norm), BiasLeakyReLU(chans[0])]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [conv(c_in, c_out, 4, stride=2, pad=1, sn=spectral_norm), BiasLeakyReLU(c_out)]
        layers += [conv(chans[-1], chans[-1], 3, sn=spectral_norm), BiasLeakyReLU(chans[-1])]
        self.body = nn.Sequential(*layers)
        self.linear = maybe_sn(nn.Linear(chans[-1], 1), spectral_norm)
        self.embed = maybe_sn(nn.Embedding(num_classes, chans[-1]), spectral_norm) if cond == "projection" else None
        # AC-GAN style head (Odena et al. 2017): class logits from the same features
        self.classify = nn.Linear(chans[-1], num_classes) if aux_classifier else None
        init_weights(self)

    def forward(self, x: torch.Tensor, label: torch.Tensor, with_classes: bool = False):
        """Realness logits; with `with_classes`, also the auxiliary head's class logits."""
        if self.cond == "concat":
            maps = F.one_hot(label, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[-2:])], dim=1)
        h = self.body(x).sum(dim=(2, 3))  # sum pooling keeps the scale of spatial evidence
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(label) * h).sum(dim=1)
        if with_classes:
            if self.classify is None:
                raise ValueError("this discriminator was built without aux_classifier")
            return out, self.classify(h)
        return out
