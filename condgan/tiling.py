"""Tiled translation for images larger than a pixel budget (the PyTorch side of condgan.translate).

Overlapping tiles of `tile` pixels (rounded up to the generator's size multiple: 2**depth for the
U-Net, 4 for the ResNet) go through the generator `batch` at a time; each tile's output is weighted by
a separable window, 1 inside, a sin² ramp in the middle of every overlap with a neighbour and 0 past
it, and the weighted sum is divided by the summed weights. The two ramps of one overlap lie on the
same pixels and add up to 1, so every pixel is covered, and a generator that sees only nearby pixels gives the whole-image result and one with instance norm or a
wide receptive field shows no seam. Memory: a float32 [C, H, W] accumulator on the CPU and one batch
of tiles on the device. The torch-free runtime (export/python, condgan_runtime.tiling) tiles with
the same plan; tests/test_tiling.py checks that the two agree.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from .errors import CondganError
from .nets.resnet import ResnetGenerator
from .nets.unet import UNetGenerator

DEFAULT_TILE, DEFAULT_OVERLAP, DEFAULT_BATCH = 512, 64, 4
DEFAULT_MAX_PIXELS = 2048 * 2048


def size_multiple(net: nn.Module) -> int:
    """The multiple a generator pads its input to (1 for a net that takes any size as it is)."""
    if isinstance(net, UNetGenerator):
        return 2 ** net.depth
    if isinstance(net, ResnetGenerator):
        return 4
    return 1


def tile_size(tile: int, multiple: int) -> int:
    if tile < 1:
        raise CondganError(f"--tile must be at least 1, not {tile}")
    return math.ceil(tile / multiple) * multiple


def axis_tiles(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int, int]]:
    """[(start, size, overlap before, overlap after, ramp)] along one axis (as condgan_runtime.tiling)."""
    if length <= tile:
        return [(0, length, 0, 0, 0)]
    ramp = max(0, min(overlap, tile // 3))  # at most a third of the tile: the ramps of one tile never meet
    count = math.ceil((length - ramp) / (tile - ramp))
    starts = [i * (length - tile) // (count - 1) for i in range(count)]
    edges = [0] + [a + tile - b for a, b in zip(starts, starts[1:])] + [0]
    return [(s, tile, edges[i], edges[i + 1], ramp) for i, s in enumerate(starts)]


def ramp_window(size: int, before: int, after: int, ramp: int) -> torch.Tensor:
    """1-D weights: 0, a sin² rise of `ramp` pixels centred in the overlap before, 1, a cos² fall centred in
    the overlap after, 0. The rise of one tile and the fall of its neighbour share pixels and add up to 1."""
    w = torch.ones(size, dtype=torch.float64)
    t = 0.5 * math.pi * (torch.arange(ramp, dtype=torch.float64) + 0.5) / max(ramp, 1)
    if before:
        lo = (before - ramp) // 2
        w[:lo], w[lo:lo + ramp] = 0, torch.sin(t) ** 2
    if after:
        hi = size - after + (after - ramp) // 2
        w[hi:hi + ramp] *= torch.cos(t) ** 2
        w[hi + ramp:] = 0
    return w.float()


def translate_tiled(fn: Callable[[torch.Tensor], torch.Tensor], pixels: np.ndarray, device: torch.device,
                    tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, multiple: int = 1,
                    batch: int = DEFAULT_BATCH, on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """uint8 HxWxC -> float CxHxW in [-1, 1] on the CPU, through `fn` (NCHW in [-1, 1] -> NCHW) tile by tile.

    on_batch(n) is called with the number of tiles each call finished (for a progress bar)."""
    h, w = pixels.shape[:2]
    tile = tile_size(tile, multiple)
    rows, cols = axis_tiles(h, tile, overlap), axis_tiles(w, tile, overlap)
    boxes = [(r, c) for r in rows for c in cols]
    acc = None
    for k in range(0, len(boxes), batch):
        chunk = boxes[k:k + batch]
        x = torch.stack([torch.from_numpy(np.array(pixels[y0:y0 + th, x0:x0 + tw]))
                         for (y0, th, *_), (x0, tw, *_) in chunk])
        x = x.to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        y = fn(x).float().cpu()
        if acc is None:
            acc = torch.zeros(y.shape[1], h, w)
        for ((y0, th, *ry), (x0, tw, *rx)), out in zip(chunk, y):
            acc[:, y0:y0 + th, x0:x0 + tw] += out * ramp_window(th, *ry)[:, None] * ramp_window(tw, *rx)[None, :]
        if on_batch:
            on_batch(len(chunk))
    row_sum, col_sum = torch.zeros(h), torch.zeros(w)  # the summed weights are separable
    for y0, th, *ry in rows:
        row_sum[y0:y0 + th] += ramp_window(th, *ry)
    for x0, tw, *rx in cols:
        col_sum[x0:x0 + tw] += ramp_window(tw, *rx)
    return acc.div_(row_sum[None, :, None]).div_(col_sum[None, None, :])


def tile_count(height: int, width: int, tile: int, overlap: int, multiple: int) -> int:
    tile = tile_size(tile, multiple)
    return len(axis_tiles(height, tile, overlap)) * len(axis_tiles(width, tile, overlap))
