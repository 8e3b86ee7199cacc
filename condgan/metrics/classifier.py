"""A small CNN classifier trained by the package on real data, cached on disk.

It serves two metrics for class-conditional generators: conditional accuracy
(does the generated "7" look like a 7 to an independent classifier?) and the
Fréchet distance between generated and real images in its penultimate-layer
feature space ("FID (classifier features)"; not Inception FID).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint as ckpt_io


def cache_dir() -> Path:
    env = os.environ.get("CONDGAN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "condgan"


class Classifier(nn.Module):
    num_features = 128  # read by torchmetrics' FID to size its statistics

    def __init__(self, channels: int, num_classes: int, height: int, width: int):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(channels, 32), *block(32, 32), nn.MaxPool2d(2),
                                  *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
                                  nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(64 * 16, self.num_features), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.num_features, num_classes))
        self.shape = (channels, height, width)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Features(nn.Module):
    """The classifier's feature extractor as the module torchmetrics' FID expects."""

    num_features = Classifier.num_features

    def __init__(self, clf: Classifier):
        super().__init__()
        self.clf = clf

    def forward(self, x):
        return self.clf.features(x)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Small random rotations, scalings and shifts, one per image."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=g) - 0.5) * math.radians(20)
    scale = 1 + (torch.rand(n, generator=g) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=g) - 0.5) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # pad with black (-1)


def _batches(dataset, batch_size: int, order=None):
    n = len(dataset)
    order = torch.arange(n) if order is None else order
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size].tolist()
        b = dataset.__getitems__(idx) if hasattr(dataset, "__getitems__") else \
            torch.utils.data.default_collate([dataset[j] for j in idx])
        yield b["image"], b["label"]


@torch.no_grad()
def accuracy(clf: Classifier, dataset, device="cpu") -> float:
    clf.eval()
    correct = 0
    for x, y in _batches(dataset, 512):
        correct += (clf(x.to(device)).argmax(1).cpu() == y).sum().item()
    return correct / len(dataset)


@torch.enable_grad()
def train_classifier(train_set, info, epochs: int = 6, seed: int = 0, device="cpu", log=print) -> Classifier:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = Classifier(info.channels, info.num_classes, info.height, info.width).to(device)
    opt = torch.optim.AdamW(clf.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train_set) / 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    clf.train()
    t0 = time.time()
    for epoch in range(epochs):
        for x, y in _batches(train_set, 128, torch.randperm(len(train_set), generator=g)):
            x = _augment(x, g).to(device)
            loss = F.cross_entropy(clf(x), y.to(device), label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        log(f"  classifier epoch {epoch + 1}/{epochs} ({time.time() - t0:.0f} s)")
    return clf.eval()


def get_classifier(key: str, train_set, info, device="cpu", log=print) -> Classifier:
    """Load the cached classifier for `key` (which names the training data), or train and cache it."""
    path = cache_dir() / "classifiers" / f"{key}.pt"
    if path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            clf = Classifier(info.channels, info.num_classes, info.height, info.width)
            clf.load_state_dict(state)
            return clf.to(device).eval()
        except Exception:  # a damaged cache entry is rebuilt, not fatal
            log(f"cached classifier {path} is unusable; training a new one")
    log(f"training the evaluation classifier on {len(train_set)} real images (cached in {path})")
    clf = train_classifier(train_set, info, device=device, log=log)
    ckpt_io.atomic_save(clf.state_dict(), path)
    return clf
