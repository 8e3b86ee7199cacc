"""A folder of class subfolders (`root/<class>/<image>`) as class-conditional data."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import datasets
from torchvision.transforms import v2

from ..errors import DataError
from .info import DataInfo

IMAGE_EXTENSIONS = datasets.folder.IMG_EXTENSIONS


def _open(path: str, mode: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert(mode)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot read image {path} ({e})") from None


class LabelledFolder(torch.utils.data.Dataset):
    """Images from class subfolders, resized to one size, as dicts {image, label}."""

    def __init__(self, samples, mode: str, size: tuple[int, int]):
        self.samples, self.mode = samples, mode
        self.transform = v2.Compose([
            v2.PILToTensor(),
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.5], [0.5]),  # [0, 1] -> [-1, 1], any channel count
        ])

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        """Every item's class index, as LabelledTensors has them."""
        return torch.tensor([label for _, label in self.samples], dtype=torch.long)

    def __getitem__(self, i):
        path, label = self.samples[i]
        return {"image": self.transform(_open(path, self.mode)), "label": torch.tensor(label)}


def labelled_folder(root: Path, split: str = "train", image_size: int = 0):
    """Class names, channel count and (unless `image_size` is given) size come from the data.

    Every tenth image of each class (in name order) forms the held-out split used
    by evaluation ("rest" is the other nine tenths); training uses all images.
    """
    if root.exists() and not root.is_dir():
        raise DataError(f"data path {root} is a file, not a folder; expected a folder of class subfolders "
                        f"({root}/<class name>/<images>)")
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class subfolders; expected {root}/<class name>/<images>")
    samples = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*")
                       if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(root / name).parts))
        if not files:  # an empty class would get a label and an embedding but never a training image
            raise DataError(f"class folder {root / name} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                            f"add images to it or remove it")
        if split == "heldout":
            files = files[::10]
        elif split == "rest":
            files = [f for i, f in enumerate(files) if i % 10]
        samples += [(str(p), label) for p in files]
    if not samples:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    try:
        with Image.open(samples[0][0]) as first:
            mode = "L" if first.mode in ("L", "1", "I;16", "I") else "RGB"
            w, h = first.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot read image {samples[0][0]} ({e})") from None
    if image_size:
        h = w = image_size
    ds = LabelledFolder(samples, mode, (h, w))
    return ds, DataInfo("labelled", str(root), 1 if mode == "L" else 3, h, w, len(classes), classes)
