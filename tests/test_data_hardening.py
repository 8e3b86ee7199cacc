"""Hostile or unusual data folders and file permissions: one clear sentence, or the documented fallback."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from condgan import checkpoint as ckpt_io
from condgan import data as data_lib
from condgan import evaluate, train
from condgan.data import paired, unpaired
from condgan.errors import DataError

# evaluate and train are imported at collection: config.print_config binds sys.stdout when first imported,
# and inside a test that would be the test's own captured stream, closed once the test ends.
CYCLE = ["--model", "cyclegan", "--crop-size", "16", "--load-size", "18", "--resnet-blocks", "2",
         "--g-width", "4", "--d-width", "4", "--d-layers", "2", "--pool-size", "3", "--sample-pairs", "2",
         "--no-progress", "--workers", "0", "--log-every", "1", "--epochs", "1"]


def _images(folder: Path, n: int, seed: int = 0, size=(20, 24)) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")


def _options(data, **kw) -> SimpleNamespace:
    """What the paired and unpaired builders read (the fields of a translation config)."""
    return SimpleNamespace(**{"data": str(data), "data_root": "", "progress": False, "direction": "AtoB",
                              "load_size": 18, "crop_size": 16, "preprocess": "resize_and_crop", "flip": False,
                              "procedural_train": 4, "procedural_pairs": 4, **kw})


def _one_line_exit(capsys, fn, argv) -> str:
    with pytest.raises(SystemExit) as e:
        fn(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "Traceback" not in err, err
    return err


# ---- 10: labelled folders ----------------------------------------------------------------------------------
def test_empty_class_folder_is_refused_naming_it(tmp_path):
    _images(tmp_path / "cats", 3)
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"class folder .*dogs has no images"):
        data_lib.build(str(tmp_path))


def test_class_folder_of_hidden_files_only_is_empty(tmp_path):
    """macOS `._x.jpg` resource forks carry an image extension but are no images."""
    _images(tmp_path / "cats", 2)
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "._0.png").write_bytes(b"\0\x05\x16\x07 resource fork")
    with pytest.raises(DataError, match="dogs has no images"):
        data_lib.build(str(tmp_path))


def test_empty_class_folder_through_the_cli(tmp_path, capsys):
    _images(tmp_path / "data" / "a", 2)
    (tmp_path / "data" / "b").mkdir()
    err = _one_line_exit(capsys, train.main, ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert f"class folder {tmp_path / 'data' / 'b'} has no images" in err
    assert not (tmp_path / "run").exists()


# ---- 12: --data naming a file ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["cgan", "pix2pix", "cyclegan"])
def test_data_that_is_a_file_says_so(tmp_path, capsys, model):
    file = tmp_path / "data.zip"
    file.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    err = _one_line_exit(capsys, train.main, ["--model", model, "--data", str(file), "--out", str(tmp_path / "r")])
    assert f"{file} is a file, not a folder" in err and "does not exist" not in err


def test_each_data_kind_says_a_file_is_not_a_folder(tmp_path):
    file = tmp_path / "images.txt"
    file.write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        data_lib.build(str(file))
    for kind in (paired, unpaired):
        for split in ("train", "val"):
            with pytest.raises(DataError, match="is a file, not a folder"):
                kind.build(_options(file), split)


# ---- 11: unpaired folders without val/ or test/ ------------------------------------------------------------
def test_unpaired_validation_falls_back_to_the_first_training_images(tmp_path, capsys):
    _images(tmp_path / "trainA", unpaired.VAL_FROM_TRAIN + 3, seed=1)
    _images(tmp_path / "trainB", 3, seed=2)
    train_ds, _ = unpaired.build(_options(tmp_path), "train")
    val_ds, info = unpaired.build(_options(tmp_path), "val")
    err = capsys.readouterr().err
    assert f"{tmp_path} has no valA/ valB/ or testA/ testB/ folders" in err
    assert f"first {unpaired.VAL_FROM_TRAIN} training images" in err
    assert val_ds.a.files == train_ds.a.files[:unpaired.VAL_FROM_TRAIN]  # the first ones, still in training
    assert val_ds.b.files == train_ds.b.files
    assert len(train_ds) == unpaired.VAL_FROM_TRAIN + 3
    assert len(val_ds) == unpaired.VAL_FROM_TRAIN and info.in_channels == 3
    item = val_ds[0]
    assert item["A"].shape == (3, 16, 16) and item["name"] == "00"
    with pytest.raises(DataError, match="no testA/ testB/ .* to evaluate on"):
        unpaired.build(_options(tmp_path), "test")


def test_unpaired_train_only_folder_trains_and_evaluates(tmp_path, capsys):
    root = tmp_path / "h2z"
    _images(root / "trainA", 4, seed=1)
    _images(root / "trainB", 3, seed=2)
    run = tmp_path / "run"
    assert train.main(CYCLE + ["--data", str(root), "--out", str(run)]) == 0
    captured = capsys.readouterr()
    assert "4 A and 3 B training images" in captured.out and "validation uses the first" in captured.err
    assert list((run / "samples").glob("*.png"))  # the sample grid drew its pairs from the training images
    assert evaluate.main([str(run), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["n"] == 4


def test_unpaired_val_of_one_domain_only_is_refused(tmp_path):
    _images(tmp_path / "trainA", 2)
    _images(tmp_path / "trainB", 2)
    _images(tmp_path / "valA", 2)
    with pytest.raises(DataError, match=r"has valA/ but neither valB/ nor testB/"):
        unpaired.build(_options(tmp_path), "val")


def test_unpaired_without_train_folder_is_refused(tmp_path):
    _images(tmp_path / "trainA", 2)
    _images(tmp_path / "testB", 2)
    with pytest.raises(DataError, match="has no trainB/ folder"):
        unpaired.build(_options(tmp_path), "train")


def test_unpaired_val_still_prefers_val_then_test(tmp_path, capsys):
    for name, n in (("trainA", 3), ("trainB", 3), ("testA", 2), ("testB", 2)):
        _images(tmp_path / name, n)
    ds, _ = unpaired.build(_options(tmp_path), "val")
    assert ds.a.files[0].parent.name == "testA" and len(ds) == 2
    assert "validation uses" not in capsys.readouterr().err


# ---- 13b: permissions of atomically written files ----------------------------------------------------------
@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_honours_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    with ckpt_io.atomic_write(tmp_path / "config.json") as f:
        f.write(b"{}")
    ckpt_io.atomic_save({"x": 1}, tmp_path / "last.pt")
    with open(tmp_path / "plain.txt", "w") as f:  # what an ordinary file gets, for comparison
        f.write("x")
    for name in ("config.json", "last.pt", "plain.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert os.umask(mask) == mask  # reading it left it alone


def test_umask_without_proc(tmp_path, umask, monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")
    monkeypatch.setattr(ckpt_io, "open", no_proc, raising=False)
    umask(0o027)
    with ckpt_io.atomic_write(tmp_path / "a.bin") as f:
        f.write(b"x")
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640
    assert os.umask(0o027) == 0o027
