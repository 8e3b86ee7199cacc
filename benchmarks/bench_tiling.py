"""Peak memory and time of translating one large image whole and in tiles (condgan.tiling), on the CPU.

    PYTHONPATH=. python benchmarks/bench_tiling.py --height 3072 --width 4096 --threads 2

The generator is the default pix2pix U-Net (unet_256, 54M weights) with random weights: only time and
memory are measured, not quality. Each mode runs in its own process, so its peak RSS
(resource.getrusage ru_maxrss) is its own; a mode that runs out of memory is reported as such.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def run_mode(args) -> dict:
    import numpy as np
    import torch

    from condgan import models, tiling
    from condgan.data import DataInfo
    from condgan.models.pix2pix import Pix2PixConfig
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = models.build(Pix2PixConfig(generator=args.generator), DataInfo("paired", "x", 3, 256, 256, in_channels=3))
    model.eval()
    img = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.no_grad():
        if args.mode == "whole":
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div_(127.5).sub_(1)
            y = model.translate(x)[0]
        else:
            multiple = tiling.size_multiple(model.generator())
            y = tiling.translate_tiled(model.translate, img, torch.device("cpu"), args.tile, args.overlap, multiple,
                                       args.tile_batch)
    seconds = time.perf_counter() - t0
    assert tuple(y.shape) == (3, args.height, args.width)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mode": args.mode, "seconds": round(seconds, 1), "peak_rss_mib": round(peak / 1024),
            "rss_before_mib": round(before / 1024),
            "tiles": tiling.tile_count(args.height, args.width, args.tile, args.overlap, 256)
            if args.mode == "tiled" else 1}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--height", type=int, default=3072)
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--generator", default="unet_256")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--tile-batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=["tiled", "whole"])
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    for mode in args.modes:
        cmd = [sys.executable, __file__, "--mode", mode] + [a for a in sys.argv[1:] if a != "--modes"
                                                            and a not in args.modes]
        r = subprocess.run(cmd, capture_output=True, text=True)
        line = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else json.dumps(
            {"mode": mode, "failed": f"exit {r.returncode}", "stderr": r.stderr.strip().splitlines()[-1:]})
        print(line, flush=True)


if __name__ == "__main__":
    main()
