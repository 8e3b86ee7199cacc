"""Unpaired images from two domains (A, B) for CycleGAN.

Sources:
  procedural-maps     aerial views (A) and maps (B) of *different* generated cities: no pairs exist
  horse2zebra, ...    the official CycleGAN archives, downloaded once into the data root
  a folder            trainA/ trainB/ [testA/ testB/] [valA/ valB/] (the domains may have
                      different sizes); without test or val folders, validation (the sample
                      grid, evaluate's default split) uses the first VAL_FROM_TRAIN training
                      images of each domain, which stay in training

Each epoch pairs every A image with a random B image; A and B get independent
random augmentations. Unreadable files are skipped with their names reported,
so one bad file does not stop a run; files are read by content, whatever
their extension says.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

from ..errors import DataError
from .info import DataInfo
from .paired import _images, channels_of, make_transform, probe, read, to_tensor

PROCEDURAL_TRAIN, PROCEDURAL_TEST = 400, 100
VAL_FROM_TRAIN = 8  # validation images per domain taken from train/ when a folder has no test/ or val/


class FileImages:
    """Readable images of one domain (unreadable ones are left out and reported)."""

    def __init__(self, folder: Path, limit: int = 0):
        if not folder.is_dir():
            raise DataError(f"{folder} does not exist")
        files, bad, modes = [], [], []
        for f in _images(folder):
            if limit and len(files) == limit:
                break
            try:
                modes.append(probe(f)[2])
                files.append(f)
            except DataError:
                bad.append(f.name)
        if bad:
            print(f"warning: skipping {len(bad)} unreadable file(s) in {folder}: {', '.join(bad[:10])}"
                  + (" ..." if len(bad) > 10 else ""), file=sys.stderr)
        if not files:
            raise DataError(f"no readable images in {folder}")
        self.files, self.mode = files, max(set(modes), key=modes.count)

    def __len__(self):
        return len(self.files)

    def __call__(self, i):
        return read(self.files[i], self.mode), self.files[i].stem


class ProceduralSide:
    def __init__(self, n: int, base_seed: int, side: str):
        from .procedural_maps import ProceduralMaps
        self.maps, self.side, self.mode = ProceduralMaps(n, 256, base_seed), side, "RGB"

    def __len__(self):
        return len(self.maps)

    def __call__(self, i):
        item = self.maps[i]
        return item[self.side], f"{self.side}{item['name']}"


class UnpairedImages(torch.utils.data.Dataset):
    """Item i: A image i and a random B image (the B image with the same index when not augmenting)."""

    def __init__(self, a, b, transform, augment: bool):
        self.a, self.b, self.transform, self.augment = a, b, transform, augment

    def __len__(self):
        return len(self.a)

    def _load(self, source, i):
        for k in range(len(source)):  # a file that passed the header check but fails to decode is skipped
            try:
                return source((i + k) % len(source))
            except DataError as e:
                warnings.warn(f"skipping {e}", stacklevel=2)
        raise DataError("no image of the domain could be read")

    def _augment(self, arr):
        if self.augment:
            self.transform.set_random_seed(int(torch.randint(2 ** 31 - 1, ())))
        out = self.transform(image=arr)["image"]
        return to_tensor(out[:, :, None] if out.ndim == 2 else out)

    def __getitem__(self, i):
        a, name = self._load(self.a, i)
        j = int(torch.randint(len(self.b), ())) if self.augment else i % len(self.b)
        b, name_b = self._load(self.b, j)
        # same names on both sides (A/x.png and B/x.png) mean a known pair: evaluation scores it against truth
        return {"A": self._augment(a), "B": self._augment(b), "name": name, "paired": name == name_b}

    @property
    def channels(self) -> tuple[int, int]:
        return channels_of(self.a.mode), channels_of(self.b.mode)


def _domain_dir(root: Path, split: str, side: str) -> Path | None:
    """The folder of one domain for a split (val and test fall back to each other); None if neither exists."""
    names = {"train": ["train"], "val": ["val", "test"], "test": ["test", "val"]}.get(split, [split])
    for name in names:
        if (root / f"{name}{side}").is_dir():
            return root / f"{name}{side}"
    if split == "train":
        raise DataError(f"{root} has no train{side}/ folder (expected trainA/ trainB/ [testA/ testB/])")
    return None


def _folder_domains(root: Path, split: str) -> tuple[FileImages, FileImages]:
    dirs = {side: _domain_dir(root, split, side) for side in "AB"}
    if dirs["A"] is None and dirs["B"] is None:
        if split == "test":
            raise DataError(f"{root} has no testA/ testB/ (or valA/ valB/) folders to evaluate on; "
                            f"use --split val (the first {VAL_FROM_TRAIN} training images) or add them")
        # validation only feeds the sample grid and the cycle errors: a few training images will do
        print(f"note: {root} has no valA/ valB/ or testA/ testB/ folders: validation uses the first "
              f"{VAL_FROM_TRAIN} training images of each domain, which stay in training", file=sys.stderr)
        return tuple(FileImages(_domain_dir(root, "train", side), VAL_FROM_TRAIN) for side in "AB")
    missing = [side for side in "AB" if dirs[side] is None]
    if missing:
        present, absent = dirs["AB".replace(missing[0], "")], missing[0]
        raise DataError(f"{root} has {present.name}/ but neither val{absent}/ nor test{absent}/; add the "
                        f"other domain's folder or remove {present.name}/")
    return FileImages(dirs["A"]), FileImages(dirs["B"])


def build(cfg, split: str = "train"):
    """(dataset, DataInfo) of unpaired data as `cfg` (a condgan.data.DataOptions) describes it.

    DataInfo: in_channels = A's, channels = B's."""
    from .download import CYCLEGAN_ARCHIVES, default_root, fetch

    name = cfg.data
    train = split == "train"
    if name == "procedural-maps":  # different cities on each side, so no pair exists
        n = PROCEDURAL_TRAIN if train else PROCEDURAL_TEST
        seeds = (10, 11) if train else (12, 13)
        a, b = ProceduralSide(n, seeds[0], "A"), ProceduralSide(n, seeds[1], "B")
    else:
        if name in CYCLEGAN_ARCHIVES:
            root = fetch(CYCLEGAN_ARCHIVES[name], Path(cfg.data_root) if cfg.data_root else default_root(),
                         progress=cfg.progress)
        else:
            root = Path(name).expanduser()
            if not root.exists() and "/" not in name and not name.startswith("."):
                raise DataError(f"unknown unpaired dataset {name!r}: use procedural-maps, one of "
                                f"{', '.join(CYCLEGAN_ARCHIVES)}, or a folder with trainA/ and trainB/")
            if root.exists() and not root.is_dir():
                raise DataError(f"data path {root} is a file, not a folder; expected a folder with trainA/ "
                                f"and trainB/")
            if not root.is_dir():
                raise DataError(f"data folder {root} does not exist")
        a, b = _folder_domains(root, split)
    transform = make_transform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip, train)
    ds = UnpairedImages(a, b, transform, augment=train)
    cin, cout = ds.channels
    return ds, DataInfo("unpaired", name, cout, cfg.crop_size, cfg.crop_size, in_channels=cin)
