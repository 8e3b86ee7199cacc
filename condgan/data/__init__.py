"""Datasets by kind: `load(kind, options, split)` for training data, `build(name, ...)` for labelled sets.

Every dataset yields dict batches of float images in [-1, 1] (NCHW) plus what
the model needs (labels for class-conditional data). `DataInfo` describes the
data to the model and travels inside checkpoints, so sampling and export never
need the data itself.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .download import default_root
from .info import KINDS, LABELLED, PAIRED, UNPAIRED, DataInfo, DataOptions  # noqa: F401 - the public face


LABELLED_NAMES = ("digits", "mnist", "fashion-mnist")


def load(kind: str, options: DataOptions, split: str = "train"):
    """(dataset, DataInfo) of `kind` (labelled, paired or unpaired) as `options` describe it."""
    if kind == PAIRED:
        from .paired import build as build_paired
        return build_paired(options, split)
    if kind == UNPAIRED:
        from .unpaired import build as build_unpaired
        return build_unpaired(options, split)
    if kind == LABELLED:
        return build(options.data, split, options.data_root or None, options.image_size)
    raise DataError(f"unknown data kind {kind!r}; known: {', '.join(KINDS)}")


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


def describe(info: DataInfo, dataset, val_dataset=None) -> str:
    """The training data in one phrase, for the line `condgan.train` prints."""
    if info.kind == PAIRED:
        return (f"{len(dataset)} training pairs ({len(val_dataset) if val_dataset is not None else 0} validation),"
                f" {info.in_channels} -> {info.channels} channels, trained at {info.height}x{info.width}")
    if info.kind == UNPAIRED:
        return (f"{len(dataset.a)} A and {len(dataset.b)} B training images ({info.in_channels} and "
                f"{info.channels} channels), trained at {info.height}x{info.width}")
    return f"{len(dataset)} images {info.channels}x{info.height}x{info.width}, {info.num_classes} classes"
