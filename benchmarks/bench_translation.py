"""Translation training throughput: condgan vs a plain eager fp32 reference, side by side in one run.

    PYTHONPATH=. python benchmarks/bench_translation.py pix2pix [--batch-sizes 1 8] [--rounds 5] [--size 256]
    PYTHONPATH=. python benchmarks/bench_translation.py cyclegan [--batch-sizes 1] [--rounds 5]

pix2pix: unet_256 + 70x70 PatchGAN with vanilla GAN + 100 x L1. CycleGAN: two
resnet_9blocks generators and two 70x70 PatchGANs (instance norm), LSGAN,
cycle 10 + identity 5, pools of 50. Adam (2e-4, 0.5/0.999) on both sides.
Before timing, the reference's weights are copied into ours and one generator
forward is compared, so the two compute the same model.
Each timing round runs every implementation in its own fresh process (so
neither inherits the other's allocator state), alternating, so drifting
machine load hits all alike; the table reports the median images/s over
rounds and the ratio to the reference.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_cyclegan import ReferenceCycleGAN  # noqa: E402
from reference_pix2pix import ReferencePix2Pix, copy_weights_into  # noqa: E402

from condgan import models  # noqa: E402
from condgan.data import DataInfo  # noqa: E402
from condgan.trainer import Trainer  # noqa: E402

REFERENCES = {"pix2pix": ReferencePix2Pix, "cyclegan": ReferenceCycleGAN}


class Ours:
    """Our model and the Trainer's phase runner, without data loading."""

    def __init__(self, name: str, size: int, device: torch.device, channels_last: bool, amp: str):
        cfg = models.config_class(name)(crop_size=size, channels_last=channels_last, amp=amp)
        kind = models.data_kind(name)
        self.model = models.build(cfg, DataInfo(kind, "bench", 3, size, size, in_channels=3))
        self.keys = ("input", "target") if kind == "paired" else ("A", "B")
        self.trainer = Trainer.__new__(Trainer)
        t = self.trainer
        t.cfg, t.model, t.device = cfg, self.model.to(device), device
        from condgan.trainer import amp_dtype
        t.amp = amp_dtype(amp, device)
        t.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=t.layout)
        t.opts = self.model.optimizers()
        t.scalers = {p: torch.amp.GradScaler(device.type, enabled=t.amp == torch.float16) for p in t.opts}

    def step(self, a, b):
        batch = {self.keys[0]: a.contiguous(memory_format=self.trainer.layout),
                 self.keys[1]: b.contiguous(memory_format=self.trainer.layout)}
        for phase in self.model.phases(0):
            self.trainer._run_phase(phase, batch)


@torch.no_grad()
def check_same_model(name, device):
    torch.manual_seed(0)
    ref, ours = REFERENCES[name](), Ours(name, 256, device, False, "off")
    if name == "pix2pix":
        copy_weights_into(ours.model.G, ours.model.D, ref.G, ref.D)
        pairs = [(ours.model.G, ref.G)]
    else:  # same parameter order; our PatchGAN's first bias sits in its fused activation
        pairs = [(getattr(ours.model, k), getattr(ref, k)) for k in ("G_A", "G_B", "D_A", "D_B")]
        for mine, theirs in pairs:
            for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
                p.copy_(q)
    g_ours, g_ref = pairs[0]
    x = torch.randn(1, 3, 256, 256, device=device)
    g_ref.to(device).eval()
    g_ours.eval()
    diff = (g_ref(x.clone()) - g_ours(x)).abs().max().item()
    print(f"same model: max |G_ours - G_reference| = {diff:.2e} on one 256x256 image (eval mode)")
    return diff


def reference_on(name, device):
    ref = REFERENCES[name]()
    for k in ("G", "D", "G_A", "G_B", "D_A", "D_B"):
        if hasattr(ref, k):
            getattr(ref, k).to(device)
    return ref


def step_flops(name, size, device) -> float:
    """FLOPs of one reference training step on one image (convolutions and matmuls, as torch counts them)."""
    from torch.utils.flop_counter import FlopCounterMode
    ref = reference_on(name, device)
    a, b = torch.randn(2, 1, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        ref.step(a, b)
    return counter.get_total_flops()


def matmul_rate(device, n=4096) -> float:
    """fp32 FLOP/s of a large square matmul: what the convolutions could reach at best."""
    x = torch.randn(n, n, device=device)
    x @ x
    t = timed(lambda: x @ x, 5, device)
    return 2 * n ** 3 / t


def timed(fn, n, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


VARIANTS = {  # name -> (implementation, extra environment)
    "reference (eager fp32)": ("ref", {}),
    "condgan": ("ours", {}),
    "condgan, AMP + channels_last": ("ours-amp", {}),
}


def worker(args) -> None:
    """One implementation, one batch size: warm up, then time --steps steps; print seconds per step as JSON."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    a = torch.randn(args.worker_batch, 3, args.size, args.size, device=device)
    b = torch.rand(args.worker_batch, 3, args.size, args.size, device=device) * 2 - 1
    if args.worker == "ref":
        ref = reference_on(args.model, device)
        fn = lambda: ref.step(a, b)  # noqa: E731
    else:
        amp = args.worker == "ours-amp"
        ours = Ours(args.model, args.size, device, channels_last=amp, amp="auto" if amp else "off")
        fn = lambda: ours.step(a, b)  # noqa: E731
    for _ in range(2):
        fn()
    print(json.dumps({"s_per_step": timed(fn, args.steps, device)}))


def run_worker(name, bs, steps, args) -> float:
    impl, env = VARIANTS[name]
    cmd = [sys.executable, __file__, args.model, "--worker", impl, "--worker-batch", str(bs), "--steps", str(steps),
           "--size", str(args.size), "--device", args.device]
    out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["s_per_step"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=list(REFERENCES))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="timed steps per round (default: 3 at batch 1, 1 above)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", nargs="+", default=["reference (eager fp32)", "condgan"], choices=list(VARIANTS))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""), flush=True)
    assert check_same_model(args.model, device) < 1e-4
    flops = step_flops(args.model, args.size, device)
    peak = matmul_rate(device)
    print(f"one training step: {flops / 1e9:.1f} GFLOP per image (counted on the reference); "
          f"this machine's fp32 matmul rate (4096^2): {peak / 1e9:.0f} GFLOP/s", flush=True)
    rows = []
    for bs in args.batch_sizes:
        n = args.steps or (3 if bs == 1 else 1)
        times = {v: [] for v in args.variants}
        for r in range(args.rounds):
            for v in args.variants:
                times[v].append(run_worker(v, bs, n, args))
            print(f"batch {bs} round {r + 1}: " + ", ".join(f"{v} {bs / t[-1]:.2f} img/s" for v, t in times.items()),
                  flush=True)
        ref_t = statistics.median(times["reference (eager fp32)"])
        for v, ts in times.items():
            rows.append((bs, v, bs / statistics.median(ts), ref_t / statistics.median(ts)))
    print("\n| batch | implementation | images/s | vs reference | GFLOP/s | share of matmul rate |\n"
          "|---|---|---|---|---|---|")
    for bs, v, ips, ratio in rows:
        print(f"| {bs} | {v} | {ips:.2f} | {ratio:.2f}x | {ips * flops / 1e9:.0f} | {ips * flops / peak:.0%} |")


if __name__ == "__main__":
    main()
