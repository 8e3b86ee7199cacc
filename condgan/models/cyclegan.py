"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B.

Two generators (G_A: A -> B, G_B: B -> A) and two 70x70 PatchGANs (D_A judges
B-domain images, D_B judges A-domain images). Presets are the reference
settings: resnet_9blocks with instance norm, LSGAN loss, cycle weight 10 per
direction, identity weight 0.5 x the cycle weight, a pool of 50 earlier fakes
per discriminator, Adam 2e-4 (beta1 0.5), batch 1, 200 epochs with linear
decay over the second half, load 286 / crop 256 with flips.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..config import opt
from ..errors import CondganError
from ..nets.unet import NORMS
from ..data.info import UNPAIRED
from .translation import (GAN_LOSSES, GENERATORS, TranslationConfig, TranslationModel, as_rgb,
                          build_discriminator, build_generator)


@dataclass
class CycleGANConfig(TranslationConfig):
    model: str = opt("cyclegan", "model to train (see the registry in condgan.models)")
    data: str = opt("procedural-maps", "unpaired data: procedural-maps (generated offline), an official archive "
                    "(horse2zebra, monet2photo, ...) or a folder with trainA/ and trainB/")
    direction: str = opt("AtoB", "the direction `condgan.translate` uses unless told otherwise",
                         choices=["AtoB", "BtoA"], resumable=True)
    generator: str = opt("resnet_9blocks", "generator architecture", choices=list(GENERATORS))
    norm: str = opt("instance", "normalisation in all nets", choices=list(NORMS))
    dropout: bool = opt(False, "dropout 0.5 in the generators")
    gan_loss: str = opt("lsgan", "adversarial loss", choices=list(GAN_LOSSES))
    cycle_weight: float = opt(10.0, "weight of each cycle-consistency L1 (A->B->A and B->A->B)", at_least=0)
    identity_weight: float = opt(0.5, "identity loss weight as a fraction of --cycle-weight (0: off)", at_least=0)
    pool_size: int = opt(50, "earlier fakes kept per discriminator (0: no pool)", at_least=0, at_most=10_000)
    sample_pairs: int = opt(3, "test images per domain in the per-epoch sample grid")

    def validate(self) -> None:
        super().validate()
        if self.pool_size and self.preprocess not in ("resize_and_crop", "crop", "scale_width_and_crop"):
            raise CondganError("the image pool needs one training size: use --preprocess resize_and_crop, crop "
                               "or scale_width_and_crop, or --pool-size 0")


class ImagePool(nn.Module):
    """The last `size` generated images (Shrivastava et al. 2017), kept per sample as buffers (checkpointed).

    While filling, every image goes in and comes back out. Once full, each
    image is, with probability 1/2, swapped with a random stored one (the stored
    one is returned), otherwise returned as is.
    """

    def __init__(self, size: int, channels: int, height: int, width: int):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, channels, height, width))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        if images.shape[1:] != self.images.shape[1:]:
            raise CondganError(f"the image pool holds {tuple(self.images.shape[1:])} images but got "
                               f"{tuple(images.shape[1:])}; train with one --crop-size")
        out = []
        for img in images:
            n = int(self.count)
            if n < self.size:
                self.images[n] = img
                self.count += 1
                out.append(img)
            elif torch.rand(()) < 0.5:
                k = int(torch.randint(self.size, ()))
                out.append(self.images[k].clone())
                self.images[k] = img
            else:
                out.append(img)
        return torch.stack(out).to(images.dtype)


class CycleGAN(TranslationModel):
    config_class = CycleGANConfig
    data_kind = UNPAIRED
    smoke_flags = ("--crop-size", "32", "--load-size", "36", "--resnet-blocks", "2", "--g-width", "4",
                   "--d-width", "4", "--d-layers", "2", "--pool-size", "3", "--sample-pairs", "2")
    bf16_on_cpu = True  # BENCHMARKS.md: AMX CPUs
    channels_last_on_cpu = False  # 0.83-0.89x per step on CPU, fp32 and bf16 alike (BENCHMARKS.md)
    step_phase = "G"

    def __init__(self, cfg: CycleGANConfig, info):
        super().__init__(cfg, info)
        ca, cb = info.in_channels, info.channels
        self.G_A, self.G_B = build_generator(cfg, ca, cb), build_generator(cfg, cb, ca)
        self.D_A, self.D_B = build_discriminator(cfg, cb), build_discriminator(cfg, ca)
        h = w = cfg.crop_size
        self.pool_A = ImagePool(cfg.pool_size, cb, h, w)  # fakes of domain B, for D_A
        self.pool_B = ImagePool(cfg.pool_size, ca, h, w)  # fakes of domain A, for D_B
        self._fakes = None
        if cfg.identity_weight > 0 and ca != cb:
            raise CondganError(f"the identity loss needs the same channel count in both domains (A has {ca}, "
                               f"B has {cb}); use --identity-weight 0")

    def optimizers(self):
        return {"G": self.adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters())),
                "D": self.adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()))}

    def phases(self, batch_index: int):
        return ("G", "D")

    def discriminators(self):
        return {"D_A": self.D_A, "D_B": self.D_B}

    def step(self, phase: str, batch: dict) -> dict:
        c, real_a, real_b = self.cfg, batch["A"], batch["B"]
        kind = GAN_LOSSES[c.gan_loss]
        if phase == "G":
            for d in (self.D_A, self.D_B):
                self.set_requires_grad(d, False)
            fake_b, fake_a = self.G_A(real_a), self.G_B(real_b)
            rec_a, rec_b = self.G_B(fake_b), self.G_A(fake_a)
            gan_a, gan_b = losses.g_loss(kind, self.D_A(fake_b)), losses.g_loss(kind, self.D_B(fake_a))
            cyc_a, cyc_b = F.l1_loss(rec_a.float(), real_a.float()), F.l1_loss(rec_b.float(), real_b.float())
            loss = gan_a + gan_b + c.cycle_weight * (cyc_a + cyc_b)
            out = {"g_gan_a": gan_a.detach(), "g_gan_b": gan_b.detach(), "cycle_a": cyc_a.detach(),
                   "cycle_b": cyc_b.detach()}
            if c.identity_weight > 0:  # G_A should leave B images alone, and G_B A images
                idt_a = F.l1_loss(self.G_A(real_b).float(), real_b.float())
                idt_b = F.l1_loss(self.G_B(real_a).float(), real_a.float())
                loss = loss + c.identity_weight * c.cycle_weight * (idt_a + idt_b)
                out.update(idt_a=idt_a.detach(), idt_b=idt_b.detach())
            self._fakes = (fake_b.detach(), fake_a.detach())
            return {"loss": loss, **out}
        if phase == "D":
            fake_b, fake_a = self._fakes
            self._fakes = None
            for d in (self.D_A, self.D_B):
                self.set_requires_grad(d, True)
            fake_b, fake_a = self.pool_A.query(fake_b), self.pool_B.query(fake_a)
            d_a = 0.5 * losses.d_loss(kind, self.D_A(real_b), self.D_A(fake_b))
            d_b = 0.5 * losses.d_loss(kind, self.D_B(real_a), self.D_B(fake_a))
            return {"loss": d_a + d_b, "d_a": d_a.detach(), "d_b": d_b.detach()}
        raise ValueError(f"unknown phase {phase!r}")

    def directions(self) -> tuple[str, ...]:
        """Both ways, the run's --direction first (the default of translate and export)."""
        return (self.cfg.direction, "BtoA" if self.cfg.direction == "AtoB" else "AtoB")

    def generator(self, direction: str | None = None):
        return self.G_A if (direction or self.cfg.direction) == "AtoB" else self.G_B

    def io_channels(self, direction: str | None = None) -> tuple[int, int]:
        ca, cb = self.info.in_channels, self.info.channels
        return (ca, cb) if self.resolve_direction(direction) == "AtoB" else (cb, ca)

    def evaluation_extras(self, batches) -> dict:
        return self.cycle_errors(batches)

    @torch.no_grad()
    def cycle_errors(self, batches) -> dict:
        """Mean L1 of A -> B -> A and B -> A -> B reconstructions (in [-1, 1] units)."""
        sums, n = {"cycle_l1_a": 0.0, "cycle_l1_b": 0.0}, 0
        for b in batches:
            a, bb = b["A"].to(self.device), b["B"].to(self.device)
            rec_a = self.translate(self.translate(a, "AtoB"), "BtoA")
            rec_b = self.translate(self.translate(bb, "BtoA"), "AtoB")
            sums["cycle_l1_a"] += (rec_a - a).abs().flatten(1).mean(1).sum().item()
            sums["cycle_l1_b"] += (rec_b - bb).abs().flatten(1).mean(1).sum().item()
            n += a.shape[0]
        return {k: v / max(n, 1) for k, v in sums.items()} | {"n": n}

    def sample_grid(self, fixed=None):
        """Rows: real A | A->B | A->B->A, then real B | B->A | B->A->B."""
        if fixed is None:
            raise CondganError("CycleGAN sample grids need test images")
        a, b = fixed["A"].to(self.device), fixed["B"].to(self.device)
        fb, fa = self.translate(a, "AtoB"), self.translate(b, "BtoA")
        ra, rb = self.translate(fb, "BtoA"), self.translate(fa, "AtoB")
        rows = torch.cat([torch.stack([as_rgb(t.float()) for t in (a, fb, ra)], 1),
                          torch.stack([as_rgb(t.float()) for t in (b, fa, rb)], 1)])
        return rows.flatten(0, 1), 3
