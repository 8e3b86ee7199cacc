"""Crashes and interruptions lose at most the work since the last checkpoint, and never corrupt it."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from condgan import checkpoint as ckpt_io
from condgan.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
STEPS = 150


def _weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def _logged_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line).get("step", 0) for line in lines if line.strip().endswith("}")]
    return max(steps, default=0)


def _start(args: list[str]) -> subprocess.Popen:
    """`python -m condgan.train ARGS`; every run here uses one thread, so float sums add up in one order."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "condgan.train", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _train(args: list[str]) -> None:
    proc = _start(args)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-1000:]


def _wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 120) -> None:
    end = time.time() + timeout
    while _logged_step(run) < step:
        if proc.poll() is not None:
            pytest.fail(f"training ended before step {step}: {proc.stderr.read()[-500:]}")
        if time.time() > end:
            proc.kill()
            pytest.fail(f"no step {step} within {timeout} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    from conftest import TINY
    run = tmp_path_factory.mktemp("straight") / "run"
    args = TINY + ["--max-steps", str(STEPS), "--ckpt-every", "20", "--out", str(run)]
    _train(args)
    return args, run


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_mid_epoch_resumes_from_the_last_checkpoint_exactly(straight_run, tmp_path, capsys):
    from condgan.train import main as train
    args, straight = straight_run
    run = tmp_path / "killed"
    proc = _start([a if a != str(straight) else str(run) for a in args])
    _wait_for_step(proc, run, 50)
    # while it trains, nobody else may write into its folder: neither a resume nor a fresh run
    for other in (["--resume", str(run)], [*args[:-1], str(run)]):
        with pytest.raises(SystemExit) as e:
            train(other)
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"in use by process {proc.pid}" in err, err
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # loads: nothing half-written
    assert 20 <= saved["step"] < STEPS and saved["step"] % 20 == 0
    assert _logged_step(run) > saved["step"]  # the log ran ahead of the checkpoint
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 9')  # and a line torn by the kill
    _train(["--resume", str(run)])  # the killed holder's lock is stale: the resume proceeds
    _same(_weights(run), _weights(straight))
    # the log matches the weights: every step once, with the losses of the uninterrupted run
    assert _log(run) == _log(straight)


def test_sigint_saves_a_checkpoint_then_exits(straight_run, tmp_path):
    args, straight = straight_run
    run = tmp_path / "interrupted"
    proc = _start([a if a != str(straight) else str(run) for a in args])
    _wait_for_step(proc, run, 45)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    step = saved["step"]
    assert 45 <= step < STEPS  # where it stopped (the periodic checkpoint before step 45 is at 40)
    assert f"checkpoint saved at step {step}" in err
    _train(["--resume", str(run)])
    _same(_weights(run), _weights(straight))


def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    ckpt_io.atomic_save({"step": 1, "w": torch.ones(3)}, path)
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is intact"):
        ckpt_io.atomic_save({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left behind
