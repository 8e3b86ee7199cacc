"""The benchmark and GPU-check scripts run and say what they measured (CPU only)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ops_helpers import needs_native

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    return env


@needs_native
def test_bench_ops_prints_a_row_per_op_with_its_floor_and_rate():
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_ops.py", "--shape", "2", "8", "32", "32", "--repeats", "2",
         "--no-compile", "--threads", "1"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ms" not in line and "↳" not in line]
    names = [row.split("|")[1].strip() for row in rows]
    assert names == ["bias + leaky ReLU", "upsample2x nearest", "upsample2x bilinear",
                     "bias + leaky ReLU + upsample2x nearest"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 10
        ours, clone, floor = float(cells[3]), float(cells[4]), float(cells[5])
        assert ours > 0 and clone >= 0 and floor >= 0
        rate = re.fullmatch(r"(\d+) \((\d+) %\)", cells[9])
        assert rate, cells[9]
        # The share of the clone's rate is floor / ours, up to the table's rounding to 0.001 ms.
        low, high = 100 * (floor - 5e-4) / (ours + 5e-4), 100 * (floor + 5e-4) / max(ours - 5e-4, 1e-9)
        assert low - 0.5 <= int(rate.group(2)) <= high + 0.5
    assert "shape (2, 8, 32, 32) float32" in out


def test_bench_ops_refuses_a_cuda_device_it_cannot_see():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    res = subprocess.run([sys.executable, "benchmarks/bench_ops.py", "--device", "cuda"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "PyTorch sees no CUDA device here" in res.stderr


def test_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    res = subprocess.run(["bash", "tools/gpu_check.sh"], cwd=ROOT, env=_env(OUT=str(tmp_path), PYTHON=sys.executable),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stdout.strip() == "gpu_check: PyTorch sees no CUDA device here; nothing to check."
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script,args", [
    ("benchmarks/bench_ops.py", ["--shape", "0", "2", "2", "2"]),
    ("benchmarks/bench_ops_split.py", ["--shapes", "3x4"]),
])
def test_bench_scripts_refuse_a_bad_shape_in_one_line(script, args):
    res = subprocess.run([sys.executable, script, *args], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2
    assert "error:" in res.stderr.splitlines()[-1] and "positive" in res.stderr.splitlines()[-1]


@needs_native
def test_bench_ops_split_times_every_row_in_every_round():
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_ops_split.py", "--shapes", "2x3x8x8", "--layouts", "nchw", "channels_last",
         "--repeats", "2", "--rounds", "2", "--threads", "1"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("  ")]
    names = [" ".join(r[:-2]) for r in rows]
    assert names == [f"{layout} {what}" for layout in ("nchw", "channels_last")
                     for what in ("x.clone()", "y.clone()", "forward nearest", "backward nearest",
                                  "forward bilinear", "backward bilinear")]
    assert all(float(v) > 0 for r in rows for v in r[-2:])
