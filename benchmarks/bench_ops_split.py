"""Forward and backward of the compiled upsample2x kernels timed apart, per
mode, layout and shape, next to x.clone() and y.clone() of the same sizes.

    PYTHONPATH=. python benchmarks/bench_ops_split.py                      # 2 threads, (16, 64, 128, 128)
    PYTHONPATH=. python benchmarks/bench_ops_split.py --threads 1
    PYTHONPATH=. python benchmarks/bench_ops_split.py --shapes 16x256x32x32 64x512x8x8 --layouts nchw channels_last

Calls torch.ops.condgan directly (no autograd), CPU only. All rows of one
shape run round-robin inside each repeat, and each row reports the median of
each repeat round, so drift hits them alike. To compare two builds, run the
script from two checkouts (PYTHONPATH=path/to/checkout) one after the other,
more than once.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from condgan import ops


def parse_shape(text: str) -> tuple[int, int, int, int]:
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"a shape is four positive sizes like 16x64x128x128, got {text!r}")
    return shape


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", type=parse_shape, nargs="+", default=[(16, 64, 128, 128)])
    p.add_argument("--layouts", nargs="+", choices=["nchw", "channels_last"], default=["nchw"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--rounds", type=int, default=3, help="repeat the whole measurement; one column each")
    args = p.parse_args()
    if args.threads < 1 or args.repeats < 1 or args.rounds < 1:
        p.error("--threads, --repeats and --rounds must be positive")
    torch.set_num_threads(args.threads)
    ops.upsample2x(torch.randn(1, 1, 2, 2), "nearest", impl="native")  # builds or loads the extension
    kernels = torch.ops.condgan
    print(f"backend: {ops.backend()}; {args.threads} threads, median of {args.repeats}, "
          f"{args.rounds} rounds (one column each)")
    for shape in args.shapes:
        n, c, h, w = shape
        cases = {}
        for layout in args.layouts:
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = torch.randn(shape).contiguous(memory_format=fmt)
            g = torch.randn(n, c, 2 * h, 2 * w).contiguous(memory_format=fmt)
            cases[f"{layout} x.clone()"] = x.clone
            cases[f"{layout} y.clone()"] = g.clone
            for mode in ("nearest", "bilinear"):
                cases[f"{layout} forward {mode}"] = lambda x=x, m=mode: kernels.upsample2x(x, m)
                cases[f"{layout} backward {mode}"] = lambda g=g, m=mode: kernels.upsample2x_backward(g, m)
        columns = {name: [] for name in cases}
        for _ in range(args.rounds):
            for run in cases.values():
                run()
                run()
            samples = {name: [] for name in cases}
            for _ in range(args.repeats):
                for name, run in cases.items():
                    start = time.perf_counter()
                    run()
                    samples[name].append(time.perf_counter() - start)
            for name, s in samples.items():
                columns[name].append(statistics.median(s) * 1e3)
        print(f"\nshape {shape} float32 (ms)")
        for name, values in columns.items():
            print(f"  {name:36s}" + "".join(f"{v:10.3f}" for v in values))


if __name__ == "__main__":
    main()
