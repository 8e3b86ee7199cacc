"""CUT and FastCUT vs CycleGAN: seconds per training step and peak memory, side by side in one run.

    PYTHONPATH=. python benchmarks/bench_cut.py [--size 256] [--rounds 3] [--steps 3] [--warmup 1] [--threads 2]

Every measurement is one fresh subprocess per model and round (so that its peak memory is its own): it builds
the model from its preset (--amp off: fp32; batch 1; random images in [-1, 1], the speed of a step does not
depend on their content), runs --warmup training steps (every phase: G and D), then times --steps more, one
at a time. Peak memory is the process's peak resident set (resource.getrusage ru_maxrss), reported whole and
as the increase over the resident set just before the first step (the nets' weights and the Python/torch
runtime sit in the baseline; activations, gradients and Adam's state in the increase). The models take turns
in every round, in a rotated order, so that load from other users of the machine falls on all of them; the
table gives the median step time over all timed steps of all rounds, the median peak over the rounds, and
each model's ratio to CycleGAN.

Models: cut and fastcut with their presets (the paper's anti-aliased generator, bilinear upsampling), the
same two with CycleGAN's generator layout (`-plain`: --no-antialias --upsampling transpose), and cyclegan.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = {
    "cut": ("cut", {"mode": "cut"}),
    "fastcut": ("cut", {"mode": "fastcut"}),
    "cut-plain": ("cut", {"mode": "cut", "antialias": False, "upsampling": "transpose"}),
    "fastcut-plain": ("cut", {"mode": "fastcut", "antialias": False, "upsampling": "transpose"}),
    "cyclegan": ("cyclegan", {}),
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def worker(variant: str, size: int, steps: int, warmup: int, threads: int) -> dict:
    import torch

    from condgan import models
    from condgan.data import DataInfo
    from condgan.step import StepRunner

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    name, overrides = VARIANTS[variant]
    cfg = models.config_class(name)(crop_size=size, load_size=size, amp="off", **overrides)
    cfg.validate()
    runner = StepRunner.build(cfg, DataInfo("unpaired", "bench", 3, size, size, in_channels=3), "cpu")
    g = torch.Generator().manual_seed(1)
    batch = runner.to_device({k: torch.rand(1, 3, size, size, generator=g) * 2 - 1 for k in "AB"})
    base = _rss_mb()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        runner.train_step(batch)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in runner.model.parameters())
    return {"variant": variant, "times": times, "peak_mb": _rss_mb(), "base_mb": base, "params": params}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="timed steps per model and round")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--json", help="also write the raw measurements here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.steps, args.warmup, args.threads)))
        return
    runs = {m: [] for m in args.models}
    for r in range(args.rounds):
        order = args.models[r % len(args.models):] + args.models[:r % len(args.models)]
        for m in order:
            cmd = [sys.executable, __file__, "--worker", m, "--size", str(args.size), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            runs[m].append(res)
            print(f"round {r + 1}: {m:<14} {statistics.median(res['times']):6.2f} s/step  peak "
                  f"{res['peak_mb']:6.0f} MB (+{res['peak_mb'] - res['base_mb']:.0f})", flush=True)
    rows = {}
    for m, rs in runs.items():
        rows[m] = {"s_per_step": statistics.median([t for r in rs for t in r["times"]]),
                   "peak_mb": statistics.median([r["peak_mb"] for r in rs]),
                   "increase_mb": statistics.median([r["peak_mb"] - r["base_mb"] for r in rs]),
                   "params_m": rs[0]["params"] / 1e6}
    ref = rows.get("cyclegan")
    print(f"\n{args.size}x{args.size}, batch 1, fp32, {args.threads} threads; median of {args.rounds} rounds x "
          f"{args.steps} steps after {args.warmup} warm-up step(s); peak RSS per process")
    print("| model | params | s/step | step rate vs CycleGAN | peak RSS MB | vs CycleGAN | increase MB | vs CycleGAN |")
    print("|---|---|---|---|---|---|---|---|")
    for m, v in rows.items():
        rate = f"{ref['s_per_step'] / v['s_per_step']:.2f}x" if ref else "-"
        peak = f"{v['peak_mb'] / ref['peak_mb']:.2f}x" if ref else "-"
        inc = f"{v['increase_mb'] / ref['increase_mb']:.2f}x" if ref else "-"
        print(f"| {m} | {v['params_m']:.2f}M | {v['s_per_step']:.2f} | {rate} | {v['peak_mb']:.0f} | {peak} | "
              f"{v['increase_mb']:.0f} | {inc} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
