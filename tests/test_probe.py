"""condgan.probe: precision and layout chosen by timing, cached per machine; fake machines and timings."""
from __future__ import annotations

import json

import pytest
import torch

from condgan import models, probe
from condgan.device import Setting
from condgan.step import probed_setting

CPU = torch.device("cpu")
ON = {"CONDGAN_PROBE": "1"}
BF16_CPU = probe.Machine("Fake Xeon", frozenset({"avx512f", "avx512_bf16", "amx_bf16"}), 2, "2.14.1")
PLAIN_CPU = probe.Machine("Fake EPYC", frozenset({"avx2", "avx512f"}), 2, "2.14.1")
KEY = {"mode": "train", "model": "pix2pix", "parameters": 100, "size": [256, 256], "batch": 1}


class Translator:  # what the probe reads of a model class: pix2pix's declarations
    bf16_on_cpu, channels_last_on_cpu = True, False


class Sampler:  # the cGAN's: bf16 not validated
    bf16_on_cpu, channels_last_on_cpu = False, True


class FakeTimes:
    """time_one for the probe: fixed seconds per setting name, counting calls; a name mapped to an
    exception raises it."""

    def __init__(self, times: dict):
        self.times, self.calls = times, []

    def __call__(self, setting: Setting) -> float:
        self.calls.append(setting.name)
        t = self.times[setting.name]
        if isinstance(t, Exception):
            raise t
        return t


def decide(time_one, tmp_path, amp="auto", channels_last=True, cls=Translator, machine=BF16_CPU, key=KEY,
           env=ON, warn=None, device=CPU):
    return probe.decide(amp, channels_last, device, cls, key, time_one, machine=machine,
                        cache=tmp_path / "probe.json", env=env, warn=warn or pytest.fail)


FOUR = {"fp32 NCHW": 1.0, "fp32 channels-last": 1.3, "bf16 NCHW": 0.7, "bf16 channels-last": 0.5}


def test_the_probe_picks_the_fastest_candidate_and_saves_it(tmp_path):
    times = FakeTimes(FOUR)
    chosen = decide(times, tmp_path)
    assert (chosen.dtype, chosen.channels_last) == (torch.bfloat16, True)
    assert sorted(set(times.calls)) == sorted(FOUR)  # every candidate timed (twice: forward and reverse order)
    assert chosen.how.startswith("probed: bf16 channels-last 1.40x bf16 NCHW, 2.00x fp32 NCHW, 2.60x fp32 "
                                 "channels-last; saved to ")
    assert "bf16 mixed precision, channels-last (probed: bf16 channels-last" in chosen.text()
    saved = json.loads((tmp_path / "probe.json").read_text())["entries"]
    (entry,) = saved.values()
    assert entry["choice"] == "bf16 channels-last" and entry["key"]["cpu"] == "Fake Xeon"


def test_the_probe_keeps_the_best_of_two_rounds(tmp_path):
    rounds = iter([0.9, 2.0, 1.5, 0.8])  # fp32 NCHW, fp32 CL (a burst of load), then reversed: CL, NCHW

    def time_one(setting):
        return next(rounds)
    chosen = probe.choose({"k": 1}, [Setting(None, False), Setting(None, True)], time_one, tmp_path / "p.json",
                          warn=pytest.fail)
    assert chosen.name == "fp32 NCHW" and "1.88x fp32 channels-last" in chosen.how


def test_a_cached_choice_is_used_until_a_key_part_changes(tmp_path):
    decide(FakeTimes(FOUR), tmp_path)
    never = FakeTimes({})  # any timing would raise KeyError -> a warning -> pytest.fail
    again = decide(never, tmp_path)
    assert never.calls == [] and again.name == "bf16 channels-last" and "cached in" in again.how
    other = {"fp32 NCHW": 0.4, "fp32 channels-last": 1.0, "bf16 NCHW": 1.0, "bf16 channels-last": 1.0}
    changes = [{"machine": probe.Machine("Fake Xeon", BF16_CPU.flags, 2, "2.15.0")},
               {"machine": probe.Machine("Fake Xeon", BF16_CPU.flags, 4, "2.14.1")},
               {"machine": probe.Machine("Other CPU", BF16_CPU.flags, 2, "2.14.1")},
               {"key": {**KEY, "model": "cyclegan"}}, {"key": {**KEY, "size": [128, 128]}},
               {"key": {**KEY, "batch": 8}}, {"key": {**KEY, "parameters": 200}}]
    for change in changes:
        times = FakeTimes(other)
        assert decide(times, tmp_path, **change).name == "fp32 NCHW", change
        assert times.calls, change  # measured again


def test_entries_of_another_torch_version_are_dropped(tmp_path):
    decide(FakeTimes(FOUR), tmp_path)
    decide(FakeTimes(FOUR), tmp_path, key={**KEY, "size": [64, 64]})
    assert len(json.loads((tmp_path / "probe.json").read_text())["entries"]) == 2
    decide(FakeTimes(FOUR), tmp_path, machine=probe.Machine("Fake Xeon", BF16_CPU.flags, 2, "2.15.0"))
    (entry,) = json.loads((tmp_path / "probe.json").read_text())["entries"].values()
    assert entry["key"]["torch"] == "2.15.0"


def test_without_bf16_instructions_bf16_is_no_candidate(tmp_path):
    times = FakeTimes({"fp32 NCHW": 1.0, "fp32 channels-last": 2.0})
    chosen = decide(times, tmp_path, machine=PLAIN_CPU)
    assert set(times.calls) == {"fp32 NCHW", "fp32 channels-last"}
    assert chosen.dtype is None and not chosen.channels_last
    assert chosen.how.endswith("; no bf16 instructions in this CPU")
    arm = probe.Machine("Neoverse", probe.cpu_flags("Features\t: fp asimd sve bf16 i8mm\n"), 2, "2.14.1")
    assert [c.name for c in probe.candidates("auto", False, True, arm)] == ["fp32 NCHW", "bf16 NCHW"]


def test_bf16_is_a_candidate_only_for_models_validated_in_it(tmp_path):
    times = FakeTimes({"fp32 NCHW": 1.0, "fp32 channels-last": 0.9})
    chosen = decide(times, tmp_path, cls=Sampler, key={**KEY, "model": "cgan"})
    assert set(times.calls) == {"fp32 NCHW", "fp32 channels-last"} and chosen.name == "fp32 channels-last"
    assert "no bf16" not in chosen.how


def test_explicit_flags_win(tmp_path):
    never = FakeTimes({})
    off = decide(never, tmp_path, amp="off", channels_last=False)
    bf16 = decide(never, tmp_path, amp="bf16", channels_last=False, machine=PLAIN_CPU)
    assert never.calls == [] and (off.dtype, off.channels_last) == (None, False)
    assert (bf16.dtype, bf16.channels_last) == (torch.bfloat16, False)
    times = FakeTimes({"fp32 NCHW": 1.0, "fp32 channels-last": 0.5})
    assert decide(times, tmp_path, amp="off").name == "fp32 channels-last"  # --amp off: only layouts timed
    assert set(times.calls) == {"fp32 NCHW", "fp32 channels-last"}


def test_probing_off_and_gpus_keep_the_fixed_rule(tmp_path):
    never = FakeTimes({})
    chosen = decide(never, tmp_path, env={"CONDGAN_PROBE": "0"})
    assert never.calls == [] and chosen.channels_last is False and "fixed rule, CONDGAN_PROBE=0" in chosen.how
    gpu = decide(never, tmp_path, amp="off", device=torch.device("cuda"))
    assert never.calls == [] and gpu == Setting(None, True)  # channels-last, as on every GPU
    assert not (tmp_path / "probe.json").exists()


def test_a_failing_candidate_falls_back_with_a_warning(tmp_path):
    warnings = []
    times = FakeTimes({**FOUR, "bf16 channels-last": RuntimeError("mkldnn: unsupported\nmore"),
                       "bf16 NCHW": ValueError("no")})
    chosen = decide(times, tmp_path, warn=warnings.append)
    assert chosen.name == "fp32 NCHW"
    assert warnings == ["condgan.probe: bf16 NCHW failed (no); it is not a candidate",
                        "condgan.probe: bf16 channels-last failed (mkldnn: unsupported); it is not a candidate"]
    assert times.calls.count("bf16 NCHW") == 1  # not tried again in the second round
    warnings.clear()
    broken = FakeTimes({name: RuntimeError("x") for name in FOUR})
    chosen = decide(broken, tmp_path, key={**KEY, "batch": 2}, warn=warnings.append)
    assert len(warnings) == 4 and chosen.how == "every probed setting failed: fixed rule"


def test_cpu_flags_and_model_from_cpuinfo():
    x86 = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n"
    assert probe.cpu_model(x86) == "Intel(R) Xeon(R) Platinum 8480+"
    assert probe.Machine("x", probe.cpu_flags(x86), 2, "t").has_bf16()
    assert not probe.Machine("x", probe.cpu_flags("flags : fpu avx2 avx512f\n"), 2, "t").has_bf16()
    assert probe.cpu_flags("processor : 0\n") is None  # unknown: torch's own check decides


def test_seconds_per_call_warms_up_then_keeps_the_fastest_call():
    ticks, calls = iter([0, 1.0, 1.0, 1.5, 1.5, 1.8, 1.8, 2.6]), []
    assert probe.seconds_per_call(lambda: calls.append(1), clock=lambda: next(ticks), budget_s=3, max_calls=5) \
        == pytest.approx(0.3)
    assert len(calls) == 4  # one warm-up of 1 s, then budget 3 s / 1 s = 3 timed calls


def _tiny(name):
    from condgan.train import parse_config
    cfg, _ = parse_config(["--model", name, *models.model_class(name).smoke_flags])
    dataset, info = models.data_for(cfg, "train")
    return cfg, models.build(cfg, info), dataset


def test_a_real_probe_of_a_tiny_model_leaves_its_weights_and_the_rng_alone(tmp_path):
    cfg, model, dataset = _tiny("pix2pix")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    chosen = probed_setting(cfg, model, CPU, dataset, budget_s=0, machine=PLAIN_CPU, cache=tmp_path / "p.json",
                            env=ON, warn=pytest.fail)
    assert chosen.dtype is None and chosen.how.startswith("probed: fp32 ")
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    (entry,) = json.loads((tmp_path / "p.json").read_text())["entries"].values()
    assert entry["key"]["size"] == [32, 32] and entry["key"]["batch"] == cfg.batch_size


def test_translation_probes_generator_forwards_and_applies_the_layout(tmp_path):
    _, model, _ = _tiny("pix2pix")
    model.eval()
    chosen = probe.for_translation(model, "auto", "AtoB", (32, 32), 2, budget_s=0, machine=BF16_CPU,
                                   cache=tmp_path / "p.json", env=ON, warn=pytest.fail)
    assert chosen.how.startswith("probed: ") and chosen.name in FOUR
    (entry,) = json.loads((tmp_path / "p.json").read_text())["entries"].values()
    assert entry["key"]["mode"] == "infer" and set(entry["times"]) == set(FOUR)
    weight = next(p for p in model.generator("AtoB").parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=chosen.layout)
    fixed = probe.for_translation(model, "auto", "AtoB", (32, 32), 2, env={"CONDGAN_PROBE": "0"})
    assert (fixed.dtype, fixed.channels_last) == (None, False)  # today's rule for translation: fp32 NCHW


class FakeLibc:
    """mallopt recorder: returns 1 (success) like glibc, or 0 for parameters listed as refused."""

    def __init__(self, refuse=()):
        self.calls, self.refuse = [], set(refuse)

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 0 if param in self.refuse else 1


@pytest.fixture
def fresh_allocator_flag(monkeypatch):
    from condgan import device
    monkeypatch.setattr(device, "_allocator_tuned", False)
    return device


def test_the_cpu_allocator_keeps_freed_memory_once_and_can_be_turned_off(fresh_allocator_flag):
    device = fresh_allocator_flag
    off = FakeLibc()
    for value in ("0", "off"):
        assert not device.tune_cpu_allocator(env={device.ALLOCATOR_ENV: value}, libc=off) and off.calls == []
    libc = FakeLibc()
    assert device.tune_cpu_allocator(env={}, libc=libc)
    assert libc.calls == [(-4, 0), (-1, 2 ** 31 - 1)]  # M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB - 1
    again = FakeLibc()
    assert device.tune_cpu_allocator(env={}, libc=again) and again.calls == []  # once per process


def test_a_refused_mallopt_reports_the_tuning_as_not_in_effect(fresh_allocator_flag):
    device = fresh_allocator_flag
    assert not device.tune_cpu_allocator(env={}, libc=FakeLibc(refuse={-4}))
    assert device._allocator_tuned is False
