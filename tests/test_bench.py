"""python -m condgan.bench: side-by-side throughput of ours and the eager reference."""
from __future__ import annotations

import json

import pytest

from condgan import bench


def test_bench_cli_times_ours_and_the_reference_on_the_same_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_bf16_units", lambda: False)  # the default set without AMX
    out = tmp_path / "bench.json"
    assert bench.main(["cyclegan", "--size", "32", "--rounds", "1", "--steps", "1", "--device", "cpu",
                       "--modes", "train", "infer", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "same model: max |G_ours - G_reference| = 0.00e+00" in printed
    rows = json.loads(out.read_text())["rows"]
    assert {(r["mode"], r["implementation"]) for r in rows} == {
        (m, v) for m in ("train", "infer") for v in ("reference (eager fp32)", "condgan")}
    assert all(r["images_per_s"] > 0 for r in rows)
    assert [r["vs_reference"] for r in rows if r["implementation"].startswith("reference")] == [1.0, 1.0]
    assert "| train | 1 | condgan |" in printed


def test_bench_adds_bf16_on_cpus_with_amx_for_the_translation_models(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_bf16_units", lambda: True)
    out = tmp_path / "bench.json"
    assert bench.main(["cyclegan", "--size", "32", "--rounds", "1", "--steps", "1", "--device", "cpu",
                       "--modes", "train", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["implementation"] for r in rows] == ["reference (eager fp32)", "condgan", "condgan, AMP"]
    assert all(r["images_per_s"] > 0 for r in rows)
    assert "| train | 1 | condgan, AMP |" in capsys.readouterr().out


def test_bench_rejects_sizes_the_reference_cannot_take(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["pix2pix", "--size", "100"])
    assert e.value.code == 2 and "multiple of 256" in capsys.readouterr().err
