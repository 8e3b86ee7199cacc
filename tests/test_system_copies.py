"""Fashion-MNIST from a system-wide copy (Debian's dataset-fashion-mnist) instead of a download."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from condgan.data import digits
from condgan.errors import DataError


def _write_idx(system, n=5):
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("t10k", n - 2)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % 10
        with gzip.open(system / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
        with gzip.open(system / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, count) + labels.tobytes())


def test_a_system_copy_is_unpacked_and_used_without_network(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    system.mkdir()
    _write_idx(system)
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("tried the network"))
    copies = {"fashion-mnist": (system, "a test")}
    ds, info = digits.torchvision_digits("fashion-mnist", "train", tmp_path / "root", system_copies=copies)
    assert len(ds) == 5 and info.num_classes == 10 and info.class_names[9] == "Ankle boot"
    held, _ = digits.torchvision_digits("fashion-mnist", "heldout", tmp_path / "root", system_copies=copies)
    assert len(held) == 3
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                                                     "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]


def test_an_incomplete_system_copy_is_ignored(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    system.mkdir()
    _write_idx(system)
    (system / "t10k-labels-idx1-ubyte.gz").unlink()

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DataError, match="install the a test package"):
        digits.torchvision_digits("fashion-mnist", "train", tmp_path / "root",
                                  system_copies={"fashion-mnist": (system, "a test")})
