"""Per-op profile of one training step, fp32 and bf16 side by side (torch.profiler, top ops by self CPU time).

    PYTHONPATH=. python benchmarks/profile_step.py [--model pix2pix] [--size 256] [--batch 1] [--steps 3]

Builds the model and training step that `python -m condgan.bench` times (condgan.bench.Ours: the
Trainer's StepRunner without data loading), runs two warm-up steps, then profiles `--steps` steps per
precision, the precisions alternating, and prints one table per precision: the top `--top` ops by self
CPU time (milliseconds per step) and their share of the step.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from condgan.bench import Ours
from condgan.device import Setting


def profile_steps(ours: Ours, batch: dict, steps: int):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            ours.step(batch)
    return prof.key_averages()


def table(events, steps: int, top: int) -> tuple[str, float]:
    total = sum(e.self_cpu_time_total for e in events) / steps / 1e3
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    lines = ["| op | calls per step | self CPU ms per step | share |", "|---|---|---|---|"]
    for e in rows:
        ms = e.self_cpu_time_total / steps / 1e3
        lines.append(f"| `{e.key}` | {e.count // steps} | {ms:.1f} | {ms / total:.0%} |")
    return "\n".join(lines), total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pix2pix", choices=["pix2pix", "cyclegan", "cgan"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--precisions", nargs="+", default=["off", "bf16"], choices=["off", "bf16"])
    p.add_argument("--channels-last", action="store_true", help="run the step in channels-last (default NCHW)")
    args = p.parse_args()
    device = torch.device("cpu")
    torch.manual_seed(0)
    a = torch.randn(args.batch, 3, args.size, args.size)
    b = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    runs = {}
    for amp in args.precisions:
        setting = Setting(None if amp == "off" else torch.bfloat16, args.channels_last)
        ours = Ours(args.model, args.size, device, channels_last=args.channels_last, amp=amp, setting=setting)
        batch = ours.batch(a, b)
        for _ in range(2):
            ours.step(batch)
        runs[amp] = (ours, batch)
    print(f"{args.model} training step, {args.size}x{args.size}, batch {args.batch}, "
          f"{'channels-last' if args.channels_last else 'NCHW'}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    results = {amp: [] for amp in runs}
    for _ in range(args.steps):  # one step per precision per turn, so drifting load hits both alike
        for amp, (ours, batch) in runs.items():
            t = time.perf_counter()
            ours.step(batch)
            results[amp].append(time.perf_counter() - t)
    for amp, (ours, batch) in runs.items():
        text, total = table(profile_steps(ours, batch, args.steps), args.steps, args.top)
        name = "fp32" if amp == "off" else amp
        wall = sorted(results[amp])[len(results[amp]) // 2] * 1e3
        print(f"\n{name}: {wall:.0f} ms per step unprofiled (median of {args.steps}), "
              f"{total:.0f} ms self CPU per step profiled\n\n{text}")


if __name__ == "__main__":
    main()
