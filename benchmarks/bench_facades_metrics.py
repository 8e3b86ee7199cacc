"""Short pix2pix runs on the real facades, scored with every metric of `condgan.evaluate`, and the time the
evaluation takes per 100 images.

    PYTHONPATH=. python benchmarks/bench_facades_metrics.py [--facades ../shared/data/facades/train]
        [--minutes 8] [--directions BtoA AtoB] [--out bench-runs/facades-metrics]

Reads the 400 real training pairs from ../shared (never the package's data); images 1-350 by number train,
351-400 are the validation split. Each direction trains for a fixed wall-clock budget (--minutes), then
`condgan.evaluate` scores the 50 validation pairs. BtoA (labels -> photo) gets the photo metrics; AtoB
(photo -> labels) also the per-pixel label accuracy. Prints one Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    flags = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").exists() else ""
    extras = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(extras) or 'no AVX-512'}"


def split(facades: Path, out: Path) -> Path:
    """PATH/train (1-350) and PATH/val (351-400) as links to the shared files (aligned A|B images)."""
    files = sorted(facades.glob("*.jpg"), key=lambda p: int(p.stem))
    if len(files) != 400:
        raise SystemExit(f"expected the 400 facades training pairs in {facades}, found {len(files)}")
    data = out / "facades"
    for name, part in (("train", files[:350]), ("val", files[350:])):
        (data / name).mkdir(parents=True, exist_ok=True)
        for f in part:
            link = data / name / f.name
            if not link.exists():
                os.symlink(f.resolve(), link)
    return data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--facades", default=str(ROOT.parent / "shared" / "data" / "facades" / "train"))
    p.add_argument("--minutes", type=float, default=8.0, help="training budget per direction")
    p.add_argument("--directions", nargs="+", default=["BtoA", "AtoB"], choices=["AtoB", "BtoA"])
    p.add_argument("--out", default="bench-runs/facades-metrics")
    args = p.parse_args()
    out = Path(args.out)
    data = split(Path(args.facades), out)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rows = []
    for direction in args.directions:
        run = out / f"pix2pix-{direction}"
        shutil.rmtree(run, ignore_errors=True)
        t0 = time.time()
        train = subprocess.Popen([sys.executable, "-m", "condgan.train", "--model", "pix2pix", "--data", str(data),
                                  "--direction", direction, "--epochs", "200", "--ckpt-every", "50",
                                  "--val-images", "50", "--no-progress", "--out", str(run)], env=env)
        try:
            train.wait(timeout=args.minutes * 60)
        except subprocess.TimeoutExpired:
            train.send_signal(2)  # SIGINT: saves a checkpoint at the next batch, exits 130
            train.wait()
        trained_s = time.time() - t0
        step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
        t1 = time.time()
        ev = subprocess.run([sys.executable, "-m", "condgan.evaluate", str(run), "--json", str(run / "eval.json"),
                             "--no-progress"], env=env, capture_output=True, text=True)
        if ev.returncode:
            raise SystemExit(f"evaluate failed: {ev.stderr[-500:]}")
        eval_s = time.time() - t1
        res = json.loads((run / "eval.json").read_text())
        rows.append((direction, step, trained_s, eval_s, res))
        print(ev.stdout, flush=True)
    print(f"\nmachine: {machine()}; torch threads: default\n")
    print("| direction | steps (budget) | L1 | PSNR dB | SSIM | FID | KID | label accuracy | checkerboard ratio "
          "| evaluate: s per 100 images |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for direction, step, trained_s, eval_s, r in rows:
        def f(key, fmt):
            return format(r[key], fmt) if r.get(key) is not None else "-"
        print(f"| {direction} | {step} ({trained_s / 60:.1f} min) | {f('l1', '.4f')} | {f('psnr', '.2f')} | "
              f"{f('ssim', '.4f')} | {f('fid', '.1f')} | {f('kid', '.4f')} | {f('label_accuracy', '.3f')} | "
              f"{f('checkerboard_ratio', '.2f')} | {eval_s / r['n'] * 100:.1f} |")
    notes = {r.get("inception_note") for *_, r in rows if r.get("inception_note")}
    for note in notes:
        print(f"\nFID/KID: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
