"""Checkerboard power and label-map accuracy (condgan.metrics.images) on images built with known answers."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from condgan.data.procedural_maps import MAP_LUT, render_pair
from condgan.metrics import images as im


def to_images(u8: np.ndarray) -> torch.Tensor:
    """uint8 NHWC RGB -> float NCHW in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float() / 127.5 - 1


def jpeg(u8: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for a in u8:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return np.stack(out)


def smooth(n: int, size: int, seed: int, channels: int = 3) -> torch.Tensor:
    """Smooth random images: a coarse random grid upsampled bicubically, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 5, 5, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True).clamp(-1, 1)


# ---- checkerboard -----------------------------------------------------------------------------------------
def test_pure_period_two_patterns_score_one_and_constant_images_zero():
    i, j = torch.meshgrid(torch.arange(16), torch.arange(20), indexing="ij")
    for pattern in ((-1.0) ** (i + j), (-1.0) ** i, (-1.0) ** j):
        assert im.checkerboard_power(pattern.expand(2, 3, 16, 20)) == pytest.approx(1.0)
    assert im.checkerboard_power(torch.full((1, 3, 8, 8), 0.3)) == 0.0


def test_checkerboard_power_matches_numpy_and_crops_odd_sizes():
    x = torch.rand(3, 3, 33, 31, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scores = []
    for img in x.double().numpy():
        g = img.mean(0)[:32, :30]
        p = np.abs(np.fft.fft2(g - g.mean())) ** 2
        scores.append((p[16, 0] + p[0, 15] + p[16, 15]) / (p.sum() - p[0, 0]))
    assert im.checkerboard_power(x) == pytest.approx(np.mean(scores), rel=1e-10)


def test_checkerboard_ratio_is_high_for_a_planted_pattern_and_low_for_smooth_images():
    reals, other = smooth(4, 64, seed=1), smooth(4, 64, seed=2)
    i, j = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    planted = (other + 0.05 * (-1.0) ** (i + j)).clamp(-1, 1)
    assert im.checkerboard_ratio(planted, reals) > 10
    assert 0.1 < im.checkerboard_ratio(other, reals) < 10
    assert im.checkerboard_power(other) < 1e-3
    flat = torch.zeros(2, 3, 8, 8)
    assert im.checkerboard_ratio(planted, flat) == float("inf") and np.isnan(im.checkerboard_ratio(flat, flat))


# ---- label maps -------------------------------------------------------------------------------------------
COLOURS = np.array([(200, 30, 30), (30, 160, 40), (40, 60, 200), (230, 230, 60), (128, 128, 128), (20, 20, 20)],
                   dtype=np.uint8)


def block_labels(n: int, size: int, seed: int) -> np.ndarray:
    """Label maps of random rectangles over a random background: int [n, size, size]."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, size, size), dtype=np.int64)
    for k in range(n):
        labels[k] = rng.integers(len(COLOURS))
        for _ in range(8):
            y, x = rng.integers(0, size - 8, 2)
            h, w = rng.integers(6, size // 2, 2)
            labels[k, y:y + h, x:x + w] = rng.integers(len(COLOURS))
    return labels


def matches(palette: torch.Tensor, colours: np.ndarray, tol: float) -> bool:
    """Every palette colour is within tol of a distinct true colour, and every true colour is found."""
    d = np.sqrt(((palette.numpy()[:, None].astype(float) - colours[None].astype(float)) ** 2).sum(-1))
    return len(palette) == len(colours) and sorted(d.argmin(1)) == list(range(len(colours))) and d.min(1).max() <= tol


@pytest.mark.parametrize("quality", [75, 90])
def test_palette_ignores_jpeg_noise_and_accuracy_counts_changed_pixels(quality):
    labels = block_labels(6, 64, seed=3)
    clean = COLOURS[labels]
    noisy = jpeg(clean, quality)
    assert len(np.unique(noisy.reshape(-1, 3), axis=0)) > 50 * len(COLOURS)  # JPEG made many colours
    palette = im.palette_from(to_images(noisy))
    assert palette.dtype == torch.uint8 and matches(palette, COLOURS, tol=6)
    assert im.label_accuracy(to_images(noisy), to_images(noisy), palette) == 1.0
    # a quarter of every map (its top 16 rows) moved to the next class
    changed = labels.copy()
    changed[:, :16] = (changed[:, :16] + 1) % len(COLOURS)
    assert im.label_accuracy(to_images(COLOURS[changed]), to_images(clean), palette) == pytest.approx(0.75)
    both_noisy = im.label_accuracy(to_images(jpeg(COLOURS[changed], quality)), to_images(noisy), palette)
    assert both_noisy == pytest.approx(0.75, abs=0.02)
    assert im.looks_like_label_maps(to_images(noisy)) and im.looks_like_label_maps(to_images(clean))


def test_palette_is_ordered_by_share_and_honours_the_limits():
    labels = np.zeros((1, 40, 40), dtype=np.int64)
    labels[0, :10] = 1  # 25 %
    labels[0, 10:12] = 2  # 5 %, rows two pixels high: found among the frequent exact colours
    labels[0, 12:13, :8] = 3  # 0.5 %
    x = to_images(COLOURS[labels])
    assert im.palette_from(x).tolist() == COLOURS[[0, 1, 2, 3]].tolist()
    assert im.palette_from(x, max_colors=2).tolist() == COLOURS[[0, 1]].tolist()
    assert im.palette_from(x, min_share=0.01).tolist() == COLOURS[[0, 1, 2]].tolist()
    grey = x.mean(1, keepdim=True)  # one channel: read as grey
    assert len(im.palette_from(grey)) == 4 and torch.equal(im.palette_from(grey)[:, 0], im.palette_from(grey)[:, 1])


def test_procedural_maps_are_label_maps_and_their_aerial_views_are_not():
    pairs = [render_pair(seed, 128) for seed in range(4)]
    aerial, maps = np.stack([a for a, _ in pairs]), np.stack([m for _, m in pairs])
    present = np.unique(maps.reshape(-1, 3), axis=0)
    assert sorted(im.palette_from(to_images(maps)).tolist()) == sorted(present.tolist())  # exact, thin roads too
    assert set(map(tuple, present)) <= set(map(tuple, MAP_LUT))
    assert im.looks_like_label_maps(to_images(maps)) and im.looks_like_label_maps(to_images(jpeg(maps, 75)))
    assert matches(im.palette_from(to_images(jpeg(maps, 90))), present, tol=8)
    assert not im.looks_like_label_maps(to_images(aerial))
    assert not im.looks_like_label_maps(to_images(jpeg(aerial, 75)))
    # resized and compressed, aerial views hold flat roofs and roads, whose colours and their blends
    # explain most pixels: only their texture (few flat pixels) tells them from maps
    big = np.stack([np.asarray(Image.fromarray(render_pair(seed, 256)[0]).resize((200, 200), Image.BICUBIC))
                    for seed in range(4)])
    assert not im.looks_like_label_maps(to_images(jpeg(big, 75)))


def test_natural_looking_and_noise_images_are_not_label_maps():
    assert not im.looks_like_label_maps(smooth(4, 64, seed=5))
    noise = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(6)) * 2 - 1
    assert not im.looks_like_label_maps(noise) and len(im.palette_from(noise)) == 0
    assert not im.looks_like_label_maps(torch.zeros(2, 3, 16, 16))  # one colour is no label map


def test_label_accuracy_refuses_mismatched_inputs():
    x = to_images(COLOURS[block_labels(2, 16, seed=7)])
    with pytest.raises(ValueError, match="differ in size"):
        im.label_accuracy(x, x[:1], im.palette_from(x))
    with pytest.raises(ValueError, match="palette is empty"):
        im.label_accuracy(x, x, torch.zeros(0, 3, dtype=torch.uint8))
