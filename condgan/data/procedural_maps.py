"""Procedural "maps": an offline paired dataset of random city layouts.

Each scene is rendered twice: (A) an aerial view with textured roofs, shadows, trees,
asphalt and water, and (B) a flat-colour web-map tile of the same layout. The map is a
per-pixel lookup of the scene labels, so it is recoverable from the aerial view, but the
aerial colours vary with texture, shadow and per-image lighting, so translating A to B
needs context. Everything is drawn from one seeded generator: the same (seed, size)
always gives the same pair.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

# Scene labels; the map is MAP_LUT[labels].
BLOCK, BUILDING, PARK, WATER, ROAD, MAIN_ROAD, ROAD_EDGE = range(7)
GRASS, TREE = 7, 8  # aerial-only materials on unbuilt ground

MAP_PALETTE = {
    "block": (242, 239, 233),
    "building": (217, 208, 199),
    "park": (200, 232, 188),
    "water": (170, 211, 223),
    "road": (255, 255, 255),
    "main_road": (252, 214, 164),
    "road_edge": (196, 192, 186),
}
MAP_LUT = np.array(list(MAP_PALETTE.values()), dtype=np.uint8)

_ROOFS = np.array([(150, 146, 140), (178, 174, 168), (120, 118, 116), (164, 92, 70), (140, 78, 60),
                   (196, 190, 176), (92, 96, 104), (150, 128, 100)], dtype=np.float32)
# Aerial base colour and texture amplitudes (smooth patches, fine grain, blobs, ripples) per material;
# roofs are coloured per building, so their base is black.
_AERIAL_COLOUR = np.array([(158, 150, 136), (0, 0, 0), (58, 88, 44), (44, 70, 78), (96, 96, 100), (82, 82, 86),
                           (176, 172, 166), (96, 118, 70), (34, 62, 30)], dtype=np.float32)
_AERIAL_TEXTURE = np.array([(40, 5, 0, 0), (0, 4, 0, 0), (20, 5, 0, 0), (14, 2, 0, 4), (24, 6, 0, 0), (20, 6, 0, 0),
                            (0, 8, 0, 0), (0, 5, 30, 0), (0, 4, 90, 0)], dtype=np.float32)
_SEED_STRIDE = 1_000_003


def _scale(size: int) -> float:
    """Feature scale against a 256-pixel tile; tiles under 64 pixels show part of a 64-pixel one."""
    return max(size, 64) / 256


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise of about [0, 1]: a random cells x cells grid upsampled bicubically."""
    grid = rng.random((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.BICUBIC))


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """a moved by (dy, dx) >= 0 pixels towards the bottom right, zero-filled."""
    out = np.zeros_like(a)
    out[dy:, dx:] = a[: a.shape[0] - dy, : a.shape[1] - dx]
    return out


def _draw_lines(size: int, lines: list, width: int) -> np.ndarray:
    """Boolean mask of polylines drawn `width` pixels wide."""
    canvas = Image.new("1", (size, size))
    draw = ImageDraw.Draw(canvas)
    for line in lines:
        draw.line(line, fill=1, width=width, joint="curve")
    return np.asarray(canvas)


def _draw_polygon(size: int, points: np.ndarray) -> np.ndarray:
    """Boolean mask of a filled polygon given as (x, y) rows."""
    canvas = Image.new("1", (size, size))
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in points.tolist()], fill=1)
    return np.asarray(canvas)


def _grid_lines(rng: np.random.Generator, size: int, gap: float) -> np.ndarray:
    """Road centre positions along one axis, jittered, covering [0, size)."""
    pos, out = -rng.uniform(0.2, 0.9) * gap, []
    while pos < size + gap:
        out.append(pos)
        pos += gap * rng.uniform(0.65, 1.35)
    return np.round(out).astype(int)


def _lots(rng: np.random.Generator, y0: int, y1: int, x0: int, x1: int, min_lot: float) -> list:
    """Split a block into lots by recursive cuts across its longer side."""
    todo, done = [(y0, y1, x0, x1)], []
    while todo:
        a0, a1, b0, b1 = todo.pop()
        h, w = a1 - a0, b1 - b0
        if max(h, w) < 2 * min_lot or (max(h, w) < 4 * min_lot and rng.random() < 0.3):
            done.append((a0, a1, b0, b1))
        elif h >= w:
            c = a0 + int(h * (0.35 + 0.3 * rng.random()))
            todo += [(a0, c, b0, b1), (c, a1, b0, b1)]
        else:
            c = b0 + int(w * (0.35 + 0.3 * rng.random()))
            todo += [(a0, a1, b0, c), (a0, a1, c, b1)]
    return done


def _water(rng: np.random.Generator, size: int, s: float) -> np.ndarray:
    """A winding river (most scenes), a lake, or nothing."""
    kind = rng.choice(3, p=[0.55, 0.3, 0.15])
    if kind == 0:
        t = np.linspace(-0.05, 1.05, 48)
        centre = size * (rng.uniform(0.2, 0.8) + rng.uniform(0.05, 0.15) * np.sin(2 * np.pi * (
            rng.uniform(0.4, 1.2) * t + rng.random())) + 0.03 * np.sin(2 * np.pi * (3 * t + rng.random())))
        half = s * rng.uniform(8, 16)
        outline = np.concatenate([np.stack([t * size, centre - half], 1), np.stack([t * size, centre + half], 1)[::-1]])
        return _draw_polygon(size, outline[:, ::-1] if rng.random() < 0.5 else outline)
    if kind == 1:
        theta = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        radius = s * rng.uniform(30, 60) * (1 + sum(0.12 * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
                                                    for k in (2, 3, 5)))
        centre = rng.uniform(0, size, 2)
        return _draw_polygon(size, centre + radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1))
    return np.zeros((size, size), bool)


def _layout(rng: np.random.Generator, size: int):
    """One tile's scene: (labels, building ids, heights and roof colours by id, roof shading).

    ids is 0 off buildings; heights (pixels) and roofs (RGB) are indexed by id, with row 0 unused;
    shading is a brightness factor that is 1 except on pitched and detailed roofs.
    """
    s = _scale(size)
    labels = np.full((size, size), BLOCK, np.uint8)
    w_side, w_main = max(1, round(5 * s)), max(2, round(10 * s))
    gap = 56 * s
    xs, ys = _grid_lines(rng, size, gap), _grid_lines(rng, size, gap)
    main_x, main_y = (rng.choice(np.flatnonzero((p >= 0) & (p < size))) for p in (xs, ys))
    yard = max(1, round(2 * s))

    lots, loose = [], []  # loose: a block of detached houses rather than a dense one
    for i in range(len(ys) - 1):
        for j in range(len(xs) - 1):
            y0, y1 = max(0, ys[i] + w_main // 2 + yard), min(size, ys[i + 1] - w_main // 2 - yard)
            x0, x1 = max(0, xs[j] + w_main // 2 + yard), min(size, xs[j + 1] - w_main // 2 - yard)
            if y1 - y0 < 2 or x1 - x0 < 2:
                continue
            if rng.random() < 0.14:
                labels[max(0, y0 - yard):y1 + yard, max(0, x0 - yard):x1 + yard] = PARK
                continue
            dense = rng.random() < 0.5
            found = _lots(rng, y0, y1, x0, x1, (10 if dense else 16) * s)
            lots += found
            loose += [not dense] * len(found)

    # one building per lot, set back from the lot edges; some lots stay empty (yards, car parks)
    n, loose = len(lots), np.array(loose, bool)
    rects = np.array(lots, np.int64).reshape(n, 4)
    setback = np.maximum(1, np.round(s * rng.uniform(0.5, np.where(loose, 4.0, 2.0)))).astype(np.int64)
    rects += setback[:, None] * [1, -1, 1, -1]
    h, w = rects[:, 1] - rects[:, 0], rects[:, 3] - rects[:, 2]
    keep = (h > 0) & (w > 0) & (rng.random(n) >= np.where(loose, 0.2, 0.05))
    heights = s * rng.uniform(2, np.where(loose, 9, 5))
    colours = _ROOFS[rng.integers(len(_ROOFS), size=n)] * rng.uniform(0.85, 1.15, (n, 1))
    style = rng.random(n)  # < 0.4: pitched roof with one face in shade; > 0.7: flat roof with a plant box
    box_h, box_w = max(1, round(3 * s)), max(1, round(4 * s))
    box_y = rects[:, 0] + (rng.random(n) * (h - box_h + 1)).astype(np.int64)
    box_x = rects[:, 2] + (rng.random(n) * (w - box_w + 1)).astype(np.int64)
    style[(h < 2 * box_h) | (w < 2 * box_w)] = 0.5
    ids = np.zeros((size, size), np.int32)
    shade = np.ones((size, size), np.float32)
    for k in np.flatnonzero(keep).tolist():
        a0, a1, b0, b1 = rects[k].tolist()
        ids[a0:a1, b0:b1] = k + 1
        if style[k] < 0.4:
            if a1 - a0 > b1 - b0:
                shade[a0:a1, (b0 + b1) // 2:b1] = 0.78
            else:
                shade[(a0 + a1) // 2:a1, b0:b1] = 0.78
        elif style[k] > 0.7:
            shade[box_y[k]:box_y[k] + box_h, box_x[k]:box_x[k] + box_w] = 1.2
    labels[ids > 0] = BUILDING

    labels[_water(rng, size, s)] = WATER

    side = [[(x, -size), (x, 2 * size)] for j, x in enumerate(xs) if j != main_x]
    side += [[(-size, y), (2 * size, y)] for i, y in enumerate(ys) if i != main_y]
    main = [[(xs[main_x], -size), (xs[main_x], 2 * size)], [(-size, ys[main_y]), (2 * size, ys[main_y])]]
    if rng.random() < 0.6:  # one diagonal avenue, bending slightly
        a, b = rng.uniform(-0.3, 1.3, 2) * size
        mid = (a + b) / 2 + rng.uniform(-0.15, 0.15) * size
        avenue = [(-0.1 * size, a), (0.5 * size, mid), (1.1 * size, b)]
        main.append(avenue if rng.random() < 0.5 else [(y, x) for x, y in avenue])
    water = labels == WATER
    labels[_draw_lines(size, side, w_side) & ~water] = ROAD  # side streets end at the water
    labels[_draw_lines(size, main, w_main)] = MAIN_ROAD  # main roads cross it on bridges

    paved = (labels == ROAD) | (labels == MAIN_ROAD)
    inner = paved.copy()
    inner[1:] &= paved[:-1]
    inner[:-1] &= paved[1:]
    inner[:, 1:] &= paved[:, :-1]
    inner[:, :-1] &= paved[:, 1:]
    if w_side >= 3:  # streets wide enough for a kerb get an outline (a pavement in the aerial view)
        labels[paved & ~inner & (labels == ROAD)] = ROAD_EDGE

    ids[labels != BUILDING] = 0
    heights = np.concatenate([[0], heights]).astype(np.float32)
    colours = np.concatenate([np.zeros((1, 3)), colours]).astype(np.float32)
    return labels, ids, heights, colours, shade


def _aerial(rng: np.random.Generator, labels: np.ndarray, ids: np.ndarray, heights: np.ndarray, roofs: np.ndarray,
            light: np.ndarray) -> np.ndarray:
    size = labels.shape[0]
    s = _scale(size)
    # uniform noise of unit variance: plane 0 is surface grain, planes 1-3 sensor noise
    grain = (np.frombuffer(rng.bytes(4 * size * size), np.uint8).reshape(4, size, size) - np.float32(127.5)) / 73.6
    fine = grain[0]
    patch = _smooth_noise(rng, size, max(3, round(8 * s))) - 0.5
    blobs = _smooth_noise(rng, size, max(4, round(40 * s))) - 0.5

    # aerial materials: the scene labels, plus lawns and tree canopy on unbuilt ground
    trees = ((labels == PARK) & (blobs > -0.05)) | ((labels == BLOCK) & (blobs > 0.3))
    material = np.where(trees, TREE, np.where((labels == BLOCK) & (patch > 0.15), GRASS, labels))
    colour = np.concatenate([_AERIAL_COLOUR, roofs[1:]]).T.copy()  # roof colours follow the materials
    colour[:, WATER] *= rng.uniform(0.85, 1.15)
    img = np.take(colour, np.where(ids > 0, ids + (len(_AERIAL_COLOUR) - 1), material), axis=1)  # channels first

    yy, xx = np.arange(size, dtype=np.float32)[:, None], np.arange(size, dtype=np.float32)
    angle, freq = rng.uniform(0, np.pi), 1.3 / max(s, 0.25)
    ripple = np.sin(xx * float(np.cos(angle) * freq) + yy * float(np.sin(angle) * freq) + patch * 12)
    amp = np.take(_AERIAL_TEXTURE.T, material, axis=1)
    texture = amp[0] * patch + amp[1] * fine + amp[2] * blobs + amp[3] * ripple

    # light from the top left: buildings and trees shade what is lower, roof edges catch the sun
    caster = np.maximum(np.take(heights, ids), trees * np.float32(2 * s))
    shadow = np.zeros((size, size), bool)
    for k in range(1, int(np.ceil(caster.max())) + 1):
        shadow |= _shift(caster, k, k) >= k
    shadow &= caster == 0
    bld = labels == BUILDING
    light[bld & ~_shift(bld, 1, 1)] *= 1.15
    light[shadow] = 0.55

    gain = (rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)).astype(np.float32)[:, None, None]
    offset = rng.uniform(-8, 8, 3).astype(np.float32)[:, None, None]
    img += texture
    img *= light
    img *= gain
    img += grain[1:] * 3 + offset
    np.clip(img, 0, 255, out=img)
    out = np.empty((size, size, 3), np.uint8)
    np.copyto(out, img.transpose(1, 2, 0), casting="unsafe")
    return out


def render_pair(seed: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(aerial, map) as uint8 arrays of shape (size, size, 3), identical for the same (seed, size)."""
    if size < 32:
        raise ValueError(f"size must be at least 32, got {size}")
    rng = np.random.default_rng(seed % 2**64)
    scene = _layout(rng, size)
    return _aerial(rng, *scene), np.take(MAP_LUT, scene[0], axis=0)


class ProceduralMaps(torch.utils.data.Dataset):
    """`n` pairs; item i is rendered from seed (base_seed * 1_000_003 + i).

    Returns dict(A=aerial uint8 HxWx3, B=map uint8 HxWx3, name=f"{i:05d}").
    """

    def __init__(self, n: int, size: int = 256, base_seed: int = 0):
        if not 0 <= n <= _SEED_STRIDE:
            raise ValueError(f"n must be in [0, {_SEED_STRIDE}], got {n}")
        self.n, self.size, self.base_seed = n, size, base_seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} pairs")
        i %= self.n
        a, b = render_pair(self.base_seed * _SEED_STRIDE + i, self.size)
        return {"A": a, "B": b, "name": f"{i:05d}"}


def write_folder(root: Path, n_train: int, n_val: int, size: int = 256, seed: int = 0) -> Path:
    """Write the pairs as side-by-side A|B PNGs (width 2*size) into root/train and root/val.

    This is the pix2pix "aligned" layout. Train uses base seed 2*seed and val 2*seed+1, so
    the two never share a scene. The folder is written into a temporary sibling and renamed
    into place; an existing non-empty root is an error.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} already exists and is not empty")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    tmp.chmod(0o755)
    try:
        for split, n, base in (("train", n_train, 2 * seed), ("val", n_val, 2 * seed + 1)):
            (tmp / split).mkdir()
            ds = ProceduralMaps(n, size, base)
            for i in range(n):
                item = ds[i]
                pair = np.concatenate([item["A"], item["B"]], axis=1)
                Image.fromarray(pair).save(tmp / split / f"{item['name']}.png")
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
