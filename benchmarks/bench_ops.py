"""Side-by-side timings of the condgan fused ops: eager PyTorch,
torch.compile of the same code, and the compiled condgan kernels, against the
memory-traffic floor. Prints a markdown table.

    python benchmarks/bench_ops.py                 # CPU, 2 threads, (16, 64, 128, 128) float32
    python benchmarks/bench_ops.py --repeats 15 --threads 2
    python benchmarks/bench_ops.py --device cuda   # GPU, (32, 64, 256, 256) float32
    python benchmarks/bench_ops.py --device cuda --dtype bfloat16

Every row times forward + backward (torch.autograd.grad, so nothing
accumulates). Variants run round-robin inside each repeat, so drift in machine
load hits all of them alike; the x.clone() that defines the floor runs in the
same round-robin as each op it is compared with. The table reports medians.

Floor: the kernel's unavoidable traffic expressed in clones of the input:
one x.clone() reads and writes x once (2 tensor passes). bias + leaky ReLU must
read x and write y (forward), read grad and y and write dx (backward): 5
passes = 2.5 clones. upsample2x must move 1 + 4 (forward) and 4 + 1
(backward) input-sized passes = 5 clones.

"GB/s" is the floor's traffic divided by the op's time, and the percentage
beside it the share of the clone's own rate (on a GPU, x.clone() is a
device-to-device copy: the target there is >= 80 %). On CUDA every timed call
is bracketed by torch.cuda.synchronize().
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F

from condgan import ops


def device_model(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def ms(value: float) -> str:
    """Milliseconds with three significant digits or more (GPU rows are sub-millisecond)."""
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def fwd_bwd(fn, inputs, grad):
    def run():
        out = fn(*inputs)
        torch.autograd.grad(out, inputs, grad)
    return run


def time_round_robin(variants: dict, repeats: int, warmup: int = 2, sync=lambda: None) -> dict:
    for run in variants.values():
        for _ in range(warmup):
            run()
    sync()
    samples = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            sync()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) * 1e3 for name, s in samples.items()}


def leaky_eager(x, b):
    return F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2)


def leaky_ours(x, b):
    return ops.bias_leaky_relu(x, b, 0.2, 1.0, impl="native")


def make_upsample(mode, impl):
    return lambda x: ops.upsample2x(x, mode, impl=impl)


def fused_eager(x, b):
    return F.interpolate(leaky_eager(x, b), scale_factor=2, mode="nearest")


def fused_two_ops(x, b):
    return ops.upsample2x(ops.bias_leaky_relu(x, b, 0.2, 1.0, impl="native"), "nearest", impl="native")


def fused_ours(x, b):
    return ops.upsample2x_bias_leaky_relu(x, b, 0.2, 1.0, "nearest", impl="native")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--shape", type=int, nargs=4, default=None,
                        help="N C H W (default: 16 64 128 128 on CPU, 32 64 256 256 on a GPU)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: PyTorch sees no CUDA device here")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if args.shape is not None and min(args.shape) < 1:
        parser.error(f"--shape needs four positive sizes, got {args.shape}")
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be positive")
    dtype = getattr(torch, args.dtype)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    torch.manual_seed(0)

    shape = tuple(args.shape or ([32, 64, 256, 256] if on_gpu else [16, 64, 128, 128]))
    make = dict(device=device, dtype=dtype)
    x = torch.randn(shape, **make).requires_grad_()
    b = torch.randn(shape[1], **make).requires_grad_()
    g_same = torch.randn(shape, **make)
    g_up = torch.randn(shape[0], shape[1], 2 * shape[2], 2 * shape[3], **make)
    nbytes = x.numel() * x.element_size()

    compile_ = (lambda f: None) if args.no_compile else torch.compile
    cases = [
        ("bias + leaky ReLU", 2.5, (x, b), g_same, leaky_eager, compile_(leaky_eager), leaky_ours),
    ]
    for mode in ("nearest", "bilinear"):
        eager = make_upsample(mode, "ref")
        cases.append((f"upsample2x {mode}", 5.0, (x,), g_up, eager, compile_(eager), make_upsample(mode, "native")))
    # Fused decoder step: its floor is read x, write y (4x), save act (1x);
    # backward reads grad (4x) and act, writes dx: 12 passes = 6 clones.
    cases.append(("bias + leaky ReLU + upsample2x nearest", 6.0, (x, b), g_up, fused_eager, compile_(fused_eager),
                  fused_ours))

    where = device_model(device) if on_gpu else f"{cpu_model()}, {args.threads} threads"
    print(f"condgan.ops {device.type.upper()} benchmark: {where}, torch {torch.__version__}, "
          f"shape {shape} {args.dtype}, forward+backward, median of {args.repeats}")
    print(f"backend: {ops.backend()}")
    print()
    print("| op (fwd+bwd) | eager ms | torch.compile ms | condgan ms | x.clone() ms | floor ms | vs eager "
          "| vs compile | condgan / floor | condgan GB/s (% of clone's) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, passes, inputs, grad, eager, compiled, ours in cases:
        variants = {"clone": lambda: x.detach().clone(), "eager": fwd_bwd(eager, inputs, grad),
                    "ours": fwd_bwd(ours, inputs, grad)}
        if compiled is not None:
            variants["compile"] = fwd_bwd(compiled, inputs, grad)
        if name.startswith("bias + leaky ReLU + upsample2x"):
            variants["two_ops"] = fwd_bwd(fused_two_ops, inputs, grad)
        t = time_round_robin(variants, args.repeats, sync=sync)
        floor = passes * t["clone"]
        comp = t.get("compile", float("nan"))
        rate = 2 * passes * nbytes / (t["ours"] * 1e-3) / 1e9
        print(f"| {name} | {ms(t['eager'])} | {ms(comp)} | {ms(t['ours'])} | {ms(t['clone'])} | {ms(floor)} | "
              f"{t['eager'] / t['ours']:.2f}x | {comp / t['ours']:.2f}x | {t['ours'] / floor:.2f} | "
              f"{rate:.0f} ({100 * floor / t['ours']:.0f} %) |")
        if "two_ops" in t:
            print(f"| ↳ same with condgan bias_leaky_relu then upsample2x (unfused) | | | {ms(t['two_ops'])} | | | "
                  f"| | fused is {t['two_ops'] / t['ours']:.2f}x faster | |")


if __name__ == "__main__":
    main()
