"""Checkpoints, exact resume, divergence handling and atomic writes."""
import json
import math

import pytest
import torch

from condgan import checkpoint as ckpt_io
from condgan.errors import CheckpointError
from condgan.train import main


def _train(args, out, *extra):
    assert main([*args, "--out", str(out), *extra]) == 0


def _state(run):
    return ckpt_io.load(run)


def test_run_directory_contents(tiny_args, tmp_path):
    run = tmp_path / "run"
    _train(tiny_args, run, "--max-steps", "3")
    assert (run / "config.json").is_file()
    assert (run / "checkpoints" / "last.pt").is_file()
    assert list((run / "samples").glob("*.png"))
    assert list(run.glob("events.out.tfevents.*"))
    ck = _state(run)
    assert ck["step"] == 3 and ck["config"]["max_steps"] == 3
    assert {"model", "optimizers", "schedulers", "scalers", "rng", "data_info"} <= set(ck)
    assert any(k.startswith("ema.") for k in ck["model"])


def test_sample_grid_has_one_row_per_class(tiny_args, digit_folder, tmp_path):
    from PIL import Image
    run = tmp_path / "run"
    _train(tiny_args, run, "--data", str(digit_folder), "--epochs", "1")
    grid = Image.open(sorted((run / "samples").glob("*.png"))[-1])
    # make_grid: padding 2, 2 columns (--samples-per-class 2), 3 classes -> 3 rows of 28 px
    assert grid.size == (2 * 28 + 3 * 2, 3 * 28 + 4 * 2)


@pytest.mark.parametrize("extra", [[], ["--loss", "wgan-gp", "--d-steps", "2"]])
def test_resume_continues_exactly(tiny_args, digit_folder, tmp_path, extra):
    # 36 images, batch 8 -> 4 batches per epoch: 7 steps end mid-epoch, 14 cross several epochs
    args = [*tiny_args, "--data", str(digit_folder), "--epochs", "20", "--ckpt-every", "0", *extra]
    n = 7 if not extra else 3
    _train(args, tmp_path / "full", "--max-steps", str(2 * n))
    _train(args, tmp_path / "half", "--max-steps", str(n))
    assert main(["--resume", str(tmp_path / "half"), "--max-steps", str(2 * n)]) == 0
    a, b = _state(tmp_path / "full"), _state(tmp_path / "half")
    assert a["step"] == b["step"] == 2 * n
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for phase in ("D", "G"):
        sa, sb = a["optimizers"][phase]["state"], b["optimizers"][phase]["state"]
        assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_resume_refuses_architecture_changes(tiny_args, tmp_path, capsys):
    run = tmp_path / "run"
    _train(tiny_args, run, "--max-steps", "1")
    with pytest.raises(SystemExit) as e:
        main(["--resume", str(run), "--g-width", "16"])
    assert e.value.code == 2 and "--g-width cannot change when resuming" in capsys.readouterr().err


def test_existing_run_directory_is_not_overwritten(tiny_args, tmp_path, capsys):
    run = tmp_path / "run"
    _train(tiny_args, run, "--max-steps", "1")
    with pytest.raises(SystemExit):
        main([*tiny_args, "--out", str(run), "--max-steps", "1"])
    assert "--resume" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_args, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _train(tiny_args, run, "--max-steps", "2")
    before = (run / "checkpoints" / "last.pt").read_bytes()
    from condgan.models.cgan import CGAN
    real_step = CGAN.step

    def poisoned(self, phase, batch):
        out = real_step(self, phase, batch)
        if phase == "G":
            out["g_loss"] = out["g_loss"] * math.nan
        return out

    monkeypatch.setattr(CGAN, "step", poisoned)
    with pytest.raises(SystemExit) as e:
        main(["--resume", str(run), "--max-steps", "6", "--ckpt-every", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 3
    assert "g_loss became NaN or infinite" in err and "intact" in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == before


def test_atomic_save_failure_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    ckpt_io.atomic_save({"x": torch.ones(3)}, path)

    def disk_full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="previous checkpoint is intact"):
        ckpt_io.atomic_save({"x": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left behind


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt_io.load(bad)
    with pytest.raises(CheckpointError, match="has no checkpoint"):
        ckpt_io.load(tmp_path)


def test_image_write_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    import torchvision.utils

    path = tmp_path / "grid.png"
    ckpt_io.save_image_atomic(torch.zeros(1, 1, 4, 4), path)
    before = path.read_bytes()

    def broken(images, f, **kw):
        f.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torchvision.utils, "save_image", broken)
    with pytest.raises(OSError):
        ckpt_io.save_image_atomic(torch.ones(1, 1, 4, 4), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_channels_last_layout_changes_speed_not_results(tiny_args, digit_folder, tmp_path):
    args = [*tiny_args, "--data", str(digit_folder), "--max-steps", "4"]
    _train(args, tmp_path / "cl")
    _train(args, tmp_path / "plain", "--no-channels-last")
    a, b = _state(tmp_path / "cl"), _state(tmp_path / "plain")
    conv = "G.blocks.0.conv.weight"
    assert a["model"][conv].is_contiguous(memory_format=torch.channels_last)
    assert not b["model"][conv].is_contiguous(memory_format=torch.channels_last)
    # same maths, only the summation order inside convolutions differs; compare the logged losses
    # (Adam's first steps move each weight by about +-lr whatever the gradient's size, so weights
    # whose gradient is near zero may step differently under rounding)
    import json
    logs = [[json.loads(line) for line in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
            for r in ("cl", "plain")]
    assert len(logs[0]) == len(logs[1]) == 4
    for x, y in zip(*logs):
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-3, abs=1e-4), (x["step"], k)


@pytest.mark.slow
def test_compile_changes_speed_not_results(tiny_args, tmp_path):
    """--compile (torch.compile, in place) trains the same model and keeps the checkpoint's keys."""
    runs = {}
    for name, extra in {"eager": [], "compiled": ["--compile"]}.items():
        runs[name] = tmp_path / name
        assert main(tiny_args + ["--max-steps", "3", "--out", str(runs[name])] + extra) == 0
    a, b = (torch.load(r / "checkpoints" / "last.pt", weights_only=True)["model"] for r in runs.values())
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4, msg=k)
    assert json.loads((runs["compiled"] / "config.json").read_text())["compile"] is True


@pytest.mark.parametrize("has_amx", [True, False])
def test_amp_auto_on_cpu_is_bf16_only_with_amx_and_for_validated_models(monkeypatch, has_amx):
    from condgan import device as trainer
    from condgan import models
    monkeypatch.setattr(trainer, "cpu_has_bf16_units", lambda: has_amx)
    cpu = torch.device("cpu")
    assert models.model_class("cut").bf16_on_cpu is False  # CUT's quality was measured in fp32 only
    for name in ("pix2pix", "cyclegan", "cgan"):
        flag = models.model_class(name).bf16_on_cpu
        assert flag  # each one's bf16 training was validated against fp32 (BENCHMARKS.md)
        want = torch.bfloat16 if has_amx and flag else None
        assert trainer.amp_dtype("auto", cpu, flag) == want
        assert trainer.amp_dtype("off", cpu, flag) is None
        assert trainer.amp_dtype("bf16", cpu, flag) == torch.bfloat16


def test_pix2pix_trains_in_bf16_on_cpu(tmp_path, capsys):
    # the path --amp auto takes on CPUs with AMX (any CPU runs it, slower without AMX)
    from condgan import models
    args = ["--model", "pix2pix", "--procedural-train", "4", "--crop-size", "32", "--load-size", "36",
            "--unet-depth", "5", "--g-width", "4", "--d-width", "4", "--val-images", "2", "--sample-pairs", "2",
            "--no-progress", "--workers", "0", "--log-every", "1", "--max-steps", "4", "--amp", "bf16",
            "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert "device: cpu, bf16 mixed precision" in capsys.readouterr().out
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [v for line in lines for k, v in line.items() if k.startswith(("g_", "d_", "val_"))]
    assert losses and all(math.isfinite(v) for v in losses)
    model, cfg, _ = models.load(tmp_path / "run")
    assert cfg.amp == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32 (mixed precision)
