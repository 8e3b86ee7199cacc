"""What translation models share: the config, the model base class, generator/discriminator builders, grids."""
from __future__ import annotations

import typing
from dataclasses import dataclass

import torch

from ..config import MAX_IMAGE_SIZE, TrainConfig, opt
from ..data.info import PAIRED, DataOptions
from ..errors import CondganError
from ..nets.patchgan import PatchDiscriminator, PixelDiscriminator
from ..nets.resnet import UPSAMPLING, UPSAMPLING_ALIASES, ResnetGenerator
from ..nets.unet import NORMS, UNetGenerator
from .base import TRANSLATE, GANModel

GENERATORS = {"unet_256": ("unet", 8), "unet_128": ("unet", 7),
              "resnet_9blocks": ("resnet", 9), "resnet_6blocks": ("resnet", 6)}
GAN_LOSSES = {"vanilla": "ns", "lsgan": "lsgan", "hinge": "hinge"}
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass
class TranslationConfig(TrainConfig):
    """Settings every translation model honours (defaults: the pix2pix reference; models re-declare theirs)."""

    epochs: int = opt(200, "passes over the training data (the last --decay-epochs decay the rate)",
                      resumable=True)
    batch_size: int = opt(1, "images per batch")
    lr: float = opt(2e-4, "learning rate of both optimizers")
    beta1: float = opt(0.5, "Adam beta1")
    lr_schedule: str = opt("linear", "learning-rate schedule", choices=["constant", "linear"])
    decay_epochs: int = opt(-1, "final epochs over which the rate decays linearly to 0 (-1: the second half "
                            "of --epochs, 100 of 200 by default)")
    direction: str = opt("AtoB", "translate A into B, or B into A", choices=["AtoB", "BtoA"])
    generator: str = opt("unet_256", "generator architecture (unet_256: 8 levels, unet_128: 7; or a ResNet "
                         "generator)", choices=list(GENERATORS))
    unet_depth: int = opt(0, "U-Net levels, overriding a unet --generator preset (0: from --generator)",
                          at_least=0, at_most=12)
    resnet_blocks: int = opt(0, "residual blocks, overriding a resnet --generator preset (0: from --generator)",
                             at_least=0, at_most=64)
    upsampling: str = opt("transpose", "generator decoder (U-Net and ResNet): transposed convolutions "
                          "(reference), or 2x nearest or bilinear upsampling + 3x3 conv (no checkerboard "
                          "artifacts); resize (= nearest) is the old name", choices=[*UPSAMPLING, *UPSAMPLING_ALIASES])
    antialias: bool = opt(False, "ResNet generator: anti-aliased downsampling (stride-1 conv, then a fixed 3x3 "
                          "blur with stride 2; Zhang 2019)")
    discriminator: str = opt("patch", "PatchGAN over --d-layers, or the 1x1 pixel discriminator",
                             choices=["patch", "pixel"])
    d_layers: int = opt(3, "stride-2 layers of the PatchGAN (3: 70x70 patches)", above=0, at_most=10)
    g_width: int = opt(64, "generator channels at the first level", above=0, at_most=1024)
    d_width: int = opt(64, "discriminator channels at the first layer", above=0, at_most=1024)
    norm: str = opt("batch", "normalisation in all nets", choices=list(NORMS))
    dropout: bool = opt(True, "dropout 0.5 in the generator (U-Net: its inner decoder blocks)")
    gan_loss: str = opt("vanilla", "adversarial loss", choices=list(GAN_LOSSES))
    load_size: int = opt(286, "resize images to this size before cropping", above=0, at_most=MAX_IMAGE_SIZE)
    crop_size: int = opt(256, "training crop size (the size the nets see)", above=0, at_most=MAX_IMAGE_SIZE)
    preprocess: str = opt("resize_and_crop", "training-time resizing and cropping", choices=list(PREPROCESS))
    flip: bool = opt(True, "random horizontal flips")
    sample_pairs: int = opt(4, "validation/test images shown in the per-epoch sample grid", at_least=0,
                            at_most=64)

    #: --preset small-data: what won on a few hundred real photos at a fixed CPU budget (BENCHMARKS.md,
    #: "Small data"); every model built on this config inherits it
    PRESETS: typing.ClassVar[dict[str, dict]] = {
        "small-data": {"diffaug": "color,translation,cutout", "upsampling": "nearest"},
    }

    def validate(self) -> None:
        super().validate()
        if self.image_size:
            raise CondganError(f"{self.model} sizes are set with --load-size and --crop-size, not --image-size")
        if self.unet_depth == 1:
            raise CondganError("--unet-depth must be at least 2")
        if self.antialias and GENERATORS[self.generator][0] != "resnet":
            raise CondganError(f"--antialias works with the ResNet generators only, not --generator {self.generator}")
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.load_size < self.crop_size:
            raise CondganError(f"--load-size ({self.load_size}) must be at least --crop-size ({self.crop_size})")


class TranslationModel(GANModel):
    """A model that translates images: its data options, directions and sample-grid inputs come from the
    translation config."""

    data_kind = PAIRED
    task = TRANSLATE
    uses_validation_data = True

    @classmethod
    def data_options(cls, cfg) -> DataOptions:
        return DataOptions(data=cfg.data, data_root=cfg.data_root, progress=cfg.progress, direction=cfg.direction,
                           load_size=cfg.load_size, crop_size=cfg.crop_size, preprocess=cfg.preprocess,
                           flip=cfg.flip)

    def directions(self) -> tuple[str, ...]:
        return (self.cfg.direction,)

    def shown_items(self) -> int:
        return self.cfg.sample_pairs


def build_generator(cfg: TranslationConfig, cin: int, cout: int):
    """The generator named by cfg.generator (U-Net or ResNet), with the config's overrides."""
    kind, n = GENERATORS[cfg.generator]
    if kind == "resnet":
        return ResnetGenerator(cin, cout, cfg.resnet_blocks or n, cfg.g_width, cfg.norm, cfg.dropout,
                               cfg.upsampling, cfg.antialias)
    return UNetGenerator(cin, cout, cfg.unet_depth or n, cfg.g_width, cfg.norm, cfg.dropout, cfg.upsampling)


def build_discriminator(cfg: TranslationConfig, in_channels: int):
    if cfg.discriminator == "pixel":
        return PixelDiscriminator(in_channels, cfg.d_width, cfg.norm)
    return PatchDiscriminator(in_channels, cfg.d_width, cfg.d_layers, cfg.norm)


def as_rgb(x: torch.Tensor) -> torch.Tensor:
    """Images with 1 or 3 channels -> 3 (grey repeated); other counts show their first 3 (or first) channels."""
    if x.shape[1] == 3:
        return x
    if x.shape[1] in (1, 2):
        return x[:, :1].expand(-1, 3, -1, -1)
    return x[:, :3]
