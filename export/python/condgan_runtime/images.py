"""Pixels in and out: reading images and .npy arrays, the [-1, 1] <-> uint8 conversion, grids, atomic saves."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CondganRuntimeError, UsageError

MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channel count -> Pillow mode; other counts travel as .npy (H x W x C)
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
              ".pnm", ".tga"}
INPUT_EXTS = IMAGE_EXTS | {".npy"}


def to_float(u8: np.ndarray) -> np.ndarray:
    """uint8 pixels [..., H, W, C] -> float32 model input [..., C, H, W] in [-1, 1] (x = u8 / 127.5 - 1)."""
    x = u8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.moveaxis(x, -1, -3)


def to_uint8(y: np.ndarray) -> np.ndarray:
    """float32 model output [..., C, H, W] in [-1, 1] -> uint8 [..., H, W, C] (round((clip(y) + 1) * 127.5))."""
    v = np.floor((np.clip(y, -1.0, 1.0) + np.float32(1.0)) * np.float32(127.5) + np.float32(0.5))
    return np.ascontiguousarray(np.moveaxis(v.astype(np.uint8), -3, -1))


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.strip().splitlines()[0].rstrip(".")


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise CondganRuntimeError(f"cannot read image {path}: not an image format Pillow knows") from None
    except Exception as e:  # OSError, DecompressionBombError, a plugin's parsing errors...
        raise CondganRuntimeError(f"cannot read image {path}: {_reason(e)}") from None


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as e:
        raise CondganRuntimeError(f"cannot read {path}: {_reason(e)}") from None
    if a.ndim not in (2, 3) or a.dtype != np.uint8:
        raise CondganRuntimeError(f"{path} must hold an H x W x C uint8 array, not {a.dtype} with shape "
                                  f"{tuple(a.shape)}")
    return a


def _check_channels(path: Path, a: np.ndarray, channels: int) -> np.ndarray:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] != channels:
        raise CondganRuntimeError(f"{path} has {a.shape[2]} channel{'s' * (a.shape[2] != 1)} but the model "
                                  f"takes {channels}-channel input")
    return a


def probe(path: Path, channels: int) -> tuple[int, int]:
    """The (height, width) an input will have, read cheaply (header only); fails naming the file."""
    if path.suffix.lower() == ".npy":
        a = _check_channels(path, _load_npy(path, mmap=True), channels)
        return int(a.shape[0]), int(a.shape[1])
    if channels not in MODES:
        raise CondganRuntimeError(f"{path}: this model takes {channels}-channel input, which only .npy files "
                                  f"(H x W x {channels} uint8) can hold")
    img = _open(path)
    try:
        turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientations that swap width and height
    except Exception:  # a damaged EXIF block: read() reports it, naming the file
        turned = False
    return (img.width, img.height) if turned else (img.height, img.width)


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer or float greyscale -> 8-bit "L" (scaled, not clipped, for 16-bit data)."""
    a = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and a.size and a.max() > 255):
        a = a / 257.0
    return Image.fromarray(np.clip(np.floor(a + 0.5), 0, 255).astype(np.uint8), "L")


def read(path: Path, channels: int) -> np.ndarray:
    """An image file or .npy array -> uint8 H x W x channels (images converted with Pillow: L, RGB, RGBA)."""
    if path.suffix.lower() == ".npy":
        return np.ascontiguousarray(_check_channels(path, _load_npy(path), channels))
    if channels not in MODES:
        probe(path, channels)  # raises the explanatory error
    img = _open(path)
    try:
        img.load()
        img = ImageOps.exif_transpose(img) or img
        if img.mode in ("I", "F") or img.mode.startswith("I;16"):
            img = _eight_bit(img)
        a = np.asarray(img.convert(MODES[channels]), dtype=np.uint8)
    except Exception as e:  # truncated data, damaged EXIF, unsupported modes: all name the file

        raise CondganRuntimeError(f"cannot read image {path}: {_reason(e)}") from None
    return a[:, :, None] if a.ndim == 2 else a


def list_inputs(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image and .npy files, other files) directly in `folder`, sorted by name; hidden files are ignored."""
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as e:
        raise CondganRuntimeError(f"cannot list folder {folder}: {_reason(e)}") from None
    inputs = [p for p in entries if p.suffix.lower() in INPUT_EXTS]
    return inputs, [p for p in entries if p.suffix.lower() not in INPUT_EXTS]


def grid(images: np.ndarray, nrow: int = 8, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 [H', W', C] image, `nrow` images per row, `padding` px between and around."""
    n, h, w, c = images.shape
    cols = max(1, min(nrow, n))
    rows = -(-n // cols)
    out = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, np.uint8)
    for i, im in enumerate(images):
        y, x = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        out[y:y + h, x:x + w] = im
    return out


def output_path(path: Path, channels: int) -> Path:
    """Images whose channel count Pillow cannot save (not 1, 3 or 4) are written as .npy instead."""
    return path if channels in MODES else path.with_suffix(".npy")


def _image_format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell which image format to write for {path}; use a .png name")
    return fmt


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(array: np.ndarray, path: Path) -> Path:
    """Write uint8 H x W x C as an image (by the suffix; .npy for raw arrays), atomically: a temp file in the
    same folder, then os.replace, so no half-written file is ever left under `path`."""
    path = Path(path)
    fmt = None if path.suffix.lower() == ".npy" else _image_format(path)
    if fmt is not None and array.shape[2] not in MODES:
        raise UsageError(f"{array.shape[2]}-channel output cannot be saved as {fmt}; use a .npy name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise CondganRuntimeError(f"cannot write {path}: {_reason(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if fmt is None:
                np.save(f, array)
            else:
                img = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array, MODES[array.shape[2]])
                img.save(f, format=fmt)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, (OSError, ValueError)):
            raise CondganRuntimeError(f"cannot write {path}: {_reason(e)}") from None
        raise
    return path
