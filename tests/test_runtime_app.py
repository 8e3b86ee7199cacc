"""The torch-free runtime app (export/python, `condgan-run`): run as users run it, in an environment where
torch, condgan and onnx cannot be imported, against tiny models written by condgan.export."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "export" / "python"
sys.path.insert(0, str(RUNTIME))
import condgan_runtime as cr  # noqa: E402
from condgan_runtime import images as cr_images  # noqa: E402

BLOCKER = '''\
"""Test environment without PyTorch: these imports fail as if the packages were not installed."""
import sys

BLOCKED = {"torch", "torchvision", "torchaudio", "condgan", "onnx"}


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: this environment has no PyTorch)")
        return None


sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    """Tiny random-weight generators exported by condgan.export: cgan (grey, int64 labels), cgan (RGB, named
    classes, int32 labels), pix2pix 3 -> 3 and pix2pix 2 -> 5 channels."""
    from condgan import models
    from condgan.data import DataInfo
    from condgan.export import export_model
    from condgan.models.cgan import CGANConfig
    from condgan.models.pix2pix import Pix2PixConfig

    d = tmp_path_factory.mktemp("models")
    cgan = CGANConfig(g_width=8, d_width=8, latent_dim=8, embed_dim=4)
    p2p = Pix2PixConfig(generator="unet_128", unet_depth=3, g_width=4)
    specs = {
        "digits": (cgan, DataInfo(kind="labelled", name="digits", channels=1, height=28, width=28, num_classes=10,
                                  class_names=[str(i) for i in range(10)]), {}),
        "pets": (cgan, DataInfo(kind="labelled", name="pets", channels=3, height=8, width=12, num_classes=3,
                                class_names=["cat", "dog", "bird"]), {"label_dtype": "int32"}),
        "p2p": (p2p, DataInfo(kind="paired", name="x", channels=3, height=32, width=32, in_channels=3), {}),
        "p2p25": (p2p, DataInfo(kind="paired", name="y", channels=5, height=32, width=32, in_channels=2), {}),
    }
    paths = {}
    for name, (cfg, info, options) in specs.items():
        paths[name] = d / f"{name}.onnx"
        export_model(models.build(cfg, info).eval(), paths[name], check=False, **options)
    return paths


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """Run `python -m condgan_runtime ...` where torch cannot be imported; returns the CompletedProcess."""
    block = tmp_path_factory.mktemp("no_torch")
    (block / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONSTARTUP")}
    env.update(PYTHONPATH=os.pathsep.join([str(block), str(RUNTIME)]), PYTHONNOUSERSITE="1",
               PYTHONDONTWRITEBYTECODE="1")
    cwd = tmp_path_factory.mktemp("cwd")

    def run(*args, module=True, cwd=cwd):
        cmd = [sys.executable, "-m", "condgan_runtime", *map(str, args)] if module else [sys.executable, *args]
        return subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    return run


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result, *needles, code=None):
    """Non-zero exit, exactly one line on stderr naming the problem, no traceback."""
    assert result.returncode != 0, result.stdout
    if code is not None:
        assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("condgan-run: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def contract_u8(y):
    """The contract's conversion, written out independently of the app: round((clip(y, -1, 1) + 1) * 127.5)."""
    return np.round((np.clip(y.astype(np.float64), -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)


def tiles(grid, n, h, w, nrow, pad=2):
    return [grid[pad + (i // nrow) * (h + pad):][:h, pad + (i % nrow) * (w + pad):][:, :w] for i in range(n)]


def test_environment_cannot_import_torch(app):
    for name in ("torch", "condgan", "onnx", "torchvision"):
        r = app("-c", f"import {name}", module=False)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr and "blocked" in r.stderr, (name, r.stderr)
    r = app("-c", "import onnxruntime, numpy, PIL, condgan_runtime.cli, sys; "
                  "print(condgan_runtime.__file__, sorted(m for m in sys.modules if m.startswith('torch')))",
            module=False)
    assert str(RUNTIME) in ok(r) and r.stdout.strip().endswith("[]")


def test_info(app, onnx_models):
    out = ok(app("info", onnx_models["pets"]))
    for text in ("cgan conditional generator", "3 x 8 x 12 (Rgb8)", "latent_dim   8", "0 cat, 1 dog, 2 bird",
                 "int32", "CPUExecutionProvider"):
        assert text in out, out
    out = ok(app("info", onnx_models["p2p25"]))
    assert "pix2pix translation generator" in out and "2 channels, any height and width" in out, out
    import json
    meta = json.loads(ok(app("info", onnx_models["digits"], "--json")))
    assert meta == cr.read_metadata(onnx_models["digits"]) and meta["condgan.kind"] == "conditional"


def test_generate_by_index_matches_onnxruntime(app, onnx_models, tmp_path):
    path = onnx_models["digits"]
    out = ok(app("generate", path, "--label", "3", "--n", "6", "--seed", "7", "--nrow", "3", "--threads", "1",
                 "--out", tmp_path / "grid.png", "--each", tmp_path / "each"))
    assert "seed 7" in out and "class 3" in out
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (2 * 30 + 2, 3 * 30 + 2)  # 2 rows x 3 columns of 28x28 with 2 px padding, greyscale
    z = cr.load(path).noise(6, seed=7)  # the app's noise, through its API...
    assert np.array_equal(z, np.random.default_rng(7).standard_normal((6, 8), dtype=np.float32))  # ...as documented
    expected = contract_u8(session(path).run(None, {"z": z, "label": np.full(6, 3, np.int64)})[0])[..., 0]
    for i, tile in enumerate(tiles(grid, 6, 28, 28, 3)):
        assert np.array_equal(tile, expected[i]), i
        assert np.array_equal(np.asarray(Image.open(tmp_path / "each" / f"{i:04d}_3.png")), expected[i])
    mask = np.ones_like(grid, bool)
    for i in range(6):
        mask[2 + (i // 3) * 30:][:28, 2 + (i % 3) * 30:][:, :28] = False
    assert (grid[mask] == 0).all()  # padding is black
    assert not [p for p in tmp_path.rglob(".*")], "temp files left behind"


def test_generate_by_name_int32_labels(app, onnx_models, tmp_path):
    path = onnx_models["pets"]
    ok(app("generate", path, "--label", "dog", "--n", "4", "--seed", "5", "--threads", "1",
           "--out", tmp_path / "d.png"))
    grid = np.asarray(Image.open(tmp_path / "d.png"))
    assert grid.shape == (8 + 4, 4 * 14 + 2, 3)
    z = cr.load(path).noise(4, 5)
    expected = contract_u8(session(path).run(None, {"z": z, "label": np.ones(4, np.int32)})[0])
    assert all(np.array_equal(t, e) for t, e in zip(tiles(grid, 4, 8, 12, 4), expected))
    ok(app("generate", path, "--label", "1", "--n", "4", "--seed", "5", "--threads", "1",
           "--out", tmp_path / "i.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "i.png")), grid)  # by name == by index
    out = ok(app("generate", path, "--label", "all", "--n", "2", "--out", tmp_path / "all.png"))
    assert "all 3 classes" in out
    assert Image.open(tmp_path / "all.png").size == (2 * 14 + 2, 3 * 10 + 2)  # one row per class


def test_translate_non_square_image(app, onnx_models, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (23, 37, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    ok(app("translate", onnx_models["p2p"], tmp_path / "photo.png", "--out", tmp_path / "out", "--threads", "1"))
    got = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert got.shape == (23, 37, 3)
    x = (pixels.astype(np.float32) / np.float32(127.5) - 1).transpose(2, 0, 1)[None]
    assert np.array_equal(got, contract_u8(session(onnx_models["p2p"]).run(None, {"image": x})[0])[0])


def _pointwise_model(path):
    """A hand-built translation model whose output pixel sees only its input pixel: 1x1 conv + tanh."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(0).standard_normal((3, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["c"]), helper.make_node("Tanh", ["c"], ["translated"])], "pw",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("translated", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    for k, v in {"condgan.kind": "translation", "condgan.model": "pointwise", "condgan.channels": "3",
                 "condgan.height": "8", "condgan.width": "8", "condgan.in_channels": "3"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def test_translate_tiles_large_images(app, onnx_models, tmp_path):
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    pw = _pointwise_model(tmp_path / "pw.onnx")
    whole = ok(app("translate", pw, tmp_path / "big.png", "--out", tmp_path / "whole.png"))
    assert "px tiles" not in whole
    r = app("translate", pw, tmp_path / "big.png", "--out", tmp_path / "tiled.png", "--max-pixels", "5000",
            "--tile", "32", "--tile-overlap", "8", "--tile-batch", "3")
    assert "32 px tiles, overlap 8" in ok(r) and "big.png: tile 12/12" in r.stderr
    a, b = (np.asarray(Image.open(tmp_path / f"{n}.png")).astype(int) for n in ("whole", "tiled"))
    assert a.shape == b.shape == (70, 90, 3) and np.abs(a - b).max() <= 1  # a local model: tiles change nothing
    # the U-Net export (multiple 8) tiles automatically above --max-pixels, as the library does
    t = cr.load(onnx_models["p2p"])
    assert t.tile_multiple == 8
    ok(app("translate", onnx_models["p2p"], tmp_path / "big.png", "--out", tmp_path / "p2p.png", "--max-pixels",
           "5000", "--tile-overlap", "8", "-q"))
    pixels = np.asarray(Image.open(tmp_path / "big.png"))
    expected = t.translate_tiled(pixels, 512, 8)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "p2p.png")), expected)
    one_line_error(app("translate", pw, tmp_path / "big.png", "--out", tmp_path / "x.png", "--tile", "0"),
                   "--tile", code=2)


def test_translate_folder(app, onnx_models, tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "in"
    src.mkdir()
    sizes = {"a.png": (23, 37), "b.jpg": (23, 37), "c.png": (40, 17), "d.bmp": (23, 37), "e.png": (5, 6)}
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / name)
    Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8), "L").save(src / "grey.png")  # converted to RGB
    sizes["grey.png"] = (9, 11)
    (src / "notes.txt").write_text("not an image")
    out = ok(app("translate", onnx_models["p2p"], src, "--out", tmp_path / "out", "--batch-size", "2"))
    assert "translated 6 image(s) in 5 batch(es)" in out and "notes.txt" in out, out
    t = cr.load(onnx_models["p2p"])
    for name, (h, w) in sizes.items():
        got = np.asarray(Image.open(tmp_path / "out" / f"{Path(name).stem}.png"))
        assert got.shape == (h, w, 3), name
        alone = t.translate(cr.read(src / name, 3))  # in-process, one image per call
        assert np.abs(got.astype(int) - alone).max() <= 1, name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{Path(n).stem}.png" for n in sizes)


def test_translate_npy_for_odd_channel_counts(app, onnx_models, tmp_path):
    np.save(tmp_path / "field.npy", np.random.default_rng(2).integers(0, 256, (19, 21, 2), dtype=np.uint8))
    ok(app("translate", onnx_models["p2p25"], tmp_path / "field.npy", "--out", tmp_path / "out"))
    got = np.load(tmp_path / "out" / "field.npy")
    assert got.shape == (19, 21, 5) and got.dtype == np.uint8


def test_errors_are_one_sentence(app, onnx_models, tmp_path):
    np.save(tmp_path / "rgb.npy", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "fake.onnx").write_text("not a model")
    import onnx
    bare = onnx.load(str(onnx_models["digits"]))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    digits, p2p, p2p25, out = onnx_models["digits"], onnx_models["p2p"], onnx_models["p2p25"], tmp_path / "out"
    one_line_error(app("translate", p2p25, tmp_path / "rgb.npy", "--out", out), "rgb.npy", "3 channels",
                   "2-channel", code=1)
    one_line_error(app("translate", p2p, tmp_path / "broken.png", "--out", out), "broken.png", code=1)
    one_line_error(app("translate", p2p, tmp_path / "text.jpg", "--out", out), "text.jpg", code=1)
    one_line_error(app("generate", digits, "--label", "12"), "label 12", "0-9", code=2)
    one_line_error(app("generate", onnx_models["pets"], "--label", "zebra"), "zebra", "cat", "dog", "bird", code=2)
    one_line_error(app("generate", p2p, "--label", "1"), "translation model", "translate", code=2)
    one_line_error(app("translate", digits, tmp_path / "rgb.npy", "--out", out), "conditional model", code=2)
    one_line_error(app("info", tmp_path / "missing.onnx"), "missing.onnx", "does not exist", code=1)
    one_line_error(app("info", tmp_path / "fake.onnx"), "fake.onnx", "not an ONNX model", code=1)
    one_line_error(app("generate", tmp_path / "bare.onnx"), "bare.onnx", "no condgan metadata", code=1)
    one_line_error(app("generate", digits, "--provider", "NoSuchExecutionProvider"), "not available", code=2)
    one_line_error(app("generate", digits, "--n", "zero"), "--n", code=2)
    assert not out.exists()  # nothing was written by the failed runs


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "img.png"
    cr.save(np.full((4, 5, 3), 7, np.uint8), target)

    def fail_midway(self, fp, format=None, **kw):
        fp.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", fail_midway)
    with pytest.raises(cr.CondganRuntimeError, match="cannot write .*img.png: No space left"):
        cr.save(np.zeros((4, 5, 3), np.uint8), target)
    monkeypatch.undo()
    assert np.asarray(Image.open(target)).max() == 7  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["img.png"]  # and no temp file is left


def test_python_api(onnx_models):
    g = cr.load(onnx_models["pets"])
    assert isinstance(g, cr.Generator) and g.class_names == ["cat", "dog", "bird"] and g.channels == 3
    a = g.generate("bird", n=3, seed=1)
    assert a.shape == (3, 8, 12, 3) and a.dtype == np.uint8
    assert np.array_equal(a, g.generate([2, 2, 2], z=g.noise(3, 1)))
    with pytest.raises(cr.UsageError, match="out of range"):
        g.generate(3)
    t = cr.load(onnx_models["p2p"])
    assert isinstance(t, cr.Translator) and t.in_channels == 3
    x = np.random.default_rng(3).integers(0, 256, (2, 13, 7, 3), dtype=np.uint8)
    y = t.translate(x)
    assert y.shape == (2, 13, 7, 3) and np.array_equal(y[1], t.translate(x[1]))
    with pytest.raises(cr.UsageError, match="13 x 7 x 3|H x W x 3"):
        t.translate(x[..., :2])
    assert np.array_equal(cr_images.to_uint8(cr_images.to_float(x)), x)  # the conversions round-trip


@pytest.mark.parametrize("error, fragment", [
    (MemoryError(), "out of memory"),
    (RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer"),
     "ran out of memory"),
    (OSError(28, "No space left on device", "/data/grid.png"), "No space left on device (/data/grid.png)"),
])
def test_memory_and_disk_errors_are_sentences(onnx_models, monkeypatch, capsys, error, fragment):
    from condgan_runtime import cli

    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(cli, "load", fail)
    assert cli.main(["generate", str(onnx_models["digits"])]) == 1
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "internal error" not in err
