"""python -m condgan.bench: side-by-side throughput of ours and the eager reference."""
from __future__ import annotations

import json

import pytest
import torch

from condgan import bench


def test_bench_cli_times_ours_and_the_reference_on_the_same_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_bf16", lambda: False)  # the default set without bf16 instructions
    out = tmp_path / "bench.json"
    # training only: the inference workers run in the cGAN test below, which is cheaper
    assert bench.main(["cyclegan", "--size", "32", "--rounds", "1", "--steps", "1", "--device", "cpu",
                       "--modes", "train", "--matmul-size", "128", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "same model: max |G_ours - G_reference| = 0.00e+00" in printed
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert list(result["matmul_rate"]) == list(result["conv_rate"]) == ["fp32"]
    # the roofline: the faster of the two dense rates
    assert result["roofline"]["fp32"] == max(result["matmul_rate"]["fp32"], result["conv_rate"]["fp32"]) > 0
    assert result["step_flops"]["train"] > 3 * result["step_flops"]["infer"] > 0
    for r in rows:
        assert r["flop_per_s"] == pytest.approx(r["images_per_s"] * result["step_flops"][r["mode"]])
        assert r["share_of_roofline"] == pytest.approx(r["flop_per_s"] / result["roofline"]["fp32"])
        assert r["setting"] == "fp32 NCHW" and r["dtype"] == "fp32"
    assert "| GFLOP/s | share of roofline |" in printed and "roofline, best of 3: matmul 128x128" in printed
    assert {(r["mode"], r["implementation"]) for r in rows} == {
        ("train", v) for v in ("reference (eager fp32)", "condgan")}
    assert all(r["images_per_s"] > 0 for r in rows)
    assert [r["vs_reference"] for r in rows if r["implementation"].startswith("reference")] == [1.0]
    assert "| train | 1 | condgan |" in printed


def test_bench_adds_bf16_and_the_probes_choice_on_cpus_with_bf16(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_bf16", lambda: True)
    # the workers themselves run in the test above; here only which variants run, and against which roofline
    calls = []
    picked = {"condgan, AMP": "bf16 NCHW", "condgan, auto": "bf16 channels-last"}

    def fake_worker(variant, mode, bs, steps, args):
        calls.append(variant)
        setting = picked.get(variant, "fp32 NCHW")
        return {"s_per_call": 0.5 / len(calls), "setting": setting, "dtype": setting.split()[0]}
    monkeypatch.setattr(bench, "run_worker", fake_worker)
    out = tmp_path / "bench.json"
    assert bench.main(["cyclegan", "--size", "32", "--rounds", "1", "--steps", "1", "--device", "cpu",
                       "--modes", "train", "--matmul-size", "128", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert calls == [r["implementation"] for r in rows] == [
        "reference (eager fp32)", "condgan", "condgan, AMP", "condgan, auto"]
    assert set(result["roofline"]) == {"fp32", "bf16"}  # the bf16 rows are judged against the bf16 rate
    for r in rows[2:]:
        assert r["share_of_roofline"] == pytest.approx(r["flop_per_s"] / result["roofline"]["bf16"])
    assert rows[3]["setting"] == "bf16 channels-last"  # what the probe picked is in the table
    assert [r["images_per_s"] for r in rows] == pytest.approx([2.0, 4.0, 6.0, 8.0])  # 1 / (0.5 / k)
    assert "| train | 1 | condgan, auto | bf16 channels-last |" in capsys.readouterr().out


def test_the_auto_variant_trains_in_the_probes_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("CONDGAN_PROBE", "1")  # conftest turns it off; the cache is the test's own
    a, b = torch.randn(2, 1, 3, 32, 32)
    ours = bench.Ours.probed("cyclegan", 32, torch.device("cpu"), a, b)
    # at least the two layouts are timed on any CPU (and bf16 where the CPU has it)
    assert ours.runner.setting.how.startswith("probed")
    assert ours.batch(a, b)["A"].is_contiguous(memory_format=ours.runner.layout)
    ours.step(ours.batch(a, b))
    # inference: generator forwards are probed instead, and the model is left in the chosen layout
    infer = bench.Ours.probed("cyclegan", 32, torch.device("cpu"), a, b, mode="infer")
    assert infer.runner.setting.how.startswith("probed")
    conv = next(m for m in infer.model.G_A.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=infer.runner.layout)
    assert infer.infer(infer.batch(a, b)).shape == (1, 3, 32, 32)


def test_bench_rejects_sizes_the_reference_cannot_take(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["pix2pix", "--size", "100"])
    assert e.value.code == 2 and "multiple of 256" in capsys.readouterr().err


def test_the_roofline_column_covers_models_without_a_reference(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["cgan", "--rounds", "1", "--steps", "1", "--batch-sizes", "2", "--device", "cpu",
                       "--matmul-size", "64", "--variants", "condgan", "condgan, auto", "--modes", "train", "infer",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["step_flops"]["train"] > result["step_flops"]["infer"] > 0  # counted on ours
    # the auto variant of a sampler: its training is probed, its sampling runs the fixed rule
    assert [(r["mode"], r["implementation"]) for r in result["rows"]] == [
        ("train", "condgan"), ("train", "condgan, auto"), ("infer", "condgan"), ("infer", "condgan, auto")]
    assert all(r["share_of_roofline"] > 0 and r["vs_reference"] is None for r in result["rows"])
    assert "(counted on ours)" in capsys.readouterr().out


def test_matmul_and_convolution_rates_are_positive():
    assert bench.matmul_rate(torch.device("cpu"), torch.float32, n=32, reps=2) > 0
    assert bench.conv_rate(torch.device("cpu"), torch.float32, n=32, reps=2) > 0
    assert bench.variant_dtype(bench.AMP, torch.device("cpu")) == "bf16"
    assert bench.variant_dtype(bench.REFERENCE, torch.device("cpu")) == "fp32"
