"""Every command against bad input: a non-zero exit, one sentence on stderr, no traceback, nothing half-written.

The table below is the contract: each row names a command, its arguments (built from fixtures) and a fragment
of the sentence it must print. A row that raises anything but SystemExit fails (that is a traceback).
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from condgan import bench, evaluate, export, sample, translate
from condgan.train import main as train

TINY_CGAN = ["--g-width", "8", "--d-width", "8", "--latent-dim", "8", "--embed-dim", "4", "--batch-size", "8",
             "--log-every", "1", "--no-progress", "--workers", "0", "--samples-per-class", "2"]
TINY_PIX = ["--model", "pix2pix", "--procedural-train", "4", "--crop-size", "32", "--load-size", "36",
            "--unet-depth", "5", "--g-width", "4", "--d-width", "4", "--val-images", "2", "--sample-pairs", "2",
            "--no-progress", "--workers", "0", "--log-every", "1"]
COMMANDS = {"train": train, "sample": sample.main, "translate": translate.main, "evaluate": evaluate.main,
            "export": export.main, "bench": bench.main}
UNWRITABLE = "/proc/condgan-cannot-write-here"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny cGAN run and a tiny pix2pix run, trained once for the whole table."""
    root = tmp_path_factory.mktemp("runs")
    cgan, pix = root / "cgan", root / "pix"
    assert train([*TINY_CGAN, "--out", str(cgan), "--max-steps", "2"]) == 0
    assert train([*TINY_PIX, "--out", str(pix), "--max-steps", "2"]) == 0
    image = root / "input.png"
    from PIL import Image
    Image.new("RGB", (32, 32), (90, 120, 30)).save(image)
    return {"cgan": cgan, "pix": pix, "image": image, "root": root}


def fails_cleanly(command: str, argv: list[str], capsys, fragment: str = "") -> str:
    """Run one CLI in-process: it must exit non-zero with one `prog: error: sentence` line, no traceback."""
    with pytest.raises(SystemExit) as e:
        COMMANDS[command]([str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code not in (0, None), err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert ": error: " in last, err
    assert fragment.lower() in last.lower(), f"expected {fragment!r} in {last!r}"
    return last


def _wrong_structure(root: Path) -> Path:
    run = root / "bad-structure"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save({"config": "x", "model": 5}, run / "checkpoints" / "last.pt")
    return run


# ---- 1. numeric flags: finite and in range, checked before any folder exists --------------------------
@pytest.mark.parametrize("flags, fragment", [
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "-1e-3"], "--lr"),
    (["--beta1", "nan"], "--beta1"),
    (["--ema-decay", "nan"], "--ema-decay"),
    (["--ema-decay", "1.5"], "--ema-decay"),
    (["--gp-weight", "-inf"], "--gp-weight"),
    (["--label-smoothing", "1"], "--label-smoothing"),
    (["--aux-weight", "-1"], "--aux-weight"),
    (["--d-steps", "0"], "--d-steps"),
    (["--latent-dim", "0"], "--latent-dim"),
    (["--model", "pix2pix", "--l1-weight", "nan"], "--l1-weight"),
    (["--model", "cyclegan", "--cycle-weight", "-2"], "--cycle-weight"),
    (["--model", "cyclegan", "--identity-weight", "inf"], "--identity-weight"),
])
def test_bad_numbers_are_refused_before_the_run_folder_exists(flags, fragment, tmp_path, capsys):
    out = tmp_path / "run"
    fails_cleanly("train", [*flags, "--out", out, "--max-steps", "2"], capsys, fragment)
    assert not out.exists()


# ---- 2. the run folder itself ---------------------------------------------------------------------------
def test_out_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    fails_cleanly("train", [*TINY_CGAN, "--out", f, "--max-steps", "1"], capsys, "is a file")
    assert f.read_text() == "x"


def test_out_that_cannot_be_written(capsys):
    fails_cleanly("train", [*TINY_CGAN, "--out", UNWRITABLE, "--max-steps", "1"], capsys, "cannot")


# ---- 3. sizes and memory -----------------------------------------------------------------------------
@pytest.mark.parametrize("flags, fragment", [
    (["--image-size", "100000"], "--image-size"),
    (["--batch-size", "10000000"], "--batch-size"),
    (["--model", "pix2pix", "--crop-size", "100000"], "--crop-size"),
])
def test_absurd_sizes_are_refused(flags, fragment, tmp_path, capsys):
    fails_cleanly("train", [*flags, "--out", tmp_path / "r", "--max-steps", "1"], capsys, fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("error", [
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 680000000000000 bytes."),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    MemoryError(),
])
def test_out_of_memory_mid_training_is_a_sentence(error, tmp_path, capsys, monkeypatch):
    from condgan.models.cgan import CGAN

    def oom(self, phase, batch):
        raise error
    monkeypatch.setattr(CGAN, "step", oom)
    last = fails_cleanly("train", [*TINY_CGAN, "--out", tmp_path / "r", "--max-steps", "2"], capsys,
                         "lower --batch-size")
    assert "memory" in last and ("GPU" in last) == isinstance(error, torch.OutOfMemoryError)


# ---- 4. and 5. checkpoints that load safely but do not fit --------------------------------------------------
@pytest.mark.parametrize("command, extra", [
    ("train", None), ("sample", ["--grid"]), ("translate", ["INPUT"]), ("evaluate", []), ("export", []),
])
def test_wrong_checkpoint_structure_in_every_tool(command, extra, runs, capsys):
    run = _wrong_structure(runs["root"])
    argv = ["--resume", run] if command == "train" else [run, *[runs["image"] if a == "INPUT" else a
                                                                for a in extra]]
    fails_cleanly(command, argv, capsys, "not a condgan checkpoint")


@pytest.mark.parametrize("payload, fragment", [
    ({"config": {"model": "cgan", "epochs": "many"}, "model": {}, "data_info": {}}, "epochs"),
    ({"config": {"model": "no-such-model"}, "model": {}, "data_info": {}}, "no-such-model"),
    ({"config": {"model": "cgan"}, "model": {"w": 3}, "data_info": {}}, "not a condgan checkpoint"),
    ({"config": {"model": "cgan"}, "model": {}, "data_info": {"kind": 1}}, "not a condgan checkpoint"),
])
def test_checkpoint_fields_are_checked(payload, fragment, runs, capsys, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    torch.save(payload, tmp_path / "checkpoints" / "last.pt")
    fails_cleanly("sample", [tmp_path, "--grid"], capsys, fragment)
    fails_cleanly("train", ["--resume", tmp_path], capsys, fragment)


def test_resume_with_missing_model_keys(runs, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["cgan"], run)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["model"].pop(sorted(ckpt["model"])[0])
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    fails_cleanly("train", ["--resume", run], capsys, "does not fit")


def test_resume_with_a_broken_optimizer_state(runs, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["cgan"], run)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["optimizers"] = {"D": {"state": {}, "param_groups": []}}
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    fails_cleanly("train", ["--resume", run], capsys, "does not fit")


# ---- 6. output paths, checked before the work -------------------------------------------------------------
def test_output_paths_are_checked_first(runs, capsys, tmp_path, monkeypatch):
    existing_dir, existing_file = tmp_path / "dir", tmp_path / "file.png"
    existing_dir.mkdir()
    existing_file.write_text("x")
    fails_cleanly("sample", [runs["cgan"], "--grid", "--out", "/proc/s.png"], capsys, "/proc/s.png")
    fails_cleanly("sample", [runs["cgan"], "--grid", "--out", existing_dir], capsys, "is a folder")
    fails_cleanly("translate", [runs["pix"], runs["image"], "--out", existing_file], capsys, "is a file")
    fails_cleanly("translate", [runs["pix"], runs["image"], "--out", UNWRITABLE], capsys, "cannot")
    fails_cleanly("export", [runs["pix"], "--json", "/proc/e.json"], capsys, "/proc/e.json")
    fails_cleanly("export", [runs["pix"], "--out", existing_dir], capsys, "is a folder")

    def never(*a, **k):
        raise AssertionError("the evaluation ran before its output path was checked")
    monkeypatch.setattr(evaluate, "evaluate_run", never)
    fails_cleanly("evaluate", [runs["pix"], "--json", "/proc/e.json"], capsys, "/proc/e.json")


# ---- 7. a full disk ----------------------------------------------------------------------------------
@pytest.fixture
def full_disk(monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    return lambda: monkeypatch.setattr(os, "fsync", full)


def test_full_disk_fresh_train(full_disk, tmp_path, capsys):
    full_disk()
    fails_cleanly("train", [*TINY_CGAN, "--out", tmp_path / "r", "--max-steps", "1"], capsys, "no space left")


def test_full_disk_on_resume(full_disk, runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["cgan"], run)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    full_disk()
    fails_cleanly("train", ["--resume", run, "--max-steps", "4"], capsys, "no space left")
    assert (run / "checkpoints" / "last.pt").read_bytes() == before


def test_full_disk_sample_and_translate(full_disk, runs, tmp_path, capsys):
    full_disk()
    fails_cleanly("sample", [runs["cgan"], "--grid", "--out", tmp_path / "s.png"], capsys, "no space left")
    fails_cleanly("translate", [runs["pix"], runs["image"], "--out", tmp_path / "t", "--no-progress"], capsys,
                  "no space left")
    assert not (tmp_path / "s.png").exists()


# ---- other inputs a hostile user tries ------------------------------------------------------------------
@pytest.mark.parametrize("command, argv, fragment", [
    ("train", ["--config", "/no/such/config.json"], "does not exist"),
    ("train", ["--resume", "/no/such/run"], "neither a checkpoint file nor a run directory"),
    ("train", ["--device", "cuda:99"], "cuda"),
    ("train", ["--device", "tpu"], "--device"),
    ("train", ["--workers", "-5"], "--workers"),
    ("train", ["--epochs", "0"], "--epochs"),
    ("train", ["--model", "nope"], "unknown model"),
    ("train", ["--data", ""], "--data is empty"),
    ("train", ["--config", "CFGDIR"], "not readable JSON"),
    ("train", [*TINY_PIX, "--crop-size", "8", "--load-size", "8", "--unet-depth", "8"], "too small"),
    ("train", [*TINY_PIX, "--crop-size", "32", "--load-size", "32", "--d-layers", "10"], "too small"),
    ("train", [*TINY_PIX, "--crop-size", "2", "--load-size", "2"], "too small"),
    ("train", ["--model", "cyclegan", "--crop-size", "1", "--load-size", "1", "--g-width", "4", "--d-width", "4",
               "--resnet-blocks", "1", "--no-progress", "--workers", "0"], "too small"),
    ("sample", ["CGAN", "--grid", "--n", "0"], "--n"),
    ("sample", ["CGAN", "--grid", "--n", "100000000"], "--n"),
    ("sample", ["CGAN", "--grid", "--nrow", "-3"], "--nrow"),
    ("sample", ["PIX", "--grid"], "translate"),
    ("translate", ["CGAN", "INPUT"], "sample"),
    ("translate", ["PIX", "/no/such/image.png"], "does not exist"),
    ("translate", ["PIX", "INPUT", "--batch-size", "0"], "--batch-size"),
    ("evaluate", ["PIX", "--batch-size", "0"], "--batch-size"),
    ("evaluate", ["PIX", "--data", "/no/such/folder"], "does not exist"),
    ("export", ["PIX", "--opset", "3"], "--opset"),
    ("export", ["CGAN", "--direction", "BtoA"], "direction"),
    ("bench", ["nope"], "nope"),
    ("bench", ["pix2pix", "--batch-sizes", "0"], "--batch-sizes"),
    ("bench", ["pix2pix", "--rounds", "0"], "--rounds"),
])
def test_more_bad_inputs(command, argv, fragment, runs, capsys, tmp_path):
    names = {"CGAN": runs["cgan"], "PIX": runs["pix"], "INPUT": runs["image"], "CFGDIR": tmp_path}
    argv = [names.get(a, a) for a in argv]
    if command == "train" and "--resume" not in argv:
        argv = [*argv, "--out", tmp_path / "r", "--max-steps", "1"]
    if command == "export":
        argv = [*argv, "--out", tmp_path / "m.onnx"]
    fails_cleanly(command, argv, capsys, fragment)
