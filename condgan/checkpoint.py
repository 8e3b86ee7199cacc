"""Atomic checkpoint writes, safe loads, and finding a run's latest checkpoint.

A checkpoint is one file holding everything needed to continue exactly or to
use the generator: model (nets, EMA, buffers), optimizers, schedulers, grad
scalers, counters, RNG states, the resolved config and the data description.
"""
from __future__ import annotations

import contextlib
import os
import random
import tempfile
import threading
from pathlib import Path

import torch

from . import __version__
from .errors import CheckpointError

LAST = "last.pt"
BEST = "best.pt"  # the checkpoint with the best validation metric (models that have one)


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask alone can only set it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # set and restore: a file another thread creates in between gets 0o600 at worst
        old = os.umask(0o077)
        os.umask(old)
    return old


@contextlib.contextmanager
def atomic_write(path: str | Path):
    """Yield a binary file object; on success it replaces `path` in one rename (after fsync).

    A crash, an exception or a full disk mid-write leaves the previous file
    untouched and no partial file behind. The file gets the permissions open()
    would give it (0o666 less the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_umask())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_image_atomic(images, path: str | Path, **kwargs) -> None:
    """torchvision.utils.save_image as PNG, written atomically."""
    from torchvision.utils import save_image
    with atomic_write(path) as f:
        save_image(images, f, format="png", **kwargs)


def atomic_save(obj, path: str | Path) -> None:
    """torch.save through atomic_write: a failed write keeps the previous checkpoint intact."""
    try:
        with atomic_write(path) as f:
            torch.save(obj, f)
    except OSError as e:
        raise CheckpointError(f"could not write checkpoint {path} ({e.strerror or e}); "
                              f"the previous checkpoint is intact") from None


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve(path: str | Path) -> Path:
    """A checkpoint file, or a run directory -> its latest checkpoint."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / LAST
        if candidate.is_file():
            return candidate
        raise CheckpointError(f"{path} has no checkpoint (expected {candidate})")
    if path.is_file():
        return path
    raise CheckpointError(f"{path} is neither a checkpoint file nor a run directory")


def resolve_best(path: str | Path) -> Path:
    """A run directory -> its best-validation checkpoint (best.pt); a file is returned as is."""
    path = Path(path)
    if path.is_file():
        return path
    best = path / "checkpoints" / BEST
    if not best.is_file():
        raise CheckpointError(f"{path} has no best checkpoint ({best}); drop --best to use the last one")
    return best


def load(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with weights_only=True (no arbitrary code from the file)."""
    file = resolve(path)
    try:
        ckpt = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, wrong format, pickled code: all mean "not usable"
        raise CheckpointError(f"checkpoint {file} is corrupt or not a condgan checkpoint "
                              f"({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{file} is not a condgan checkpoint")
    return ckpt


def package_version() -> str:
    return __version__
