"""Configs as dataclasses; every field is a CLI flag.

`TrainConfig` holds what every model honours. Each model subclasses it with its
own fields and re-declares fields whose default differs for that model: that
subclass *is* the model's preset. `build_parser` turns a config class into an
argparse parser, so adding a field adds a flag.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CondganError


def opt(default, help: str, choices=None, resumable: bool = False):
    """A config field with its help text, allowed values, and whether --resume may change it."""
    meta = {"help": help, "choices": choices, "resumable": resumable}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    model: str = opt("cgan", "model to train (see the registry in condgan.models)")
    data: str = opt("digits", "dataset name (digits, mnist, fashion-mnist) or a folder of images")
    out: str = opt("", "run directory (default: runs/<model>-<data>-<time>)")
    epochs: int = opt(10, "passes over the training data", resumable=True)
    max_steps: int = opt(0, "stop after this many generator steps (0: no limit)", resumable=True)
    batch_size: int = opt(64, "images per batch")
    lr: float = opt(2e-4, "learning rate of both optimizers")
    beta1: float = opt(0.5, "Adam beta1")
    beta2: float = opt(0.999, "Adam beta2")
    lr_schedule: str = opt("constant", "learning-rate schedule", choices=["constant", "linear"])
    decay_epochs: int = opt(0, "with --lr-schedule linear: final epochs over which the rate decays to 0 "
                            "(-1: the second half of --epochs)")
    seed: int = opt(0, "random seed (same seed, same data order and weights on CPU)")
    device: str = opt("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps", resumable=True)
    amp: str = opt("auto", "mixed precision: auto = bf16 on CUDA GPUs that have it (else fp16 + GradScaler), "
                   "and bf16 for pix2pix/CycleGAN on CPUs with AMX; off = fp32",
                   choices=["auto", "off", "bf16", "fp16"], resumable=True)
    channels_last: bool = opt(True, "channels-last memory layout for images and conv weights (faster "
                              "convolutions on recent GPUs, and on CPU for the models where it measured "
                              "faster: cgan yes, pix2pix no)", resumable=True)
    compile: bool = opt(False, "torch.compile the nets (slower start; pays off on long GPU runs; "
                        "measure with python -m condgan.bench)", resumable=True)
    workers: int = opt(-1, "data-loading worker processes (-1: automatic)", resumable=True)
    data_root: str = opt("", "where downloaded datasets are cached (default: ~/.cache/condgan/data)",
                         resumable=True)
    image_size: int = opt(0, "resize images to this size (0: the data's own size)")
    log_every: int = opt(20, "generator steps between logged losses", resumable=True)
    ckpt_every: int = opt(500, "generator steps between checkpoints (also one per epoch; 0: per epoch only)",
                          resumable=True)
    sample_every: int = opt(1, "epochs between sample grids", resumable=True)
    progress: bool = opt(True, "show a progress bar", resumable=True)

    # ---- checks -------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise CondganError for values that cannot work, naming the flag."""
        positive = ["epochs", "batch_size", "lr", "log_every", "sample_every"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise CondganError(f"--{flag_name(name)} must be positive, got {getattr(self, name)}")
        for name in ["max_steps", "ckpt_every", "image_size"]:
            if getattr(self, name) < 0:
                raise CondganError(f"--{flag_name(name)} must be zero or positive, got {getattr(self, name)}")
        if not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            raise CondganError("--beta1 and --beta2 must be in [0, 1)")
        if self.decay_epochs < -1:
            raise CondganError(f"--decay-epochs must be -1 (half of --epochs) or zero or positive, "
                               f"got {self.decay_epochs}")
        if self.decay_epochs > self.epochs:
            raise CondganError(f"--decay-epochs ({self.decay_epochs}) cannot exceed --epochs ({self.epochs})")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise CondganError(f"--{flag_name(f.name)} must be one of {', '.join(choices)}, "
                                   f"got {getattr(self, f.name)!r}")

    def decay_epochs_resolved(self) -> int:
        return self.epochs // 2 if self.decay_epochs == -1 else self.decay_epochs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def flag_name(field_name: str) -> str:
    return field_name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) and exits 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _field_type(cls, f):
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def build_parser(cls, prog: str, defaults: dict | None = None, extra=None) -> argparse.ArgumentParser:
    """One flag per dataclass field; `defaults` (e.g. from a saved config) replace the presets."""
    p = _Parser(prog=prog, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                allow_abbrev=False)
    if extra:
        extra(p)
    defaults = defaults or {}
    for f in dataclasses.fields(cls):
        typ = _field_type(cls, f)
        default = defaults.get(f.name, f.default)
        kw = dict(default=default, help=f.metadata.get("help", ""), dest=f.name)
        if typ is bool:
            p.add_argument(f"--{flag_name(f.name)}", action=argparse.BooleanOptionalAction, **kw)
            continue
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        p.add_argument(f"--{flag_name(f.name)}", type=typ, metavar=typ.__name__.upper(), **kw)
    return p


def from_dict(cls, values: dict, source: str):
    """Build a config from a saved dict; unknown keys are an error, missing keys take presets."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CondganError(f"{source} has settings this version does not know: {', '.join(unknown)}")
    cfg = cls(**values)
    cfg.validate()
    return cfg


def load_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise CondganError(f"config file {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise CondganError(f"config file {path} is not readable JSON ({e})") from None
    if not isinstance(values, dict):
        raise CondganError(f"config file {path} must hold a JSON object")
    return values


def print_config(cfg, file=sys.stdout) -> None:
    width = max(len(f.name) for f in dataclasses.fields(cfg))
    print("config:", file=file)
    for f in dataclasses.fields(cfg):
        print(f"  {f.name:<{width}} = {getattr(cfg, f.name)!r}", file=file)
