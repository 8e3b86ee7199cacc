"""Datasets: one entry point, `build(name, ...)`, for every kind of data.

Every dataset yields dict batches of float images in [-1, 1] (NCHW) plus what
the model needs (labels for class-conditional data). `DataInfo` describes the
data to the model and travels inside checkpoints, so sampling and export never
need the data itself.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import DataError


@dataclass
class DataInfo:
    kind: str  # "labelled" (class-conditional), "paired" or "unpaired" (translation)
    name: str
    channels: int
    height: int
    width: int
    num_classes: int = 0
    class_names: list = field(default_factory=list)
    in_channels: int = 0  # translation: channels of the input (A) images ("channels" are the output's, B)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataInfo":
        return cls(**d)


def default_root() -> Path:
    env = os.environ.get("CONDGAN_DATA")
    return Path(env) if env else Path.home() / ".cache" / "condgan" / "data"


LABELLED_NAMES = ("digits", "mnist", "fashion-mnist")


def for_config(cfg, split: str = "train"):
    """(dataset, DataInfo) for a training config: labelled data, or paired data for translation models."""
    from ..models import data_kind
    kind = data_kind(cfg.model)
    if kind == "paired":
        from .paired import build as build_paired
        return build_paired(cfg, split)
    if kind == "unpaired":
        from .unpaired import build as build_unpaired
        return build_unpaired(cfg, split)
    return build(cfg.data, split, cfg.data_root or None, cfg.image_size)


def build(name: str, split: str = "train", root: str | Path | None = None, image_size: int = 0):
    """Return (dataset, DataInfo) for a dataset name or a folder path.

    split: "train" (what the GAN trains on), "heldout" (real images evaluation compares
    against) or "rest" (train minus heldout, where they overlap: what the evaluation
    classifier trains on).
    """
    root = Path(root) if root else default_root()
    if name == "digits":
        from .digits import embedded_digits
        return embedded_digits(split, image_size)
    if name in ("mnist", "fashion-mnist"):
        from .digits import torchvision_digits
        return torchvision_digits(name, split, root, image_size)
    path = Path(name).expanduser()
    if path.exists() or os.sep in name or name.startswith("."):
        from .folder import labelled_folder
        return labelled_folder(path, split, image_size)
    raise DataError(f"unknown dataset {name!r}: use one of {', '.join(LABELLED_NAMES)} or the path of "
                    f"a folder of class subfolders")
