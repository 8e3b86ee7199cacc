"""pix2pix (Isola et al. 2017): paired image-to-image translation with a U-Net and a PatchGAN.

The presets are the paper's reference settings: unet_256, 70x70 PatchGAN,
batch norm, dropout, vanilla GAN loss + 100 x L1, Adam 2e-4 (beta1 0.5),
batch size 1, 100 epochs at a constant rate then 100 of linear decay to zero,
load 286 then random-crop 256 with horizontal flips, D's loss halved.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import losses
from ..config import opt
from ..errors import CondganError
from .translation import (GAN_LOSSES, TranslationConfig, TranslationModel, as_rgb, build_discriminator,
                          build_generator)


@dataclass
class Pix2PixConfig(TranslationConfig):
    model: str = opt("pix2pix", "model to train (see the registry in condgan.models)")
    data: str = opt("procedural-maps", "paired data: procedural-maps (generated offline), an official archive "
                    "(maps, facades, edges2shoes, edges2handbags, night2day, cityscapes) or a folder")
    l1_weight: float = opt(100.0, "weight of the L1 distance between output and target", at_least=0)
    val_images: int = opt(50, "fixed validation images scored (L1) after each epoch; best.pt keeps the best",
                          at_least=0)
    procedural_train: int = opt(400, "pairs generated for --data procedural-maps (train split)", above=0,
                                at_most=100_000)


class Pix2Pix(TranslationModel):
    config_class = Pix2PixConfig
    smoke_flags = ("--procedural-train", "4", "--crop-size", "32", "--load-size", "36", "--unet-depth", "5",
                   "--g-width", "4", "--d-width", "4", "--val-images", "2", "--sample-pairs", "2")
    # oneDNN's 4x4 stride-2 (transposed) convolutions ran 1.7x slower per step in channels-last on 2 CPU cores
    channels_last_on_cpu = False
    bf16_on_cpu = True  # BENCHMARKS.md: AMX CPUs
    validation_metric = "val_l1"  # lower is better; the Trainer keeps best.pt by it

    def __init__(self, cfg: Pix2PixConfig, info):
        super().__init__(cfg, info)
        cin, cout = info.in_channels, info.channels
        self.G = build_generator(cfg, cin, cout)
        self.D = build_discriminator(cfg, cin + cout)
        self._fake = None

    def optimizers(self):
        return {"D": self.adam(self.D.parameters()), "G": self.adam(self.G.parameters())}

    def discriminators(self):
        return {"D": self.D}

    def discriminator_channel_groups(self, name):
        return (self.info.in_channels, self.info.channels)  # D judges input | output

    def step(self, phase: str, batch: dict) -> dict:
        c, src, tgt = self.cfg, batch["input"], batch["target"]
        kind = GAN_LOSSES[c.gan_loss]
        if phase == "D":
            self._fake = self.G(src)  # kept, with its graph, for the G phase on the same batch
            self.set_requires_grad(self.D, True)
            d_fake = self.D(torch.cat([src, self._fake.detach()], 1))
            d_real = self.D(torch.cat([src, tgt], 1))
            loss = 0.5 * losses.d_loss(kind, d_real, d_fake)
            return {"loss": loss, "d_loss": loss.detach(), "d_real": d_real.detach().float().mean(),
                    "d_fake": d_fake.detach().float().mean()}
        if phase == "G":
            fake = self._fake if self._fake is not None else self.G(src)
            self._fake = None
            self.set_requires_grad(self.D, False)
            adv = losses.g_loss(kind, self.D(torch.cat([src, fake], 1)))
            l1 = F.l1_loss(fake.float(), tgt.float())
            return {"loss": adv + c.l1_weight * l1, "g_gan": adv.detach(), "g_l1": l1.detach()}
        raise ValueError(f"unknown phase {phase!r}")

    @classmethod
    def data_options(cls, cfg):
        return dataclasses.replace(super().data_options(cfg), procedural_pairs=cfg.procedural_train)

    def validation_items(self) -> int:
        return self.cfg.val_images

    def generator(self, direction=None):
        return self.G

    @torch.no_grad()
    def validation(self, batches) -> dict:
        """Mean L1 (in [-1, 1] units) between translations and targets over the validation batches."""
        total, n = 0.0, 0
        for b in batches:
            out = self.translate(b["input"].to(self.device))
            total += (out.float() - b["target"].to(self.device).float()).abs().flatten(1).mean(1).sum().item()
            n += out.shape[0]
        return {"val_l1": total / max(n, 1)}

    def sample_grid(self, fixed=None):
        """Rows of input | output | target for fixed validation pairs."""
        if fixed is None:
            raise CondganError("pix2pix sample grids need validation pairs")
        src, tgt = fixed["input"].to(self.device), fixed["target"].to(self.device)
        out = self.translate(src)
        rows = [as_rgb(t.float()) for t in (src, out, tgt)]
        return torch.stack(rows, 1).flatten(0, 1), 3
