"""The procedural maps dataset: deterministic, well-formed, varied, and not a per-pixel colour lookup."""
import numpy as np
import pytest
from PIL import Image

from condgan.data.procedural_maps import MAP_PALETTE, ProceduralMaps, render_pair, write_folder

STRIDE = 1_000_003


def _is(image: np.ndarray, name: str) -> np.ndarray:
    return (image == np.array(MAP_PALETTE[name], np.uint8)).all(-1)


def test_same_seed_same_pair_other_seed_other_layout():
    a1, b1 = render_pair(5, 64)
    a2, b2 = render_pair(5, 64)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    a3, b3 = render_pair(6, 64)
    assert not np.array_equal(b1, b3) and not np.array_equal(a1, a3)


@pytest.mark.parametrize("size", [32, 64, 96, 256])
def test_shapes_and_dtypes(size):
    for image in render_pair(1, size):
        assert image.shape == (size, size, 3) and image.dtype == np.uint8


def test_map_uses_only_the_palette_and_every_class_appears():
    maps = [render_pair(seed, 192)[1] for seed in range(10)]
    for b in maps:
        assert np.logical_or.reduce([_is(b, name) for name in MAP_PALETTE]).all()
    for name in MAP_PALETTE:
        assert sum(_is(b, name).any() for b in maps) >= 3, name
    for name in ("block", "building", "road"):
        assert all(_is(b, name).any() for b in maps), name


def test_aerial_needs_context_but_classes_stay_distinct():
    pixels = {name: [] for name in ("block", "building", "park", "road", "water")}
    for seed in range(6):
        a, b = render_pair(seed, 128)
        for name, chunks in pixels.items():
            chunks.append(a[_is(b, name)].astype(np.float32))
    means = {}
    for name, chunks in pixels.items():
        values = np.concatenate(chunks)
        assert len(values) > 1000, name
        means[name] = values.mean(0)
        assert values.std(0).mean() > 8, name  # texture, shadows, roof colours, lighting: not a colour lookup
    assert means["park"][1] > means["park"][0] and means["water"][2] > means["water"][0]
    assert means["road"].mean() < means["block"].mean()
    assert np.linalg.norm(means["water"] - means["block"]) > 40


def test_dataset_items():
    ds = ProceduralMaps(3, size=32, base_seed=2)
    assert len(ds) == 3
    item = ds[1]
    a, b = render_pair(2 * STRIDE + 1, 32)
    assert item["name"] == "00001" and np.array_equal(item["A"], a) and np.array_equal(item["B"], b)
    assert np.array_equal(ds[-1]["A"], ds[2]["A"])
    with pytest.raises(IndexError):
        ds[3]


def test_write_folder(tmp_path):
    root = write_folder(tmp_path / "maps", n_train=3, n_val=2, size=32, seed=1)
    assert root == tmp_path / "maps" and sorted(p.name for p in tmp_path.iterdir()) == ["maps"]
    assert sorted(p.name for p in (root / "train").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert sorted(p.name for p in (root / "val").iterdir()) == ["00000.png", "00001.png"]
    for split, base in (("train", 2), ("val", 3)):
        for i in range(2):
            pair = np.asarray(Image.open(root / split / f"{i:05d}.png").convert("RGB"))
            a, b = render_pair(base * STRIDE + i, 32)
            assert pair.shape == (32, 64, 3)
            assert np.array_equal(pair[:, :32], a) and np.array_equal(pair[:, 32:], b)
    train0 = np.asarray(Image.open(root / "train" / "00000.png"))
    val0 = np.asarray(Image.open(root / "val" / "00000.png"))
    assert not np.array_equal(train0, val0)
    with pytest.raises(FileExistsError):
        write_folder(root, 1, 1, size=32)
