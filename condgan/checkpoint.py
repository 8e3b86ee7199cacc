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
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a failed write or fsync names no file: name the one being written
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
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


TRAINING_STATE = {"optimizers": dict, "schedulers": dict, "scalers": dict, "step": int, "epoch": int,
                  "batch_in_epoch": int, "rng": dict}


def check_structure(ckpt, file, for_resume: bool = False) -> None:
    """Raise CheckpointError unless `ckpt` has the shape of a condgan checkpoint (what every command reads).

    The config's own fields are checked by the config class (config.from_dict), the data description by
    DataInfo.from_dict; this checks the frame around them, and with `for_resume` the training state.
    """
    def bad(why: str):
        return CheckpointError(f"{file} is not a condgan checkpoint ({why})")
    if not isinstance(ckpt, dict):
        raise bad(f"it holds a {type(ckpt).__name__}, not a mapping")
    for key, typ in (("config", dict), ("model", dict), ("data_info", dict)):
        if key not in ckpt:
            raise bad(f"no {key!r} entry")
        if not isinstance(ckpt[key], typ):
            raise bad(f"its {key!r} entry is a {type(ckpt[key]).__name__}, not a mapping")
    if not isinstance(ckpt["config"].get("model"), str):
        raise bad("its config names no model")
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in ckpt["model"].items()):
        raise bad("its model weights are not a mapping of names to tensors")
    if for_resume and isinstance(ckpt.get("converted"), dict):
        raise CheckpointError(f"{file} was converted from another implementation's generator (condgan.convert): "
                              f"its discriminator is freshly initialised and it has no training state, so it "
                              f"can be used for translation, evaluation and export, but not resumed")
    if for_resume:
        for key, typ in TRAINING_STATE.items():
            value = ckpt.get(key)
            if not isinstance(value, typ) or isinstance(value, bool) or (typ is int and value < 0):
                raise bad(f"its training state has no valid {key!r}; it can be used for sampling, "
                          f"translation and export, but not resumed")


def load(path: str | Path, map_location="cpu", for_resume: bool = False) -> dict:
    """Load a checkpoint with weights_only=True (no arbitrary code from the file) and check its structure.

    The one loader every command uses: train --resume (with `for_resume`), sample, translate, evaluate, export.
    """
    file = resolve(path)
    try:
        ckpt = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, wrong format, pickled code: all mean "not usable"
        raise CheckpointError(f"checkpoint {file} is corrupt or not a condgan checkpoint "
                              f"({type(e).__name__})") from None
    check_structure(ckpt, file, for_resume)
    return ckpt


def package_version() -> str:
    return __version__
