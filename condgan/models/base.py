"""The model contract: everything a command needs from a model, declared here with defaults.

A model declares its config class, the data it trains on, what it does once trained (sample images for
labels, or translate images), its nets and optimizers, which phases run for a batch and how to compute each
phase's losses. The Trainer owns everything else: devices, mixed precision, backward and optimizer steps,
schedules, logging, sample grids and checkpoints. Commands (train, sample, translate, evaluate, export) ask
the model through the attributes and methods below and never probe it. Adding a model = one file + one
registry line; `check_model_class` says, in one sentence, what a model that falls short is missing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import TrainConfig
from ..data.info import KINDS, LABELLED, DataOptions
from ..errors import CondganError

#: what a trained model does: generate images for class labels, or translate images
SAMPLE, TRANSLATE = "sample", "translate"
TASKS = (SAMPLE, TRANSLATE)


@dataclass(frozen=True)
class GeneratorSpec:
    """One generator as commands see it: the net to run or export, and its inputs and outputs."""

    net: nn.Module
    task: str  # SAMPLE: net(z [N, latent_dim], label [N]) -> image; TRANSLATE: net(image) -> image
    direction: str = ""  # translation: "AtoB" or "BtoA"
    in_channels: int = 0  # translation: input image channels
    out_channels: int = 0
    latent_dim: int = 0  # sampling: size of z
    num_classes: int = 0  # sampling: labels are 0..num_classes - 1


class GANModel(nn.Module):
    # ---- declarations every command reads (class attributes) ---------------------------------------------
    #: the model's config dataclass (a TrainConfig subclass whose `model` default is the registry name)
    config_class: type | None = None
    #: data the model trains on: one of condgan.data.info.KINDS
    data_kind = LABELLED
    #: what the trained model does: SAMPLE (condgan.sample) or TRANSLATE (condgan.translate)
    task = SAMPLE
    #: whether training builds a validation split (for sample grids and validation())
    uses_validation_data = False
    #: phase whose completion counts as one training step (what --max-steps counts)
    step_phase = "G"
    #: Adam's fused kernel (same algorithm, different rounding order than the for-loop one)
    fused_adam = True
    #: whether --channels-last applies on CPU too (it is measured per model; GPUs always honour it)
    channels_last_on_cpu = True
    #: whether --amp auto trains in bfloat16 on CPUs with bf16 matrix units (AMX), where it measured faster
    #: and learned as well
    bf16_on_cpu = False
    #: name of the metric returned by validation() (lower is better); None: no validation
    validation_metric = None
    #: `condgan.train` flags for a tiny run on offline data, a few seconds on a CPU: what the registry-wide
    #: contract test (tests/test_model_contract.py) trains, resumes, exports and runs for every model
    smoke_flags: tuple[str, ...] = ()

    def __init__(self, cfg, info):
        super().__init__()
        self.cfg, self.info = cfg, info

    # ---- data ---------------------------------------------------------------------------------------------
    @classmethod
    def data_options(cls, cfg) -> DataOptions:
        """What the data layer needs from this model's config (model-specific options travel here)."""
        return DataOptions(data=cfg.data, data_root=cfg.data_root, image_size=cfg.image_size,
                           progress=cfg.progress)

    def shown_items(self) -> int:
        """Validation items shown in every sample grid (0: the grid needs none)."""
        return 0

    def validation_items(self) -> int:
        """Validation items scored by validation() after each epoch (0: none)."""
        return 0

    # ---- training: to implement ---------------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per phase name."""
        raise NotImplementedError

    def phases(self, batch_index: int) -> tuple[str, ...]:
        """Phases to run, in order, on the batch with this index within the epoch."""
        return ("D", "G")

    def step(self, phase: str, batch: dict) -> dict[str, torch.Tensor]:
        """Compute one phase on a batch; return losses, "loss" being the one to minimise.

        Or yield several such dicts (loss parts): StepRunner backwards each part's "loss" before it asks
        for the next, and steps the optimizer once on the summed gradients, so a phase whose terms need
        separate passes keeps only one pass's activations alive (CUT's identity term)."""
        raise NotImplementedError

    def discriminators(self) -> dict[str, nn.Module]:
        """Every discriminator by attribute name. Training augments each image they are given with --diffaug
        (condgan.augment, a forward pre-hook), so a model calls them as plain nets and never augments itself."""
        raise NotImplementedError

    def discriminator_channel_groups(self, name: str) -> tuple[int, ...] | None:
        """Channels of each image stacked in discriminator `name`'s input (pix2pix: input | output), so that
        colour augmentation treats them as separate images; None: the input is one image."""
        return None

    def after_step(self, phase: str) -> None:
        """Called after the optimizer step of `phase` (EMA updates, pools)."""

    def sample_grid(self, fixed: dict | None = None) -> tuple[torch.Tensor, int]:
        """Images in [-1, 1] for the per-epoch sample grid, and the number of images per row.

        `fixed` is a batch of validation items that stays the same all run (`shown_items()` of them).
        """
        raise NotImplementedError

    def validation(self, batches) -> dict[str, float]:
        """Metrics over validation batches (includes `validation_metric`)."""
        raise NotImplementedError

    def evaluation_extras(self, batches) -> dict[str, float]:
        """Metrics only this model can compute on evaluation batches (CycleGAN: its cycle errors); shown
        by condgan.evaluate next to the metrics every model of its kind gets."""
        return {}

    # ---- using the trained model --------------------------------------------------------------------------
    def generator(self, direction: str | None = None) -> nn.Module:
        """The generator used for sampling, evaluation and export (the EMA copy when there is one)."""
        raise NotImplementedError

    def directions(self) -> tuple[str, ...]:
        """Translation directions this model runs (empty for sampling models)."""
        return ()

    def resolve_direction(self, direction: str | None) -> str:
        """The direction to use ("" for sampling models), refusing one the model cannot run."""
        if self.task != TRANSLATE:
            if direction:
                raise CondganError(f"--direction applies to translation runs; this is a {self.cfg.model} "
                                   f"({self.task}) run")
            return ""
        available = self.directions()
        direction = direction or available[0]
        if direction not in available:
            raise CondganError(f"this {self.cfg.model} run translates {' and '.join(available)} only, "
                               f"not {direction}")
        return direction

    def io_channels(self, direction: str | None = None) -> tuple[int, int]:
        """(input, output) image channels of the generator for `direction`."""
        self.resolve_direction(direction)
        return self.info.in_channels, self.info.channels

    def generator_spec(self, direction: str | None = None) -> GeneratorSpec:
        """The generator for `direction` with its inputs and outputs, as sample/translate/export use it."""
        direction = self.resolve_direction(direction)
        if self.task == SAMPLE:
            return GeneratorSpec(self.generator(), SAMPLE, out_channels=self.info.channels,
                                 latent_dim=self.latent_dim(), num_classes=self.info.num_classes)
        cin, cout = self.io_channels(direction)
        return GeneratorSpec(self.generator(direction), TRANSLATE, direction, cin, cout)

    def latent_dim(self) -> int:
        """Size of the noise vector z (sampling models)."""
        return 0

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str | None = None) -> torch.Tensor:
        """Outputs in [-1, 1] for inputs in [-1, 1], any size, with the generator in eval mode."""
        g = self.generator(self.resolve_direction(direction))
        was_training = g.training
        g.eval()
        out = g(images)
        g.train(was_training)
        return out

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Images for the given labels (sampling models)."""
        raise NotImplementedError

    # ---- helpers ------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @staticmethod
    def set_requires_grad(net: nn.Module, flag: bool) -> None:
        for p in net.parameters():
            p.requires_grad_(flag)

    def adam(self, params, lr_scale: float = 1.0) -> torch.optim.Adam:
        c = self.cfg
        params = list(params)
        # the fused kernel is one pass over the weights instead of about ten (3.6x faster for 56M weights on CPU)
        fused = self.fused_adam and bool(params) and params[0].device.type in ("cpu", "cuda")
        return torch.optim.Adam(params, lr=c.lr * lr_scale, betas=(c.beta1, c.beta2), fused=fused or None)


def _overrides(cls, name: str) -> bool:
    return getattr(cls, name) is not getattr(GANModel, name)


def check_model_class(name: str, cls) -> None:
    """Raise CondganError naming everything `cls` lacks to be the registered model `name`."""
    if not (isinstance(cls, type) and issubclass(cls, GANModel)):
        raise CondganError(f"model {name!r} is registered as {cls!r}, which is not a GANModel subclass")
    problems = []
    cfg_cls = cls.config_class
    if not (isinstance(cfg_cls, type) and issubclass(cfg_cls, TrainConfig)):
        problems.append("declares no config_class (a TrainConfig subclass)")
    elif cfg_cls.__dataclass_fields__["model"].default != name:
        problems.append(f"has a config_class whose --model default is "
                        f"{cfg_cls.__dataclass_fields__['model'].default!r}, not {name!r}")
    if cls.data_kind not in KINDS:
        problems.append(f"declares data_kind {cls.data_kind!r}, not one of {', '.join(KINDS)}")
    if cls.task not in TASKS:
        problems.append(f"declares task {cls.task!r}, not one of {', '.join(TASKS)}")
    required = ["optimizers", "step", "sample_grid", "generator", "discriminators"]
    required += ["generate", "latent_dim"] if cls.task == SAMPLE else ["directions"]
    if cls.validation_metric is not None:
        required.append("validation")
    if cls.data_kind != LABELLED or cls.task == TRANSLATE:
        required.append("data_options")
    if not cls.smoke_flags:
        problems.append("declares no smoke_flags (flags for a tiny offline run)")
    missing = [m for m in required if not _overrides(cls, m)]
    if missing:
        problems.append("does not implement " + ", ".join(f"{m}()" for m in missing))
    if problems:
        raise CondganError(f"model {name!r} ({cls.__module__}.{cls.__qualname__}) does not fulfil the model "
                           f"contract: it " + "; it ".join(problems) + " (see docs/adding-a-model.md)")
