"""Precision and memory layout chosen by measurement, once per machine (`--amp auto` on CPU).

On first use, a few training steps of a copy of the run's model on one batch of the run's data (or, for
`condgan.translate`, generator forwards on an input of the run's size) are timed in each candidate setting
(precision x layout); the fastest wins. The choice is cached in `$CONDGAN_CACHE/probe.json` (default
`~/.cache/condgan/probe.json`), keyed by the CPU model, the thread count, the torch version, the model
(name and parameter count), the image size, the batch size and the candidates, so a change in any of them
measures again; entries of another CPU, thread count or torch version are dropped.

Candidates, CPU only (CUDA and MPS keep the fixed rule of condgan.device, unprobed: a probe there would
cost a cuDNN autotuning pass per candidate, and the rule is what GPUs are known to want):

- precision: fp32 always; bf16 only for models whose bf16 training was validated (`bf16_on_cpu`) and only
  on CPUs with bf16 instructions (`avx512_bf16` or `amx_bf16` in /proc/cpuinfo's flags, `bf16` in an ARM
  CPU's features). Elsewhere bf16 is emulated and slow, and is not timed at all. An explicit `--amp bf16`
  or `--amp off` fixes the precision.
- layout: NCHW and channels-last; `--no-channels-last` fixes NCHW.

A candidate that raises is dropped with a warning. `CONDGAN_PROBE=0` turns measuring off: the fixed rule.
Everything the probe touches is passed in (`machine`, `time_one`, `cache`, `env`, `warn`), so tests give it
fake machines and timings.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import atomic_write, rng_state, set_rng_state
from .device import AMP_DTYPES, Setting, autocast, cpu_has_bf16_units, rule

ENV = "CONDGAN_PROBE"
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16", "svebf16", "sve_bf16"})
MAX_ENTRIES = 64
SECOND_ROUND_UNDER_S = 10.0  # a first round longer than this is not repeated
MACHINE_KEYS = ("cpu", "threads", "torch")


def cpu_flags(cpuinfo: str) -> frozenset[str] | None:
    """The feature flags of /proc/cpuinfo text ("flags" on x86, "Features" on ARM); None if it names none."""
    found = [line.partition(":")[2].split() for line in cpuinfo.splitlines()
             if line.partition(":")[0].strip().lower() in ("flags", "features")]
    return frozenset(f for fs in found for f in fs) if found else None


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "cpu model", "hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Machine:
    """What the cache is keyed by, and whether the CPU has bf16 instructions."""

    cpu: str
    flags: frozenset[str] | None  # None: unknown (no /proc/cpuinfo): torch's AMX check decides
    threads: int
    torch: str

    @classmethod
    def here(cls) -> Machine:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
        return cls(cpu_model(text), cpu_flags(text), torch.get_num_threads(), torch.__version__)

    def has_bf16(self) -> bool:
        return bool(BF16_FLAGS & self.flags) if self.flags is not None else cpu_has_bf16_units()

    def key(self) -> dict:
        return {"cpu": self.cpu, "threads": self.threads, "torch": self.torch}


def enabled(env=None) -> bool:
    value = (os.environ if env is None else env).get(ENV, "1")
    return value.strip().lower() not in ("0", "off", "false", "no")


def cache_file() -> Path:
    root = os.environ.get("CONDGAN_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "condgan") / "probe.json"


def candidates(amp: str, channels_last: bool, bf16_validated: bool, machine: Machine) -> list[Setting]:
    """The CPU settings worth timing for these flags and this model on this machine."""
    if amp == "auto":
        dtypes = [None, torch.bfloat16] if bf16_validated and machine.has_bf16() else [None]
    else:
        dtypes = [AMP_DTYPES[amp]]
    return [Setting(d, cl) for d in dtypes for cl in ([False, True] if channels_last else [False])]


def seconds_per_call(fn, clock=None, budget_s: float = 2.0, max_calls: int = 5) -> float:
    """One warm-up call, then as many timed calls as fit in `budget_s` (1 to `max_calls`); the fastest."""
    clock = clock or time.perf_counter
    start = clock()
    fn()
    first = max(clock() - start, 1e-9)
    best = float("inf")
    for _ in range(max(1, min(max_calls, int(budget_s / first)))):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def _short(path: Path) -> str:
    home = str(Path.home())
    return "~" + str(path)[len(home):] if str(path).startswith(home + os.sep) else str(path)


def _how(times: dict, best: str, cache: Path, fresh: bool) -> str:
    others = ", ".join(f"{times[n] / times[best]:.2f}x {n}" for n in sorted(times, key=times.get) if n != best)
    where = f"saved to {_short(cache)}" if fresh else f"cached in {_short(cache)}"
    return f"probed: {best}" + (f" {others}" if others else "") + f"; {where}"


def _read(cache: Path) -> dict:
    try:
        entries = json.loads(cache.read_text()).get("entries", {})
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def choose(key: dict, cands: list[Setting], time_one, cache: Path, warn) -> Setting | None:
    """The fastest of `cands` by `time_one(setting) -> seconds`, from `cache` when it holds this key.
    None when every candidate failed."""
    by_name = {c.name: c for c in cands}
    ident = json.dumps(key, sort_keys=True)
    entries = _read(cache)
    hit = entries.get(ident)
    if isinstance(hit, dict) and hit.get("choice") in by_name and isinstance(hit.get("times"), dict):
        return dataclasses.replace(by_name[hit["choice"]], how=_how(hit["times"], hit["choice"], cache, False))
    times, failed, start = {}, set(), time.perf_counter()
    for order in (cands, cands[::-1]):  # a second round in reverse order, if the first was short: the best
        for c in order:                 # time of each counts, so a burst of other load hurts none alone
            if c.name in failed:
                continue
            try:
                times[c.name] = min(times.get(c.name, float("inf")), float(time_one(c)))
            except Exception as e:  # noqa: BLE001 - any failure rules the candidate out, the others still count
                detail = str(e).splitlines()[0] if str(e) else type(e).__name__
                warn(f"condgan.probe: {c.name} failed ({detail}); it is not a candidate")
                failed.add(c.name)
                times.pop(c.name, None)
        if time.perf_counter() - start > SECOND_ROUND_UNDER_S:
            break
    if not times:
        return None
    best = min(times, key=times.get)
    mine = {k: key[k] for k in MACHINE_KEYS if k in key}
    kept = {i: e for i, e in entries.items()
            if isinstance(e, dict) and isinstance(e.get("key"), dict)
            and {k: e["key"].get(k) for k in mine} == mine}  # another CPU, thread count or torch: invalid
    kept = dict(list(kept.items())[-(MAX_ENTRIES - 1):])
    kept[ident] = {"key": key, "times": times, "choice": best, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        with atomic_write(cache) as f:
            f.write((json.dumps({"format": 1, "entries": kept}, indent=1) + "\n").encode())
    except OSError as e:
        warn(f"condgan.probe: could not save the choice to {cache} ({e.strerror or e}); it will be measured again")
    return dataclasses.replace(by_name[best], how=_how(times, best, cache, True))


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def decide(amp: str, channels_last: bool, device: torch.device, model_cls, key: dict, time_one, *,
           fixed: Setting | None = None, machine: Machine | None = None, cache: Path | None = None, env=None,
           warn=None) -> Setting:
    """The setting to run in: the probe's choice among the candidates on CPU, the fixed rule elsewhere
    (and with CONDGAN_PROBE=0). `key`: what else the choice depends on (model, size, batch, mode);
    `fixed`: the rule's setting (default: the training rule of condgan.device)."""
    fixed = fixed or rule(amp, channels_last, device, model_cls.bf16_on_cpu, model_cls.channels_last_on_cpu)
    if device.type != "cpu" or amp == "fp16":
        return fixed
    if not enabled(env):
        return dataclasses.replace(fixed, how=f"fixed rule, {ENV}=0")
    machine = machine or Machine.here()
    cands = candidates(amp, channels_last, model_cls.bf16_on_cpu, machine)
    note = ("no bf16 instructions in this CPU" if amp == "auto" and model_cls.bf16_on_cpu
            and not machine.has_bf16() else "")
    if len(cands) == 1:
        return dataclasses.replace(cands[0], how=note)
    key = {**machine.key(), "device": "cpu", **key, "candidates": [c.name for c in cands]}
    chosen = choose(key, cands, time_one, cache or cache_file(), warn or _stderr)
    if chosen is None:
        return dataclasses.replace(fixed, how="every probed setting failed: fixed rule")
    return dataclasses.replace(chosen, how="; ".join(t for t in (chosen.how, note) if t))


def for_translation(model, amp: str, direction: str, size: tuple[int, int], batch: int, clock=None,
                    budget_s: float = 1.0, **inject) -> Setting:
    """The setting for `condgan.translate`'s generator forwards on `batch` images of `size` (H, W), left
    applied to the model's layout; RNG states are left as they were. The fixed rule (GPUs,
    CONDGAN_PROBE=0) is today's: fp32 NCHW unless --amp names a precision."""
    cin, _ = model.io_channels(direction)
    x = torch.rand(batch, cin, *size, device=model.device) * 2 - 1

    def time_one(setting):
        model.to(memory_format=setting.layout)
        xs = x.contiguous(memory_format=setting.layout)

        def forward():
            with torch.inference_mode(), autocast(model.device, setting.dtype):
                model.translate(xs, direction)
        return seconds_per_call(forward, clock=clock, budget_s=budget_s)

    params = sum(p.numel() for p in model.generator(direction).parameters())
    key = {"mode": "infer", "model": model.cfg.model, "direction": direction, "parameters": params,
           "size": list(size), "batch": batch}
    fixed = Setting(None if amp == "auto" else AMP_DTYPES[amp])
    state = rng_state()  # a generator in train mode (dropout) draws random numbers: leave them as they were
    try:
        setting = decide(amp, True, model.device, type(model), key, time_one, fixed=fixed, **inject)
    finally:
        set_rng_state(state)
    model.to(memory_format=setting.layout)
    return setting
