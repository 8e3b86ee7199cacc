"""Time one cGAN training step (D phase + G phase) with contiguous vs channels-last layout.

    python benchmarks/bench_step.py [--threads 2] [--repeats 8] [--steps 10]

Builds the default cGAN on the embedded digits twice, one per layout, and
times `--steps` training steps of each in turn, `--repeats` times, in one
process (alternating, so both see the same machine load). Prints the median
milliseconds per step and the ratio.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from condgan import models
from condgan.data import build
from condgan.models.cgan import CGANConfig
from condgan.trainer import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    dataset, info = build("digits")
    batch = dataset.__getitems__(list(range(64)))
    trainers = {}
    for layout in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        cfg = dataclasses.replace(CGANConfig(), channels_last=layout == "channels_last")
        trainers[layout] = Trainer(cfg, models.build(cfg, info), dataset, info,
                                   Path(tempfile.mkdtemp()), torch.device("cpu"))
    times = {k: [] for k in trainers}
    for rep in range(args.repeats + 1):
        for layout, t in trainers.items():
            b = t.to_device(batch)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                t.train_step(b)
            if rep:  # the first round warms up
                times[layout].append((time.perf_counter() - t0) / args.steps * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.threads} threads, median of {args.repeats} x {args.steps} steps, batch 64:")
    for k, v in med.items():
        print(f"  {k:<14} {v:7.1f} ms/step")
    print(f"  channels_last is {med['contiguous'] / med['channels_last']:.2f}x the speed of contiguous")


if __name__ == "__main__":
    main()
