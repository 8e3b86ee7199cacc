"""The command-line tools end to end on tiny runs, and their errors for bad input."""
import subprocess
import sys

import pytest
import torchvision
from PIL import Image

from condgan import evaluate, sample
from condgan.train import main as train


@pytest.fixture
def tiny_run(tiny_args, tmp_path):
    run = tmp_path / "run"
    assert train([*tiny_args, "--out", str(run), "--max-steps", "2"]) == 0
    return run


def test_default_command_runs_as_a_module(tmp_path):
    # the README's main command, cut to two steps: checks the entry point and its defaults wiring
    out = subprocess.run([sys.executable, "-m", "condgan.train", "--max-steps", "2", "--out", str(tmp_path / "r"),
                          "--no-progress", "--g-width", "8", "--d-width", "8"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "done: 2 steps" in out.stdout and "data: digits, 17000 images 1x28x28, 10 classes" in out.stdout


def test_sample_label_and_grid(tiny_run, tmp_path):
    out = tmp_path / "sevens.png"
    assert sample.main([str(tiny_run), "--label", "7", "--n", "9", "--out", str(out)]) == 0
    assert Image.open(out).size == (3 * 28 + 4 * 2, 3 * 28 + 4 * 2)
    grid = tmp_path / "grid.png"
    assert sample.main([str(tiny_run / "checkpoints" / "last.pt"), "--grid", "--n", "4", "--out", str(grid)]) == 0
    assert Image.open(grid).size == (4 * 28 + 5 * 2, 10 * 28 + 11 * 2)


@pytest.mark.parametrize("argv, fragment", [
    (["--label", "10"], "out of range"),
    (["--label", "-1"], "out of range"),
    (["--label", "seven"], "neither a class index nor one of the class names"),
    ([], "exactly one of --label L or --grid"),
])
def test_sample_bad_labels(tiny_run, argv, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        sample.main([str(tiny_run), *argv])
    assert e.value.code == 2 and fragment in capsys.readouterr().err


def test_sample_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(SystemExit) as e:
        sample.main([str(bad), "--grid"])
    assert e.value.code == 2 and "corrupt" in capsys.readouterr().err


@pytest.mark.parametrize("data, fragment", [
    ("imagenet-21k", "unknown dataset 'imagenet-21k'"),
    ("./does/not/exist", "does not exist"),
])
def test_train_bad_data(tiny_args, tmp_path, data, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        train([*tiny_args, "--data", data, "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and fragment in capsys.readouterr().err


def test_folder_data_sets_classes_channels_size(tiny_args, rgb_folder, tmp_path):
    run = tmp_path / "r"
    assert train([*tiny_args, "--data", str(rgb_folder), "--out", str(run), "--max-steps", "1",
                  "--batch-size", "4"]) == 0
    from condgan import checkpoint as ckpt_io
    info = ckpt_io.load(run)["data_info"]
    assert (info["channels"], info["height"], info["width"]) == (3, 16, 20)
    assert info["class_names"] == ["cats", "dogs"]
    assert sample.main([str(run), "--label", "dogs", "--n", "2", "--nrow", "2", "--out", str(tmp_path / "d.png")]) == 0


def test_unreadable_image_is_named(tiny_args, rgb_folder, tmp_path, capsys):
    (rgb_folder / "cats" / "0.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(SystemExit) as e:
        train([*tiny_args, "--data", str(rgb_folder), "--out", str(tmp_path / "r"), "--max-steps", "1"])
    assert e.value.code == 2 and "cannot read image" in capsys.readouterr().err


def test_offline_download_gives_one_clear_sentence(tiny_args, tmp_path, monkeypatch, capsys):
    # point torchvision at a closed port on this machine: the download fails as it would offline
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(SystemExit) as e:
        train([*tiny_args, "--data", "mnist", "--out", str(tmp_path / "r"), "--data-root", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "could not download mnist" in err and str(tmp_path / "d" / "MNIST" / "raw") in err


def test_evaluate_reports_accuracy_and_fid(tiny_args, digit_folder, tmp_path, monkeypatch, capsys):
    run = tmp_path / "r"
    assert train([*tiny_args, "--data", str(digit_folder), "--out", str(run), "--max-steps", "2"]) == 0
    import condgan.metrics.classifier as clf_mod
    real_train = clf_mod.train_classifier
    monkeypatch.setattr(clf_mod, "train_classifier", lambda *a, **k: real_train(*a, **{**k, "epochs": 2}))
    out_json = tmp_path / "eval.json"
    assert evaluate.main([str(run), "--device", "cpu", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "conditional accuracy" in text and "FID (classifier features)" in text and "real-vs-real floor" in text
    import json
    res = json.loads(out_json.read_text())
    assert 0 <= res["conditional_accuracy"] <= 1 and res["n"] == 6  # every tenth of 12 per class, 3 classes
    assert res["fid_classifier"] >= 0 and res["fid_classifier_real_floor"] >= 0


def _idx_gz(path, array, magic):
    import gzip
    import struct
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def mnist_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a tiny MNIST in the official file format."""
    import functools
    import hashlib
    import http.server
    import threading

    import numpy as np

    rng = np.random.default_rng(0)
    files = tmp_path / "served"
    files.mkdir()
    for prefix, n in (("train", 40), ("t10k", 20)):
        _idx_gz(files / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), 0x803)
        _idx_gz(files / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8), 0x801)
    resources = [(p.name, hashlib.md5(p.read_bytes()).hexdigest()) for p in sorted(files.iterdir())]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(files))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", resources
    server.shutdown()
    server.server_close()


def test_mnist_downloads_into_the_cache_then_trains(tiny_args, tmp_path, mnist_server, monkeypatch):
    mirror, resources = mnist_server
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [mirror])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    root = tmp_path / "cache"
    assert train([*tiny_args, "--data", "mnist", "--out", str(tmp_path / "r"), "--data-root", str(root),
                  "--max-steps", "1"]) == 0
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    # the second run finds the cache and needs no server
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    assert train([*tiny_args, "--data", "mnist", "--out", str(tmp_path / "r2"), "--data-root", str(root),
                  "--max-steps", "1"]) == 0
