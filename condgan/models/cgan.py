"""Class-conditional GAN (Mirza & Osindero) with DCGAN-style nets and a projection discriminator."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from .. import losses
from ..config import TrainConfig, opt
from ..nets.dcgan import Discriminator, Generator
from .base import SAMPLE, GANModel


@dataclass
class CGANConfig(TrainConfig):
    epochs: int = opt(8, "passes over the training data", resumable=True)
    batch_size: int = opt(64, "images per batch")
    lr: float = opt(6e-4, "learning rate of both optimizers")
    beta1: float = opt(0.0, "Adam beta1")
    beta2: float = opt(0.99, "Adam beta2")
    latent_dim: int = opt(64, "size of the noise vector z", above=0, at_most=4096)
    embed_dim: int = opt(32, "size of the generator's label embedding", above=0, at_most=4096)
    g_width: int = opt(32, "generator channels at full resolution (doubling per halving)", above=0,
                       at_most=1024)
    d_width: int = opt(32, "discriminator channels at full resolution (doubling per halving)", above=0,
                       at_most=1024)
    g_cond: str = opt("cbn", "how the generator sees the label: class-conditional BatchNorm in every block, "
                      "or only concatenated to z", choices=["cbn", "input"])
    d_cond: str = opt("projection", "how the discriminator sees the label", choices=["projection", "concat"])
    spectral_norm: bool = opt(False, "spectral normalisation in the discriminator")
    loss: str = opt("hinge", "adversarial loss", choices=list(losses.KINDS))
    aux_weight: float = opt(1.0, "weight of an auxiliary classification loss (AC-GAN head on D, trained on "
                            "real images; G is rewarded when D classifies its images as the requested label; 0: off)",
                            at_least=0)
    gp_weight: float = opt(10.0, "gradient-penalty weight for --loss wgan-gp", at_least=0)
    label_smoothing: float = opt(0.0, "one-sided label smoothing: real target 1 - this (ns, lsgan)", at_least=0,
                                 below=0.5)
    d_steps: int = opt(1, "discriminator steps per generator step", above=0, at_most=100)
    ema_decay: float = opt(0.999, "decay of the generator's EMA copy used for sampling (0: no EMA)", at_least=0,
                           below=1)
    ema_warmup: float = opt(10.0, "EMA warm-up: after n updates the decay is min(--ema-decay, (1 + n) / (this + n)), "
                            "so the average spans about the last n / (this - 1) steps early on (larger: shorter)",
                            above=1, at_most=1e6)
    samples_per_class: int = opt(10, "columns of the per-epoch sample grid (one row per class)", above=0,
                                 at_most=100)


def ema_with_warmup(decay: float, warmup: float = 10.0):
    """EMA update whose decay ramps up as min(decay, (1 + n) / (warmup + n)) over the n updates so far.

    A fixed 0.999 would keep the EMA close to the random initial weights for the
    first few thousand steps, so short runs would sample from noise. With the ramp the
    average weighs the last ~n / (warmup - 1) steps until the decay reaches its cap.
    """

    @torch.no_grad()
    def update(averaged: list, current: list, num_averaged) -> None:
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (warmup + n))
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1.0 - d)
        for a, c in zip(averaged, current):  # integer buffers (BatchNorm's step counter) are copied
            if not a.is_floating_point():
                a.copy_(c)

    return update


class CGAN(GANModel):
    config_class = CGANConfig
    task = SAMPLE
    smoke_flags = ("--g-width", "8", "--d-width", "8", "--latent-dim", "8", "--embed-dim", "4", "--batch-size", "8",
                   "--samples-per-class", "2")
    # The default recipe's quality (BENCHMARKS.md) was measured with the for-loop Adam; the fused kernel
    # rounds differently, and one 4-epoch run with it ended at FID ratio 3.14x instead of 2.84x. The
    # nets are small (1M weights), so the fused kernel buys no measurable time here.
    fused_adam = False
    # bf16 learns as well (BENCHMARKS.md: the default job on an AVX-512 BF16 CPU, seeds 0 and 1, 2.42x and
    # 2.44x the floor against 3.02x and 2.17x in fp32, 99.57 % accuracy) and trains 1.5x faster there, so
    # the probe may pick it on CPUs with bf16 instructions; elsewhere it is never timed.
    bf16_on_cpu = True

    def __init__(self, cfg: CGANConfig, info):
        super().__init__(cfg, info)
        c = cfg
        self.G = Generator(c.latent_dim, info.num_classes, info.channels, info.height, info.width,
                           base_width=c.g_width, embed_dim=c.embed_dim, cond=c.g_cond)
        self.D = Discriminator(info.num_classes, info.channels, info.height, info.width, base_width=c.d_width,
                               cond=c.d_cond, spectral_norm=c.spectral_norm, aux_classifier=c.aux_weight > 0)
        self.ema = (AveragedModel(self.G, multi_avg_fn=ema_with_warmup(c.ema_decay, c.ema_warmup), use_buffers=True)
                    if c.ema_decay > 0 else None)
        if self.ema is not None:
            self.ema.requires_grad_(False)
        # fixed noise for the per-epoch grid: one column per noise vector, one row per class
        g = torch.Generator().manual_seed(1234)
        self.register_buffer("grid_z", torch.randn(c.samples_per_class, c.latent_dim, generator=g),
                             persistent=False)
        self._fake = None

    def optimizers(self):
        return {"D": self.adam(self.D.parameters()), "G": self.adam(self.G.parameters())}

    def discriminators(self):
        return {"D": self.D}

    def phases(self, batch_index: int):
        # k discriminator steps, each on its own batch, then one generator step
        return ("D", "G") if (batch_index + 1) % self.cfg.d_steps == 0 else ("D",)

    def _generate(self, batch):
        y = batch["label"]
        z = torch.randn(y.shape[0], self.cfg.latent_dim, device=y.device)
        return self.G(z, y)

    def step(self, phase: str, batch: dict) -> dict:
        c, real, y = self.cfg, batch["image"], batch["label"]
        if phase == "D":
            # when a G step follows on this batch, keep the graph so G reuses this forward pass
            with torch.set_grad_enabled(c.d_steps == 1):
                self._fake = self._generate(batch)
            self.set_requires_grad(self.D, True)
            fake = self._fake.detach()
            aux = c.aux_weight > 0
            d_real, d_fake = self.D(real, y, with_classes=aux), self.D(fake, y)
            if aux:
                d_real, cls_real = d_real
            loss = losses.d_loss(c.loss, d_real, d_fake, real_target=1.0 - c.label_smoothing)
            out = {"d_loss": loss.detach()}
            if aux:  # the head learns classes from real images only, so G cannot teach it shortcuts
                cls = F.cross_entropy(cls_real.float(), y)
                loss = loss + c.aux_weight * cls
                out["d_cls"] = cls.detach()
            if c.loss == "wgan-gp":
                gp = losses.gradient_penalty(self.D, real, fake, y)
                loss = loss + c.gp_weight * gp
                out["gp"] = gp.detach()
            out.update(loss=loss, d_real=d_real.detach().float().mean(), d_fake=d_fake.detach().float().mean())
            return out
        if phase == "G":
            fake = self._fake if self._fake is not None and self._fake.requires_grad else self._generate(batch)
            self._fake = None
            self.set_requires_grad(self.D, False)  # no weight gradients for D in the G phase
            if c.aux_weight > 0:
                d_fake, cls_fake = self.D(fake, y, with_classes=True)
                adv, cls = losses.g_loss(c.loss, d_fake), F.cross_entropy(cls_fake.float(), y)
                return {"loss": adv + c.aux_weight * cls, "g_loss": adv.detach(), "g_cls": cls.detach()}
            loss = losses.g_loss(c.loss, self.D(fake, y))
            return {"loss": loss, "g_loss": loss.detach()}
        raise ValueError(f"unknown phase {phase!r}")

    def after_step(self, phase: str) -> None:
        if phase == "G" and self.ema is not None:
            self.ema.update_parameters(self.G)

    def generator(self, direction=None):
        return self.ema.module if self.ema is not None else self.G

    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Images for the given labels with the sampling generator, in eval mode."""
        g = self.generator()
        was_training = g.training
        g.eval()
        if z is None:
            z = torch.randn(labels.shape[0], self.cfg.latent_dim, device=labels.device)
        out = g(z.to(labels.device), labels)
        g.train(was_training)
        return out

    def sample_grid(self, fixed=None):
        n, k = self.cfg.samples_per_class, self.info.num_classes
        labels = torch.arange(k, device=self.device).repeat_interleave(n)
        return self.generate(labels, self.grid_z.repeat(k, 1)), n
