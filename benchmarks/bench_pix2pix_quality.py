"""pix2pix learns the translation: procedural aerial views -> maps on a fixed CPU budget.

    PYTHONPATH=. python benchmarks/bench_pix2pix_quality.py [--steps 1500] [--out runs/bench-p2p-quality]

Trains `python -m condgan.train --model pix2pix` on the package's procedural
maps (no download) at 128x128 (unet_128, otherwise the reference settings),
then scores the 100 held-out validation pairs: L1, PSNR and SSIM of the
translations against the true maps, next to copying the input (the aerial
view) as the baseline. Also writes docs/pix2pix_maps_samples.png
(rows: aerial | translation | true map).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from condgan import models
from condgan import train as condgan_train
from condgan.checkpoint import save_image_atomic
from condgan.models import data_for
from condgan.quality import report_paired
from condgan.models.translation import as_rgb


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--out", default="runs/bench-p2p-quality")
    p.add_argument("--picture", default="docs/pix2pix_maps_samples.png")
    p.add_argument("--extra", nargs="*", default=[], help="more train flags")
    args = p.parse_args()
    out = Path(args.out)
    flags = ["--model", "pix2pix", "--crop-size", "128", "--load-size", "143", "--generator", "unet_128",
             "--max-steps", str(args.steps), "--epochs", str(max(1, -(-args.steps // 400))), "--no-progress",
             "--log-every", "100", *args.extra]
    t0 = time.time()
    if (out / "checkpoints" / "last.pt").exists():
        condgan_train.main(["--resume", str(out), "--max-steps", str(args.steps)])
    else:
        condgan_train.main(flags + ["--out", str(out)])
    train_s = time.time() - t0
    results = {"train_seconds": train_s, "steps": args.steps}
    for which in ("last.pt", "best.pt"):
        model, cfg, _ = models.load(out / "checkpoints" / which)
        val, _ = data_for(cfg, "val")
        loader = torch.utils.data.DataLoader(val, batch_size=10)
        results[which] = report_paired(model, loader, progress=False)
    r, base = results["last.pt"], results["last.pt"]
    print(f"\ntrained {args.steps} steps in {train_s / 60:.1f} min; 100 validation pairs at 128x128:")
    print("| checkpoint | L1 | PSNR (dB) | SSIM |\n|---|---|---|---|")
    print(f"| copying the input (baseline) | {base['l1_input_copy']:.4f} | {base['psnr_input_copy']:.2f} | - |")
    for which in ("last.pt", "best.pt"):
        r = results[which]
        print(f"| {which} | {r['l1']:.4f} | {r['psnr']:.2f} | {r['ssim']:.4f} |")
    (out / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    model, cfg, _ = models.load(out / "checkpoints" / "last.pt")
    val, _ = data_for(cfg, "val")
    items = [val[i] for i in range(4)]
    src = torch.stack([it["input"] for it in items])
    tgt = torch.stack([it["target"] for it in items])
    rows = torch.stack([as_rgb(src), as_rgb(model.translate(src)), as_rgb(tgt)], 1).flatten(0, 1)
    save_image_atomic(rows, args.picture, nrow=3, normalize=True, value_range=(-1, 1), pad_value=1)
    print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
