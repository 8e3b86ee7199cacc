"""pix2pix (Isola et al. 2017): paired image-to-image translation with a U-Net and a PatchGAN.

The presets are the paper's reference settings: unet_256, 70x70 PatchGAN,
batch norm, dropout, vanilla GAN loss + 100 x L1, Adam 2e-4 (beta1 0.5),
batch size 1, 100 epochs at a constant rate then 100 of linear decay to zero,
load 286 then random-crop 256 with horizontal flips, D's loss halved.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import losses
from ..config import TrainConfig, opt
from ..errors import CondganError
from ..nets.patchgan import PatchDiscriminator, PixelDiscriminator
from ..nets.resnet import ResnetGenerator
from ..nets.unet import NORMS, UNetGenerator
from .base import GANModel

GENERATORS = {"unet_256": ("unet", 8), "unet_128": ("unet", 7),
              "resnet_9blocks": ("resnet", 9), "resnet_6blocks": ("resnet", 6)}
GAN_LOSSES = {"vanilla": "ns", "lsgan": "lsgan", "hinge": "hinge"}
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass
class Pix2PixConfig(TrainConfig):
    model: str = opt("pix2pix", "model to train (see the registry in condgan.models)")
    data: str = opt("procedural-maps", "paired data: procedural-maps (generated offline), an official archive "
                    "(maps, facades, edges2shoes, edges2handbags, night2day, cityscapes) or a folder")
    epochs: int = opt(200, "passes over the training data (the last --decay-epochs decay the rate)",
                      resumable=True)
    batch_size: int = opt(1, "images per batch")
    lr: float = opt(2e-4, "learning rate of both optimizers")
    beta1: float = opt(0.5, "Adam beta1")
    lr_schedule: str = opt("linear", "learning-rate schedule", choices=["constant", "linear"])
    decay_epochs: int = opt(-1, "final epochs over which the rate decays linearly to 0 (-1: the second half "
                            "of --epochs, 100 of 200 by default)")
    direction: str = opt("AtoB", "translate A into B, or B into A", choices=["AtoB", "BtoA"])
    generator: str = opt("unet_256", "generator architecture (unet_256: 8 levels, unet_128: 7; or the "
                         "ResNet generator of CycleGAN)", choices=list(GENERATORS))
    unet_depth: int = opt(0, "U-Net levels, overriding the --generator preset (0: from --generator)")
    discriminator: str = opt("patch", "PatchGAN over --d-layers, or the 1x1 pixel discriminator",
                             choices=["patch", "pixel"])
    d_layers: int = opt(3, "stride-2 layers of the PatchGAN (3: 70x70 patches)")
    g_width: int = opt(64, "generator channels at the first level")
    d_width: int = opt(64, "discriminator channels at the first layer")
    norm: str = opt("batch", "normalisation in both nets", choices=list(NORMS))
    dropout: bool = opt(True, "dropout 0.5 in the inner decoder blocks of the U-Net")
    gan_loss: str = opt("vanilla", "adversarial loss", choices=list(GAN_LOSSES))
    l1_weight: float = opt(100.0, "weight of the L1 distance between output and target")
    load_size: int = opt(286, "resize images to this size before cropping")
    crop_size: int = opt(256, "training crop size (the size the nets see)")
    preprocess: str = opt("resize_and_crop", "training-time resizing and cropping", choices=list(PREPROCESS))
    flip: bool = opt(True, "random horizontal flips (the same for A and B)")
    val_images: int = opt(50, "fixed validation images scored (L1) after each epoch; best.pt keeps the best")
    sample_pairs: int = opt(4, "validation pairs shown in the per-epoch sample grid")
    procedural_train: int = opt(400, "pairs generated for --data procedural-maps (train split)")

    def validate(self) -> None:
        super().validate()
        if self.image_size:
            raise CondganError("pix2pix sizes are set with --load-size and --crop-size, not --image-size")
        for name in ("d_layers", "g_width", "d_width", "load_size", "crop_size", "procedural_train"):
            if getattr(self, name) <= 0:
                raise CondganError(f"--{name.replace('_', '-')} must be positive")
        if self.unet_depth and self.unet_depth < 2:
            raise CondganError("--unet-depth must be at least 2")
        if self.l1_weight < 0 or self.val_images < 0 or self.sample_pairs < 0:
            raise CondganError("--l1-weight, --val-images and --sample-pairs cannot be negative")
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.load_size < self.crop_size:
            raise CondganError(f"--load-size ({self.load_size}) must be at least --crop-size ({self.crop_size})")

def build_generator(cfg, cin: int, cout: int):
    """The generator named by cfg.generator (U-Net or ResNet), with the config's overrides."""
    kind, n = GENERATORS[cfg.generator]
    if kind == "resnet":
        return ResnetGenerator(cin, cout, getattr(cfg, "resnet_blocks", 0) or n, cfg.g_width, cfg.norm,
                               cfg.dropout, getattr(cfg, "upsampling", "transpose"))
    return UNetGenerator(cin, cout, getattr(cfg, "unet_depth", 0) or n, cfg.g_width, cfg.norm, cfg.dropout)


def build_discriminator(cfg, in_channels: int):
    if cfg.discriminator == "pixel":
        return PixelDiscriminator(in_channels, cfg.d_width, cfg.norm)
    return PatchDiscriminator(in_channels, cfg.d_width, cfg.d_layers, cfg.norm)


class Pix2Pix(GANModel):
    data_kind = "paired"
    # oneDNN's 4x4 stride-2 (transposed) convolutions ran 1.7x slower per step in channels-last on 2 CPU cores
    channels_last_on_cpu = False
    validation_metric = "val_l1"  # lower is better; the Trainer keeps best.pt by it

    def __init__(self, cfg: Pix2PixConfig, info):
        super().__init__(cfg, info)
        cin, cout = info.in_channels, info.channels
        self.G = build_generator(cfg, cin, cout)
        self.D = build_discriminator(cfg, cin + cout)
        self._fake = None

    def optimizers(self):
        return {"D": self.adam(self.D.parameters()), "G": self.adam(self.G.parameters())}

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

    def generator(self):
        return self.G

    @torch.no_grad()
    def translate(self, images: torch.Tensor) -> torch.Tensor:
        """Outputs in [-1, 1] for inputs in [-1, 1], any size, with the generator in eval mode."""
        was_training = self.G.training
        self.G.eval()
        out = self.G(images)
        self.G.train(was_training)
        return out

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


def as_rgb(x: torch.Tensor) -> torch.Tensor:
    """Images with 1 or 3 channels -> 3 (grey repeated); other counts show their first 3 (or first) channels."""
    if x.shape[1] == 3:
        return x
    if x.shape[1] == 1 or x.shape[1] == 2:
        return x[:, :1].expand(-1, 3, -1, -1)
    return x[:, :3]
