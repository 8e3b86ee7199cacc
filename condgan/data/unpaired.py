"""Unpaired images from two domains (A, B) for CycleGAN.

Sources:
  procedural-maps     aerial views (A) and maps (B) of *different* generated cities: no pairs exist
  horse2zebra, ...    the official CycleGAN archives, downloaded once into the data root
  a folder            trainA/ trainB/ [testA/ testB/] (the domains may have different sizes)

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
from . import DataInfo
from .paired import _images, channels_of, make_transform, probe, read, to_tensor

PROCEDURAL_TRAIN, PROCEDURAL_TEST = 400, 100


class FileImages:
    """Readable images of one domain (unreadable ones are left out and reported)."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise DataError(f"{folder} does not exist")
        files, bad, modes = [], [], []
        for f in _images(folder):
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
        b, _ = self._load(self.b, j)
        return {"A": self._augment(a), "B": self._augment(b), "name": name}

    @property
    def channels(self) -> tuple[int, int]:
        return channels_of(self.a.mode), channels_of(self.b.mode)


def _domain_dir(root: Path, split: str, side: str) -> Path:
    names = [f"{split}{side}"] + ([f"test{side}", f"val{side}"] if split != "train" else [])
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DataError(f"{root} has no {names[0]}/ folder (expected trainA/ trainB/ [testA/ testB/])")


def build(cfg, split: str = "train"):
    """(dataset, DataInfo) for a CycleGAN config. DataInfo: in_channels = A's, channels = B's."""
    from . import default_root
    from .download import CYCLEGAN_ARCHIVES, fetch

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
            if not root.is_dir():
                raise DataError(f"data folder {root} does not exist")
        a, b = FileImages(_domain_dir(root, split, "A")), FileImages(_domain_dir(root, split, "B"))
    transform = make_transform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip, train)
    ds = UnpairedImages(a, b, transform, augment=train)
    cin, cout = ds.channels
    return ds, DataInfo("unpaired", name, cout, cfg.crop_size, cfg.crop_size, in_channels=cin)
