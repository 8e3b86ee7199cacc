"""Exported generators in onnxruntime vs the same generators in PyTorch eager, side by side in one run.

    PYTHONPATH=. python benchmarks/bench_onnx.py [--rounds 5] [--threads 2] [--out benchmarks/results/onnx]

Models: pix2pix's unet_256 generator at 256x256 (3 -> 3 channels, batch norm,
eval mode) and the default class-conditional generator (digits, 28x28). Both
are built from a fixed seed and exported with condgan.export (fp32 and fp16;
the exporter checks each against PyTorch). Every timing runs in its own fresh
process, implementations alternating within each round, with the same thread
count for both runtimes. Reported: median latency at batch 1 (ms) and
throughput at batch 8 (images/s), each the median over rounds of the median
over iterations; and the model files' sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("pix2pix_unet256", "cgan_digits")
IMPLS = ("pytorch eager", "onnxruntime fp32", "onnxruntime fp16")


def build(name: str):
    import torch

    from condgan import models
    from condgan.data import DataInfo
    torch.manual_seed(0)
    if name == "pix2pix_unet256":
        cfg = models.config_class("pix2pix")()
        info = DataInfo("paired", "bench", 3, 256, 256, in_channels=3)
    else:
        cfg = models.config_class("cgan")()
        info = DataInfo("labelled", "digits", 1, 28, 28, num_classes=10, class_names=[str(i) for i in range(10)])
    return models.build(cfg, info).eval()


def inputs(name: str, batch: int):
    import numpy as np
    rng = np.random.default_rng(batch)
    if name == "pix2pix_unet256":
        return {"image": (rng.random((batch, 3, 256, 256), dtype=np.float32) * 2 - 1)}
    from condgan.models.cgan import CGANConfig
    latent = CGANConfig().latent_dim
    return {"z": rng.standard_normal((batch, latent), dtype=np.float32), "label": np.arange(batch) % 10}


def worker(impl: str, name: str, batch: int, threads: int, model_dir: Path, iters: int) -> dict:
    feed = inputs(name, batch)
    if impl == "pytorch eager":
        import torch
        torch.set_num_threads(threads)
        model = build(name)
        g = model.generator() if name == "cgan_digits" else model.G
        args = [torch.from_numpy(v) for v in feed.values()]

        def run():
            with torch.inference_mode():
                g(*args)
    else:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        precision = impl.split()[-1]
        session = ort.InferenceSession(str(model_dir / f"{name}_{precision}.onnx"), so,
                                       providers=["CPUExecutionProvider"])

        def run():
            session.run(None, feed)
    for _ in range(3):
        run()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/onnx")
    p.add_argument("--worker", nargs=5, metavar=("IMPL", "MODEL", "BATCH", "DIR", "ITERS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        impl, name, batch, model_dir, iters = args.worker
        print(json.dumps(worker(impl, name, int(batch), args.threads, Path(model_dir), int(iters))))
        return

    from condgan.export import export_model
    model_dir = Path(tempfile.mkdtemp(prefix="condgan_onnx_bench_"))
    sizes, parity = {}, {}
    for name in MODELS:
        model = build(name)
        for precision in ("fp32", "fp16"):
            r = export_model(model, model_dir / f"{name}_{precision}.onnx", fp16=precision == "fp16")
            sizes[f"{name} {precision}"] = r["bytes"]
            parity[f"{name} {precision}"] = max(x["max_abs_diff"] for x in r["parity"])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    results: dict = {}
    for rnd in range(args.rounds):
        for name in MODELS:
            for batch in (1, 8):
                iters = 10 if name == "pix2pix_unet256" else 50
                for impl in IMPLS:
                    cmd = [sys.executable, __file__, "--threads", str(args.threads),
                           "--worker", impl, name, str(batch), str(model_dir), str(iters)]
                    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
                    t = json.loads(out.strip().splitlines()[-1])["median_s"]
                    results.setdefault(f"{name}|{batch}|{impl}", []).append(t)
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)

    rows = []
    header = "| model | batch | runtime | latency (ms) | images/s | vs PyTorch eager |"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
          f"{args.threads} threads, {args.rounds} rounds\n")
    print(header + "\n|---|---|---|---|---|---|")
    for name in MODELS:
        for batch in (1, 8):
            base = statistics.median(results[f"{name}|{batch}|pytorch eager"])
            for impl in IMPLS:
                t = statistics.median(results[f"{name}|{batch}|{impl}"])
                row = {"model": name, "batch": batch, "runtime": impl, "latency_ms": 1000 * t,
                       "images_per_s": batch / t, "speedup_vs_eager": base / t}
                rows.append(row)
                print(f"| {name} | {batch} | {impl} | {1000 * t:.1f} | {batch / t:.1f} | {base / t:.2f}x |")
    print("\n| model file | MiB | max abs diff to PyTorch (export check) |\n|---|---|---|")
    for k, v in sizes.items():
        print(f"| {k} | {v / 2**20:.1f} | {parity[k]:.1e} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "onnx_bench.json").write_text(json.dumps({"rows": rows, "bytes": sizes, "parity": parity,
                                                     "threads": args.threads, "rounds": args.rounds}, indent=2))


if __name__ == "__main__":
    main()
