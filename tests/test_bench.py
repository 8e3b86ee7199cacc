"""python -m condgan.bench: side-by-side throughput of ours and the eager reference."""
from __future__ import annotations

import json

import pytest
import torch

from condgan import bench


def test_bench_cli_times_ours_and_the_reference_on_the_same_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_bf16_units", lambda: False)  # the default set without AMX
    out = tmp_path / "bench.json"
    # training only: the inference workers run in the cGAN test below, which is cheaper
    assert bench.main(["cyclegan", "--size", "32", "--rounds", "1", "--steps", "1", "--device", "cpu",
                       "--modes", "train", "--matmul-size", "128", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "same model: max |G_ours - G_reference| = 0.00e+00" in printed
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert list(result["matmul_rate"]) == ["fp32"] and result["matmul_rate"]["fp32"] > 0  # the roofline
    assert result["step_flops"]["train"] > 3 * result["step_flops"]["infer"] > 0
    for r in rows:
        assert r["flop_per_s"] == pytest.approx(r["images_per_s"] * result["step_flops"][r["mode"]])
        assert r["share_of_matmul_rate"] == pytest.approx(r["flop_per_s"] / result["matmul_rate"]["fp32"])
    assert "| GFLOP/s | share of matmul rate |" in printed and "dense matmul rate (roofline), 128x128" in printed
    assert {(r["mode"], r["implementation"]) for r in rows} == {
        ("train", v) for v in ("reference (eager fp32)", "condgan")}
    assert all(r["images_per_s"] > 0 for r in rows)
    assert [r["vs_reference"] for r in rows if r["implementation"].startswith("reference")] == [1.0]
    assert "| train | 1 | condgan |" in printed


def test_bench_adds_bf16_on_cpus_with_amx_for_the_translation_models(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_bf16_units", lambda: True)
    # the workers themselves run in the test above; here only which variants run, and against which roofline
    calls = []
    monkeypatch.setattr(bench, "run_worker",
                        lambda variant, mode, bs, steps, args: calls.append(variant) or 0.5 / (1 + len(calls)))
    out = tmp_path / "bench.json"
    assert bench.main(["cyclegan", "--size", "32", "--rounds", "1", "--steps", "1", "--device", "cpu",
                       "--modes", "train", "--matmul-size", "128", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["implementation"] for r in rows] == ["reference (eager fp32)", "condgan", "condgan, AMP"]
    assert set(result["matmul_rate"]) == {"fp32", "bf16"}  # the AMP row is judged against the bf16 rate
    assert rows[2]["share_of_matmul_rate"] == pytest.approx(rows[2]["flop_per_s"] / result["matmul_rate"]["bf16"])
    assert calls == ["reference (eager fp32)", "condgan", "condgan, AMP"]
    assert [r["images_per_s"] for r in rows] == pytest.approx([4.0, 6.0, 8.0])  # 1 / (0.5 / (1 + k))
    assert "| train | 1 | condgan, AMP |" in capsys.readouterr().out


def test_bench_rejects_sizes_the_reference_cannot_take(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["pix2pix", "--size", "100"])
    assert e.value.code == 2 and "multiple of 256" in capsys.readouterr().err


def test_the_roofline_column_covers_models_without_a_reference(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["cgan", "--rounds", "1", "--steps", "1", "--batch-sizes", "2", "--device", "cpu",
                       "--matmul-size", "64", "--variants", "condgan", "--modes", "train", "infer",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["step_flops"]["train"] > result["step_flops"]["infer"] > 0  # counted on ours
    assert [r["mode"] for r in result["rows"]] == ["train", "infer"]
    assert all(r["share_of_matmul_rate"] > 0 and r["vs_reference"] is None for r in result["rows"])
    assert "(counted on ours)" in capsys.readouterr().out


def test_matmul_rate_is_the_best_of_its_repeats():
    assert bench.matmul_rate(torch.device("cpu"), torch.float32, n=32, reps=2) > 0
    assert bench.variant_dtype(bench.AMP, torch.device("cpu")) == "bf16"
    assert bench.variant_dtype(bench.REFERENCE, torch.device("cpu")) == "fp32"
