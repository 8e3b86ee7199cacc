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
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CondganError


def opt(default, help: str, choices=None, resumable: bool = False, at_least=None, above=None, below=None,
        at_most=None):
    """A config field with its help text, allowed values and range, and whether --resume may change it.

    Every number must be finite; `at_least`/`at_most` are inclusive bounds, `above`/`below` exclusive ones.
    `TrainConfig.validate` checks them all, so a bound is declared once, beside the flag it bounds; a
    subclass that re-declares a field for another default keeps the bounds of the class it inherits from.
    """
    meta = {"help": help, "choices": choices, "resumable": resumable,
            "bounds": (at_least, above, below, at_most)}
    return field(default=default, metadata=meta)


NO_BOUNDS = (None, None, None, None)


def field_bounds(cls, name: str) -> tuple:
    """The bounds declared for field `name` by `cls` or, failing that, the nearest base class."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and f.metadata.get("bounds", NO_BOUNDS) != NO_BOUNDS:
            return f.metadata["bounds"]
    return NO_BOUNDS


def _range_text(bounds) -> str:
    at_least, above, below, at_most = bounds
    low = ("zero or positive" if at_least == 0 else f"at least {at_least}" if at_least is not None
           else "positive" if above == 0 else f"above {above}" if above is not None else "")
    high = f"at most {at_most}" if at_most is not None else f"below {below}" if below is not None else ""
    return " and ".join(t for t in (low, high) if t)


def check_number(flag: str, value, bounds=NO_BOUNDS) -> None:
    """Raise CondganError unless `value` is a finite number within `bounds` (see `opt`)."""
    at_least, above, below, at_most = bounds
    wrong_type = isinstance(value, bool) or not isinstance(value, (int, float))
    if wrong_type or not math.isfinite(value):
        rng = _range_text(bounds)
        raise CondganError(f"{flag} must be a finite number{', ' + rng if rng else ''}, got {value!r}")
    if ((at_least is not None and value < at_least) or (above is not None and value <= above)
            or (below is not None and value >= below) or (at_most is not None and value > at_most)):
        raise CondganError(f"{flag} must be {_range_text(bounds)}, got {value!r}")


MAX_IMAGE_SIZE = 4096  # pixels per side; beyond it a single image outgrows any machine's memory
MAX_BATCH = 65536


@dataclass
class TrainConfig:
    model: str = opt("cgan", "model to train (see the registry in condgan.models)")
    data: str = opt("digits", "dataset name (digits, mnist, fashion-mnist) or a folder of images")
    out: str = opt("", "run directory (default: runs/<model>-<data>-<time>)")
    epochs: int = opt(10, "passes over the training data", resumable=True, above=0, at_most=1_000_000)
    max_steps: int = opt(0, "stop after this many generator steps (0: no limit)", resumable=True, at_least=0)
    batch_size: int = opt(64, "images per batch", above=0, at_most=MAX_BATCH)
    lr: float = opt(2e-4, "learning rate of both optimizers", above=0, at_most=10)
    beta1: float = opt(0.5, "Adam beta1", at_least=0, below=1)
    beta2: float = opt(0.999, "Adam beta2", at_least=0, below=1)
    lr_schedule: str = opt("constant", "learning-rate schedule", choices=["constant", "linear"])
    decay_epochs: int = opt(0, "with --lr-schedule linear: final epochs over which the rate decays to 0 "
                            "(-1: the second half of --epochs)")
    seed: int = opt(0, "random seed (same seed, same data order and weights on CPU)", at_least=0,
                    at_most=2**32 - 1)
    device: str = opt("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps", resumable=True)
    amp: str = opt("auto", "mixed precision: auto = bf16 on CUDA GPUs that have it (else fp16 + GradScaler); "
                   "on CPU measured once per machine and cached (condgan.probe): the faster of fp32 and, for "
                   "models validated in bf16 (pix2pix, CycleGAN) on CPUs with bf16 instructions (avx512_bf16, "
                   "AMX), bf16; CONDGAN_PROBE=0: bf16 there only with AMX; off = fp32",
                   choices=["auto", "off", "bf16", "fp16"], resumable=True)
    channels_last: bool = opt(True, "channels-last memory layout for images and conv weights: on GPUs; on CPU "
                              "where the probe measures it faster (CONDGAN_PROBE=0: for the models where it "
                              "measured faster, cgan yes, pix2pix no); --no-channels-last: NCHW everywhere",
                              resumable=True)
    compile: bool = opt(False, "torch.compile the nets (slower start; pays off on long GPU runs; "
                        "measure with python -m condgan.bench)", resumable=True)
    workers: int = opt(-1, "data-loading worker processes (-1: automatic)", resumable=True, at_least=-1,
                       at_most=256)
    data_root: str = opt("", "where downloaded datasets are cached (default: ~/.cache/condgan/data)",
                         resumable=True)
    image_size: int = opt(0, "resize images to this size (0: the data's own size)", at_least=0,
                          at_most=MAX_IMAGE_SIZE)
    log_every: int = opt(20, "generator steps between logged losses", resumable=True, above=0)
    ckpt_every: int = opt(500, "generator steps between checkpoints (also one per epoch; 0: per epoch only)",
                          resumable=True, at_least=0)
    sample_every: int = opt(1, "epochs between sample grids", resumable=True, above=0)
    progress: bool = opt(True, "show a progress bar", resumable=True)
    eval_every: int = opt(0, "epochs between quality evaluations on the validation subset, logged to "
                          "TensorBoard (0: off; see condgan.evaluate for the metrics)", resumable=True, at_least=0)
    eval_images: int = opt(100, "validation (or held-out) images each --eval-every evaluation scores",
                           resumable=True, above=0, at_most=100_000)
    select_by: str = opt("", "metric best.pt is kept by (default: the model's own validation metric; with "
                         "--eval-every also l1, psnr, ssim, fid, kid, label_accuracy, conditional_accuracy, "
                         "fid_classifier, ...)")

    preset: str = opt("", "a named set of defaults for this model (see the model's PRESETS, e.g. small-data); "
                      "flags given on the command line win over it")
    diffaug: str = opt("", "differentiable augmentation of every image the discriminators see (DiffAugment): "
                       "a comma-separated subset of color, translation, cutout ('' or none: off)")

    #: named default sets, {name: {field: value}}: what --preset NAME applies before the command-line flags
    PRESETS: typing.ClassVar[dict[str, dict]] = {}

    # ---- checks -------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise CondganError for values that cannot work, naming the flag."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, flag, typ = getattr(self, f.name), f"--{flag_name(f.name)}", hints[f.name]
            if typ in (int, float):
                if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
                    raise CondganError(f"{flag} must be a whole number, got {value!r}")
                check_number(flag, value, field_bounds(type(self), f.name))
            elif not isinstance(value, typ):
                raise CondganError(f"{flag} must be a {typ.__name__}, got {value!r}")
        if not self.data.strip():
            raise CondganError("--data is empty; give a dataset name or a folder")
        from .augment import parse_policy
        parse_policy(self.diffaug)
        if self.preset and self.preset not in self.PRESETS:
            known = ", ".join(self.PRESETS) or "none"
            raise CondganError(f"--preset {self.preset} is not a {self.model} preset (known: {known})")
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


def _field_type(cls, f):
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def build_parser(cls, prog: str, defaults: dict | None = None, extra=None) -> argparse.ArgumentParser:
    """One flag per dataclass field; `defaults` (e.g. from a saved config) replace the presets."""
    from .cli import Parser
    p = Parser(prog=prog, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    """Build a config from a saved dict; unknown keys are an error, missing keys take presets.

    Every value is checked as a flag would be (type, range, choices); errors name `source`.
    """
    if not isinstance(values, dict):
        raise CondganError(f"{source} holds no config mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CondganError(f"{source} has settings this version does not know: {', '.join(unknown)}")
    cfg = cls(**values)
    try:
        cfg.validate()
    except CondganError as e:
        raise CondganError(f"{source} has an invalid setting: {e}") from None
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


def print_config(cfg, file=None) -> None:
    file = file or sys.stdout  # looked up per call: a captured or replaced stdout is honoured
    width = max(len(f.name) for f in dataclasses.fields(cfg))
    print("config:", file=file)
    for f in dataclasses.fields(cfg):
        print(f"  {f.name:<{width}} = {getattr(cfg, f.name)!r}", file=file)
