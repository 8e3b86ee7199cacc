"""Tiled translation of images larger than a pixel budget: overlapping tiles, blended with a smooth window.

The image is cut into a grid of equal tiles (`tile` pixels, rounded up to the generator's size multiple)
that overlap by at least `overlap` pixels (at most a third of the tile). Each tile's output is weighted
by a separable window: 1 inside, a raised-cosine (sin²) ramp `overlap` pixels long in the middle of
each overlap with a neighbour, and 0 beyond it (the tile's outermost pixels, the least reliable, are
left to the neighbour). The two ramps of one overlap lie on the same pixels and add up to 1, so every
pixel is covered; the weighted sum is divided by the summed weights all the same. A generator that
sees only nearby pixels gives the whole-image result, one that does not (instance norm, a wide
receptive field) shows no seam. Memory: one float32 output accumulator [C, H, W] plus `batch` tiles' activations.

Plain numpy; condgan.tiling is the PyTorch twin (same plan, tests/test_tiling.py holds them together).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import images
from .errors import UsageError

DEFAULT_TILE, DEFAULT_OVERLAP, DEFAULT_BATCH = 512, 64, 4
DEFAULT_MAX_PIXELS = 2048 * 2048  # images above this are tiled unless told otherwise


def round_tile(tile: int, multiple: int) -> int:
    """The tile size rounded up to the generator's size multiple (so tiles need no padding inside)."""
    if tile < 1 or multiple < 1:
        raise UsageError(f"the tile size ({tile}) and the size multiple ({multiple}) must be at least 1")
    return -(-tile // multiple) * multiple


def axis_plan(length: int, tile: int, overlap: int) -> tuple[int, list[int], list[tuple[int, int]], int]:
    """(tile length, tile starts, (overlap before, overlap after) per tile, ramp length) along one axis.

    The overlap is kept to a third of the tile, so the ramps of one tile never meet."""
    if length <= tile:
        return length, [0], [(0, 0)], 0
    overlap = min(max(overlap, 0), tile // 3)
    n = math.ceil((length - overlap) / (tile - overlap))
    starts = [(i * (length - tile)) // (n - 1) for i in range(n)]  # spread evenly: every overlap >= overlap
    shared = [0] + [a + tile - b for a, b in zip(starts, starts[1:])] + [0]
    return tile, starts, list(zip(shared, shared[1:])), overlap


def window(size: int, before: int, after: int, ramp: int) -> np.ndarray:
    """1-D weights: 0 up to a sin² rise over `ramp` pixels in the middle of the `before` overlap, 1, then a
    cos² fall in the middle of the `after` overlap and 0; within the ramps the weights are > 0."""
    w = np.ones(size, np.float64)
    k = 0.5 * np.pi * (np.arange(ramp) + 0.5) / max(ramp, 1)
    if before:
        a = (before - ramp) // 2
        w[:a] = 0
        w[a:a + ramp] = np.sin(k) ** 2
    if after:
        b = size - after + (after - ramp) // 2
        w[b:b + ramp] *= np.cos(k) ** 2
        w[b + ramp:] = 0
    return w.astype(np.float32)


def plan(height: int, width: int, tile: int, overlap: int, multiple: int = 1):
    """[(y, x, tile height, tile width, row window, column window)] covering a height x width image."""
    tile = round_tile(tile, multiple)
    th, ys, yr, ramp_y = axis_plan(height, tile, overlap)
    tw, xs, xr, ramp_x = axis_plan(width, tile, overlap)
    return [(y, x, th, tw, window(th, *ry, ramp_y), window(tw, *rx, ramp_x))
            for y, ry in zip(ys, yr) for x, rx in zip(xs, xr)]


def needs_tiling(height: int, width: int, tile: int | None, max_pixels: int) -> bool:
    """Tile when asked to (`tile` given) or when the image has more than `max_pixels` (0: never)."""
    return bool(tile) or (max_pixels > 0 and height * width > max_pixels)


def translate_tiled(run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, tile: int = DEFAULT_TILE,
                    overlap: int = DEFAULT_OVERLAP, multiple: int = 1, batch: int = DEFAULT_BATCH,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """uint8 [H, W, C_in] -> uint8 [H, W, C_out] through `run` (float32 [N, C_in, h, w] -> [N, C_out, h, w]),
    tile by tile, `batch` tiles per call; progress(done, total) after each call."""
    h, w = pixels.shape[:2]
    tiles = plan(h, w, tile, overlap, multiple)
    acc = None
    row_sum, col_sum = np.zeros(h, np.float32), np.zeros(w, np.float32)
    for k in range(0, len(tiles), max(1, batch)):
        chunk = tiles[k:k + max(1, batch)]
        y = run(np.stack([images.to_float(pixels[t[0]:t[0] + t[2], t[1]:t[1] + t[3]]) for t in chunk]))
        if acc is None:
            acc = np.zeros((y.shape[1], h, w), np.float32)
        for (y0, x0, th, tw, wy, wx), out in zip(chunk, y):
            acc[:, y0:y0 + th, x0:x0 + tw] += out * wy[:, None] * wx[None, :]
        if progress:
            progress(min(k + len(chunk), len(tiles)), len(tiles))
    for y0, x0, th, tw, wy, wx in tiles:  # the summed weights are separable: rows x columns
        if x0 == 0:
            row_sum[y0:y0 + th] += wy
        if y0 == 0:
            col_sum[x0:x0 + tw] += wx
    acc /= row_sum[None, :, None]
    acc /= col_sum[None, None, :]
    return to_uint8_inplace(acc)


def to_uint8_inplace(acc: np.ndarray) -> np.ndarray:
    """float32 [C, H, W] in [-1, 1] -> uint8 [H, W, C], as images.to_uint8 but reusing `acc` (no big temporaries)."""
    np.clip(acc, -1.0, 1.0, out=acc)
    acc += np.float32(1.0)
    acc *= np.float32(127.5)
    acc += np.float32(0.5)
    np.floor(acc, out=acc)
    return np.ascontiguousarray(np.moveaxis(acc.astype(np.uint8), 0, -1))
