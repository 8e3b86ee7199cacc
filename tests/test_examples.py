"""The examples run as a user would run them (a few steps only)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_digits_on_request_writes_one_image_per_digit(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "examples" / "digits_on_request.py"), "3", "1", "4",
           "--steps", "3", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for i, d in enumerate([3, 1, 4]):
        assert Image.open(out / f"digit_{i}_{d}.png").size == (28, 28)
    assert Image.open(out / "strip.png").size == (3 * 28, 28)
    # a second call continues the same run instead of refusing it
    proc = subprocess.run(cmd[:-4] + ["--steps", "5", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert torch.load(out / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 5


def test_digits_on_request_rejects_non_digits(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "digits_on_request.py"), "12",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "between 0 and 9" in proc.stderr


def test_aerial_to_map_trains_translates_and_reuses_the_run(tmp_path):
    out = tmp_path / "maps"
    script = str(ROOT / "examples" / "aerial_to_map.py")
    proc = subprocess.run([sys.executable, script, "--steps", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert len(list((out / "translated").glob("*.png"))) == 8
    assert "_target.png" in (out / "translated" / "index.html").read_text()
    assert Image.open(out / "strip.png").size == (3 * 128 + 4 * 2, 4 * 128 + 5 * 2)
    # the user's own images, any size, with the trained run
    mine = tmp_path / "mine"
    mine.mkdir()
    Image.new("RGB", (150, 90), (90, 120, 60)).save(mine / "tile.jpg")
    proc = subprocess.run([sys.executable, script, "--run", str(out / "run"), "--images", str(mine),
                           "--out", str(tmp_path / "o2")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "o2" / "translated" / "tile.png").size == (150, 90)


def test_unpaired_maps_trains_and_translates_both_ways(tmp_path):
    out = tmp_path / "u"
    script = str(ROOT / "examples" / "unpaired_maps.py")
    proc = subprocess.run([sys.executable, script, "--steps", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out / "strip.png").size == (3 * 64 + 4 * 2, 8 * 64 + 9 * 2)
    mine = tmp_path / "maps"
    mine.mkdir()
    Image.new("RGB", (70, 50), (240, 230, 210)).save(mine / "m.png")
    proc = subprocess.run([sys.executable, script, "--run", str(out / "run"), "--images", str(mine),
                           "--direction", "BtoA", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "o" / "translated" / "m.png").size == (70, 50)


def _fused_layers_example(*args, **env):
    return subprocess.run([sys.executable, str(ROOT / "examples" / "fused_layers_in_your_model.py"), *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_fused_layers_example_checks_both_implementations_and_times_them():
    from condgan.ops import backend

    if not backend().startswith("native"):
        pytest.skip(f"compiled kernels unavailable: {backend()}")
    proc = _fused_layers_example("--batch", "2", "--size", "8", "--steps", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    diff = next(line for line in lines if line.startswith("compiled kernels vs PyTorch twin"))
    out_err, grad_err = (float(part.split()[-1]) for part in diff.split(":", 1)[1].split(","))
    assert out_err <= 1e-4 and grad_err <= 1e-3
    assert any(line.startswith("training step (2 x 3 x 64 x 64 output, bilinear)") for line in lines)


def test_fused_layers_example_runs_on_the_reference_alone():
    proc = _fused_layers_example("--batch", "1", "--size", "4", CONDGAN_OPS="ref")
    assert proc.returncode == 0, proc.stderr
    assert "ran on the PyTorch twin (output (1, 3, 32, 32))" in proc.stdout


def test_deploy_reference_checkpoint_converts_translates_and_exports(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_convert import reference, save  # the reference architecture, written from its description
    ref, size = reference("unet_128", "batch", dropout=False)
    ckpt = save(ref, tmp_path / "latest_net_G.pth")
    images = tmp_path / "labels"
    images.mkdir()
    Image.new("RGB", (size + 20, size), (40, 90, 200)).save(images / "a.png")
    out = tmp_path / "deployed"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "deploy_reference_checkpoint.py"), str(ckpt),
                           "--netG", "unet_128", "--no-dropout", "--images", str(images), "--out", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, CONDGAN_PROBE="0"))
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out / "translated" / "a.png").size == (size + 20, size)
    assert (out / "generator.onnx").stat().st_size > 0 and (out / "run" / "checkpoints" / "last.pt").is_file()
    assert "deployed:" in proc.stdout


def test_few_photos_holds_out_pairs_trains_both_settings_and_compares(tmp_path):
    from condgan.data.procedural_maps import write_folder
    pairs = write_folder(tmp_path / "maps", 7, 0, size=64) / "train"
    out = tmp_path / "few"
    script = str(ROOT / "examples" / "few_photos.py")
    cmd = [sys.executable, script, "--pairs", str(pairs), "--holdout", "2", "--steps", "1", "--size", "128",
           "--compare", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / "data" / "val").iterdir()) == ["00005.png", "00006.png"]
    assert len(list((out / "data" / "train").iterdir())) == 5
    assert "small-data" in (out / "preset" / "config.json").read_text()
    assert '"diffaug": ""' in (out / "reference" / "config.json").read_text()
    assert "| metric | preset | reference |" in proc.stdout and "| l1 |" in proc.stdout  # side by side
    # per held-out pair: input | preset | reference | truth
    assert Image.open(out / "strip.png").size == (4 * 128 + 5 * 2, 2 * 128 + 3 * 2)
    bad = subprocess.run([sys.executable, script, "--pairs", str(pairs), "--holdout", "7", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "needs more than --holdout 7" in bad.stderr
