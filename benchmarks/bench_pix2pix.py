"""pix2pix training throughput: condgan vs a plain eager fp32 reference, side by side in one process.

    PYTHONPATH=. python benchmarks/bench_pix2pix.py [--batch-sizes 1 8] [--rounds 5] [--size 256]

Both sides train unet_256 + 70x70 PatchGAN with vanilla GAN + 100 x L1 and Adam
(2e-4, 0.5/0.999). Before timing, the reference's weights are copied into
ours and one generator forward is compared, so the two compute the same model.
Rounds alternate between the two implementations so drifting machine load hits
both alike; the table reports the median images/s and the ratio.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_pix2pix import ReferencePix2Pix, copy_weights_into  # noqa: E402

from condgan.data import DataInfo  # noqa: E402
from condgan.models.pix2pix import Pix2Pix, Pix2PixConfig  # noqa: E402
from condgan.trainer import Trainer  # noqa: E402


class Ours:
    """Our model and the Trainer's phase runner, without data loading."""

    def __init__(self, size: int, device: torch.device, channels_last: bool, amp: str):
        cfg = Pix2PixConfig(crop_size=size, channels_last=channels_last, amp=amp)
        self.model = Pix2Pix(cfg, DataInfo("paired", "bench", 3, size, size, in_channels=3))
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
        batch = {"input": a.contiguous(memory_format=self.trainer.layout),
                 "target": b.contiguous(memory_format=self.trainer.layout)}
        for phase in self.model.phases(0):
            self.trainer._run_phase(phase, batch)


def check_same_model(device):
    torch.manual_seed(0)
    ref, ours = ReferencePix2Pix(), Ours(256, device, False, "off")
    copy_weights_into(ours.model.G, ours.model.D, ref.G, ref.D)
    x = torch.randn(1, 3, 256, 256, device=device)
    ref.G.to(device).eval()
    ours.model.G.eval()
    with torch.no_grad():
        diff = (ref.G(x.clone()) - ours.model.G(x)).abs().max().item()
    print(f"same model: max |G_ours - G_reference| = {diff:.2e} on one 256x256 image (eval mode)")
    return diff


def timed(fn, n, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="steps per round (default: 3 at batch 1, 1 at batch 8)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", nargs="+", default=["default"],
                   help="ours: default, channels_last, contiguous, amp (GPU)")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    assert check_same_model(device) < 1e-4
    rows = []
    for bs in args.batch_sizes:
        a = torch.randn(bs, 3, args.size, args.size, device=device)
        b = torch.rand(bs, 3, args.size, args.size, device=device) * 2 - 1
        ref = ReferencePix2Pix()
        ref.G.to(device)
        ref.D.to(device)
        impls = {"reference (eager fp32)": lambda: ref.step(a, b)}
        for v in args.variants:
            cl = {"default": device.type == "cuda", "channels_last": True, "contiguous": False, "amp": True}[v]
            amp = "auto" if v in ("amp", "default") else "off"
            ours = Ours(args.size, device, cl, amp)
            impls[f"condgan ({v})"] = (lambda o=ours: o.step(a, b))
        n = args.steps or (3 if bs == 1 else 1)
        for fn in impls.values():  # warm-up
            fn()
        times = {k: [] for k in impls}
        for _ in range(args.rounds):
            for k, fn in impls.items():
                times[k].append(timed(fn, n, device))
        ref_t = statistics.median(times["reference (eager fp32)"])
        for k, ts in times.items():
            med = statistics.median(ts)
            rows.append((bs, k, bs / med, ref_t / med))
    print(f"\n| batch | implementation | images/s | vs reference |\n|---|---|---|---|")
    for bs, k, ips, ratio in rows:
        print(f"| {bs} | {k} | {ips:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
