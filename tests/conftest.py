"""Shared fixtures. Every test runs offline, on CPU, with its caches in a temp folder."""
from __future__ import annotations

import ipaddress
import socket

import numpy as np
import pytest
import torch
from PIL import Image


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    """No test may reach past loopback; caches and dataset roots live in a temp folder."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise OSError(f"network access blocked in tests: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CONDGAN_CACHE", str(cache))
    monkeypatch.setenv("CONDGAN_DATA", str(cache / "data"))
    monkeypatch.setenv("CONDGAN_PROBE", "0")  # the fixed precision/layout rule: tests/test_probe.py probes
    torch.manual_seed(0)


TINY = ["--g-width", "8", "--d-width", "8", "--latent-dim", "8", "--embed-dim", "4", "--batch-size", "8",
        "--log-every", "1", "--no-progress", "--workers", "0", "--samples-per-class", "2"]


@pytest.fixture
def tiny_args():
    """CLI flags for a tiny, fast cGAN."""
    return list(TINY)


@pytest.fixture
def digit_folder(tmp_path):
    """A folder of class subfolders holding 12 real digit PNGs per class for 3 classes."""
    from condgan.data.digits import embedded_digits

    ds, _ = embedded_digits("train")
    root = tmp_path / "folder"
    for c, name in enumerate(["zero", "one", "two"]):
        (root / name).mkdir(parents=True)
        idx = (ds.labels == c).nonzero().flatten()[:12]
        for i in idx.tolist():
            Image.fromarray(ds.images[i, 0].numpy()).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def rgb_folder(tmp_path):
    """Random 20x16 RGB images in two classes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "rgb"
    for name in ["cats", "dogs"]:
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)).save(root / name / f"{i}.jpg")
    return root
