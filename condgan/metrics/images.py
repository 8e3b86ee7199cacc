"""Image statistics that need no network: checkerboard artefacts and per-pixel label accuracy.

All functions take float images in [-1, 1], NCHW (the package's convention).

Checkerboard artefacts (the period-2 pattern transposed convolutions leave) show in the
Fourier power spectrum at the Nyquist frequencies. `checkerboard_power` is the share of an
image's power found there; natural images have some, so what to report is the ratio of the
outputs' power to that of real images of the same kind, `checkerboard_ratio(outputs, reals)`:
about 1 means no more period-2 structure than real images, 10 means ten times as much.

Label accuracy is for targets that are label maps (flat colour per class, as in facades,
cityscapes or the package's procedural maps), often JPEG-compressed or resized. The palette
comes from "flat" pixels only: those whose 3x3 neighbourhood spans at most FLAT levels in every
channel. JPEG ringing and the blends that resizing makes sit next to edges, so they are not
flat and found no classes. Flat colours are grouped greedily, most frequent first: a group
holds the colours within CLUSTER_RADIUS of its most frequent exact colour, and its mean colour
(weighted by count, rounded) is the class colour reported: exact for clean maps, within a few
levels for JPEG ones, where flat areas of saturated colours move by up to about 15 levels.
Class colours closer than about 2 * CLUSTER_RADIUS may merge. Then exact colours that are frequent
on their own, over all pixels, and neither near a class colour nor a blend of two (thin
classes, such as lines one or two pixels wide in maps neither compressed nor resized) join the
palette. A colour is kept when it covers at least `min_share` of all pixels (a flat group: with
its flat pixels alone). `looks_like_label_maps` asks for LABEL_MAP_FLAT of the pixels flat and
LABEL_MAP_COVERAGE of them explained by palette colours or blends of two.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FLAT = 10  # uint8 levels: the largest channel range in a 3x3 neighbourhood that counts as flat
CLUSTER_RADIUS = 16.0  # uint8 RGB distance: colours this close to a class colour belong to it
BLEND_RADIUS = 16.0  # uint8 RGB distance to the segment between two class colours: a blend of the two
FLAT_RADIUS = 10.0  # uint8 RGB distance: a flat pixel this close to a class colour sits on that class
FLAT_ON_PALETTE = 0.95  # share of a label map's flat pixels within FLAT_RADIUS of a class colour
LABEL_MAP_COVERAGE = 0.8  # share of pixels that class colours, or blends of two, must explain
LABEL_MAP_FLAT = 0.2  # share of pixels that must be flat (textured images have few flat pixels)
MAX_GROUPS = 256  # flat colour groups considered before giving up on finding more
SAMPLE = 1 << 20  # pixels looks_like_label_maps examines at most (an even subsample)


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float NCHW -> uint8 NCHW RGB: 3 or more channels give their first 3, fewer their first as grey."""
    if images.dim() != 4 or images.shape[1] == 0:
        raise ValueError(f"expected NCHW images, got shape {tuple(images.shape)}")
    x = images.detach().float()
    x = x[:, :3] if x.shape[1] >= 3 else x[:, :1].expand(-1, 3, -1, -1)
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ---- checkerboard ---------------------------------------------------------------------------------------
def checkerboard_power(images: torch.Tensor) -> float:
    """Mean over images of the share of Fourier power (DC excluded) at the period-2 frequencies.

    Per image: the channel mean, minus its mean, cropped to even height and width; the power
    at (H/2, 0), (0, W/2) and (H/2, W/2) over the total. A constant image scores 0.
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty NCHW batch, got shape {tuple(images.shape)}")
    g = images.detach().to(torch.float64).mean(1)
    h, w = g.shape[-2] // 2 * 2, g.shape[-1] // 2 * 2
    if h < 2 or w < 2:
        raise ValueError(f"images of {tuple(images.shape[-2:])} pixels are too small for a period-2 score")
    g = g[:, :h, :w]
    g = g - g.mean(dim=(1, 2), keepdim=True)
    power = torch.fft.fft2(g).abs().square()
    total = power.flatten(1).sum(1) - power[:, 0, 0]
    nyquist = power[:, h // 2, 0] + power[:, 0, w // 2] + power[:, h // 2, w // 2]
    share = torch.where(total > 0, nyquist / total.clamp_min(torch.finfo(torch.float64).tiny),
                        torch.zeros_like(total))
    return share.mean().item()


def checkerboard_ratio(outputs: torch.Tensor, reals: torch.Tensor) -> float:
    """checkerboard_power(outputs) / checkerboard_power(reals): inf when only the reals have none, nan when neither."""
    out, real = checkerboard_power(outputs), checkerboard_power(reals)
    if real == 0:
        return float("nan") if out == 0 else float("inf")
    return out / real


# ---- label maps -------------------------------------------------------------------------------------------
def _keys(u8: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3] -> one int64 per colour."""
    c = u8.long()
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


def _colours(keys: torch.Tensor) -> torch.Tensor:
    return torch.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], -1).float()


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N*H*W, 3] pixels of [-1, 1] images."""
    return to_uint8_rgb(images).permute(0, 2, 3, 1).reshape(-1, 3)


def _flat_pixels(u8: torch.Tensor) -> torch.Tensor:
    """The uint8 [M, 3] pixels whose 3x3 neighbourhood spans at most FLAT levels in every channel."""
    def three(x, op):  # op over each pixel's 3x3 neighbourhood, rows then columns; borders see fewer pixels
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        x = op(op(x[..., :-2], x[..., 1:-1]), x[..., 2:])
        return op(op(x[..., :-2, :], x[..., 1:-1, :]), x[..., 2:, :])

    flat = (three(u8, torch.maximum) - three(u8, torch.minimum)).amax(1) <= FLAT
    return u8.permute(0, 2, 3, 1)[flat]


def _blend_distance(colours: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Distance of each colour to the nearest palette colour or segment between two palette colours."""
    best = torch.cdist(colours, palette).min(1).values
    for i in range(len(palette)):
        for j in range(i + 1, len(palette)):
            a, ab = palette[i], palette[j] - palette[i]
            t = ((colours - a) @ ab / (ab @ ab)).clamp(0, 1)
            best = torch.minimum(best, (colours - a - t[:, None] * ab).norm(dim=1))
    return best


def palette_from(targets: torch.Tensor, max_colors: int = 32, min_share: float = 0.002) -> torch.Tensor:
    """The label-map colours of `targets`: uint8 [K, 3], most frequent first, K <= max_colors.

    See the module notes: colours come from flat pixels grouped within CLUSTER_RADIUS (then
    frequent exact colours that are no blend); each covers at least `min_share` of all pixels.
    """
    u8 = to_uint8_rgb(targets)
    total = u8.shape[0] * u8.shape[2] * u8.shape[3]
    if total == 0:
        return torch.zeros(0, 3, dtype=torch.uint8)
    keys, counts = torch.unique(_keys(_flat_pixels(u8)), return_counts=True)
    order = counts.argsort(descending=True, stable=True)
    cols, counts = _colours(keys[order]), counts[order]
    free = torch.ones(len(cols), dtype=torch.bool)
    found = []  # (share, colour)
    for _ in range(MAX_GROUPS):
        left = counts[free].sum().item()
        if left == 0 or left < min_share * total:
            break
        first = int(free.nonzero()[0])
        near = free & ((cols - cols[first]).square().sum(1) <= CLUSTER_RADIUS ** 2)
        weight = counts[near].double()
        mean = (cols[near].double() * weight[:, None]).sum(0) / weight.sum()
        found.append((weight.sum().item() / total, mean.float()))
        free &= ~near
    found = [t for t in sorted(found, key=lambda t: -t[0]) if t[0] >= min_share][:max_colors]
    # thin classes: exact colours frequent by themselves, neither near a class colour nor a blend of two
    keys, counts = torch.unique(_keys(u8.permute(0, 2, 3, 1)), return_counts=True)
    order = counts.argsort(descending=True, stable=True)
    keys, counts = keys[order], counts[order]
    frequent = counts >= min_share * total
    candidates, shares = _colours(keys[frequent]), counts[frequent] / total
    if found and len(candidates):
        keep = _blend_distance(candidates, torch.stack([c for _, c in found])) > BLEND_RADIUS
        candidates, shares = candidates[keep], shares[keep]
    for colour, share in zip(candidates, shares.tolist()):  # few, if any: one at a time, each may explain the next
        if len(found) >= max_colors:
            break
        if not found or _blend_distance(colour.view(1, 3), torch.stack([c for _, c in found])).item() > BLEND_RADIUS:
            found.append((share, colour))
    if not found:
        return torch.zeros(0, 3, dtype=torch.uint8)
    return torch.stack([c for _, c in sorted(found, key=lambda t: -t[0])]).round().to(torch.uint8)


def _classes(images: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Index of the nearest palette colour for every pixel, flattened."""
    keys, inverse = torch.unique(_keys(_pixels(images)), return_inverse=True)
    return torch.cdist(_colours(keys), palette.float()).argmin(1)[inverse]


def label_accuracy(outputs: torch.Tensor, targets: torch.Tensor, palette: torch.Tensor) -> float:
    """Share of pixels whose nearest palette colour is the same in `outputs` and `targets` (same shapes)."""
    if outputs.shape[0] != targets.shape[0] or outputs.shape[2:] != targets.shape[2:]:
        raise ValueError(f"outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ in size")
    if len(palette) == 0:
        raise ValueError("the palette is empty: the targets hold no label-map colours")
    return (_classes(outputs, palette) == _classes(targets, palette)).double().mean().item()


def looks_like_label_maps(targets: torch.Tensor, max_colors: int = 32) -> bool:
    """True for label maps: LABEL_MAP_FLAT of the pixels flat, LABEL_MAP_COVERAGE explained by >= 2 palette colours.

    A pixel is explained when it lies within BLEND_RADIUS of a palette colour or of the segment
    between two (the blends that edges, resizing and JPEG make). Photos and aerial views fail
    one or the other: texture leaves few flat pixels, and their colours are no mix of a few.
    """
    u8 = to_uint8_rgb(targets)
    pixels = u8.permute(0, 2, 3, 1).reshape(-1, 3)
    if len(pixels) == 0 or len(_flat_pixels(u8)) < LABEL_MAP_FLAT * len(pixels):
        return False
    palette = palette_from(targets, max_colors=max_colors)
    if not 2 <= len(palette) < max_colors:  # a palette at the cap is no set of a few classes (photos reach it)
        return False
    # the flat regions of a label map are its classes: nearly all flat pixels sit on a palette colour
    # (real facades labels 0.99, their photos' flat sky and walls 0.59-0.71)
    flat = _flat_pixels(u8).float()
    flat = flat[::max(1, len(flat) // SAMPLE)]
    if (torch.cdist(flat, palette.float()).min(1).values <= FLAT_RADIUS).float().mean().item() < FLAT_ON_PALETTE:
        return False
    pixels = pixels[::max(1, len(pixels) // SAMPLE)]
    keys, counts = torch.unique(_keys(pixels), return_counts=True)
    explained = _blend_distance(_colours(keys), palette.float()) <= BLEND_RADIUS
    return counts[explained].sum().item() >= LABEL_MAP_COVERAGE * counts.sum().item()
