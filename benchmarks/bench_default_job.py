"""Reproducible run of the default job (`python -m condgan.train`, no arguments) and its evaluation.

    python benchmarks/bench_default_job.py [--out benchmarks/results/default_job] [-- extra train flags]

Runs the default job in a subprocess exactly as a user would (only --out is
added), times it from process start to exit, then runs `condgan.evaluate`
on the finished run. Prints one Markdown table row for BENCHMARKS.md and
writes everything to OUT/bench.json. The compiled extension and the digit
classifier are cached across runs; pass --cold to give the job fresh caches,
so their one-off build/training time is reported separately from training.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    return (f"{model}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, Python {platform.python_version()}")


def run(cmd: list[str], env: dict, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_default_job: {' '.join(cmd)} failed with exit code {proc.returncode}; see {log}")
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/default_job", help="run directory to create")
    p.add_argument("--cold", action="store_true", help="fresh extension and classifier caches")
    p.add_argument("train_args", nargs="*", help="extra flags for condgan.train (after --)")
    args = p.parse_args()

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.cold:
        tmp = Path(tempfile.mkdtemp(prefix="condgan-bench-"))
        env.update(CONDGAN_EXT_DIR=str(tmp / "ext"), CONDGAN_CACHE=str(tmp / "cache"))

    train_log = out.parent / f"{out.name}.train.log"
    train_s = run([sys.executable, "-m", "condgan.train", "--out", str(out), "--no-progress", *args.train_args],
                  env, train_log)
    text = train_log.read_text()
    m = re.search(r"done: (\d+) steps in (\d+) s \(([\d.]+) steps/s\)", text)
    steps, loop_s, steps_per_s = (int(m.group(1)), int(m.group(2)), float(m.group(3))) if m else (0, 0, 0.0)

    eval_json = out / "evaluate.json"
    eval_s = run([sys.executable, "-m", "condgan.evaluate", str(out), "--json", str(eval_json)], env,
                 out.parent / f"{out.name}.evaluate.log")
    res = json.loads(eval_json.read_text())
    ratio = res["fid_classifier"] / res["fid_classifier_real_floor"]
    summary = {
        "machine": machine(), "train_args": args.train_args, "wall_s": round(train_s, 1),
        "training_loop_s": loop_s, "steps": steps, "steps_per_s": steps_per_s,
        "evaluate_s": round(eval_s, 1), "fid_ratio": round(ratio, 2), **res,
    }
    (out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"machine: {summary['machine']}")
    print("| wall time (whole job) | training loop | steps | steps/s | conditional accuracy "
          "| FID (classifier features) | real-vs-real floor | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {train_s / 60:.1f} min | {loop_s} s | {steps} | {steps_per_s:.2f} | "
          f"{res['conditional_accuracy'] * 100:.2f} % | {res['fid_classifier']:.3f} | "
          f"{res['fid_classifier_real_floor']:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
