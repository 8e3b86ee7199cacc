"""pix2pix on your own few hundred image pairs with `--preset small-data`, scored on pairs it never saw.

    # the shared facades (label map -> photo), 350 pairs to train, the last 50 held out
    python examples/few_photos.py --pairs ../shared/data/facades/train --direction BtoA --steps 3000
    # the same, and the reference settings trained for the same steps beside it
    python examples/few_photos.py --pairs ../shared/data/facades/train --direction BtoA --compare
    # your own folder of side-by-side A|B images (the pix2pix layout), 128x128 training
    python examples/few_photos.py --pairs my_pairs/ --size 128 --holdout 20

Takes a flat folder of side-by-side A|B images, holds out the last --holdout by name (numbers sort as
numbers) as the validation split, trains pix2pix with the small-data preset (DiffAugment on every image
the discriminator sees, resize-convolution upsampling) and scores the held-out pairs with
`condgan.evaluate` (L1, PSNR, SSIM, checkerboard ratio). With --compare it also trains the reference
settings for the same number of steps and prints both reports side by side. Writes OUT/strip.png: per
held-out pair, the input, each run's output and the truth. Calling it again continues the same runs.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import torch

from condgan import evaluate as condgan_evaluate
from condgan import models
from condgan import train as condgan_train
from condgan.checkpoint import save_image_atomic
from condgan.data.paired import read, to_tensor
from condgan.models.translation import as_rgb

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def natural(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]


def split_folder(pairs: Path, holdout: int, out: Path) -> Path:
    """OUT/data/train and OUT/data/val as links to the user's files (nothing is copied)."""
    files = sorted((f for f in pairs.iterdir() if f.suffix.lower() in SUFFIXES), key=natural)
    if len(files) <= holdout:
        sys.exit(f"few_photos: {pairs} has {len(files)} images; it needs more than --holdout {holdout}")
    data = out / "data"
    for name, part in (("train", files[:-holdout]), ("val", files[-holdout:])):
        (data / name).mkdir(parents=True, exist_ok=True)
        for f in part:
            link = data / name / f.name
            if not link.exists():
                os.symlink(f.resolve(), link)
    return data


def train(run: Path, data: Path, args, flags: list[str]) -> None:
    epochs = ["--max-steps", str(args.steps), "--epochs", "100000"]
    if (run / "checkpoints" / "last.pt").exists():
        condgan_train.main(["--resume", str(run), *epochs])
        return
    depth = "unet_256" if args.size >= 256 else "unet_128"
    condgan_train.main(["--model", "pix2pix", "--data", str(data), "--direction", args.direction,
                        "--crop-size", str(args.size), "--load-size", str(args.size + args.size // 8),
                        "--generator", depth, "--val-images", str(args.holdout), "--seed", str(args.seed),
                        *epochs, *flags, "--out", str(run)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", required=True, help="flat folder of side-by-side A|B images")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    p.add_argument("--holdout", type=int, default=50, help="last N images by name, never trained on")
    p.add_argument("--steps", type=int, default=2000, help="training steps per run")
    p.add_argument("--size", type=int, default=256, help="training size (128 or 256)")
    p.add_argument("--compare", action="store_true", help="also train the reference settings, same steps")
    p.add_argument("--out", default="few_photos_out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    pairs, out = Path(args.pairs), Path(args.out)
    if not pairs.is_dir():
        sys.exit(f"few_photos: --pairs {pairs} is not a folder")
    if args.holdout < 1 or args.steps < 1:
        sys.exit("few_photos: --holdout and --steps must be positive")
    data = split_folder(pairs, args.holdout, out)
    runs = {"small-data preset": out / "preset"}
    train(runs["small-data preset"], data, args, ["--preset", "small-data"])
    if args.compare:
        runs["reference settings"] = out / "reference"
        train(runs["reference settings"], data, args, [])

    # the held-out pairs, scored (several runs: one report side by side)
    condgan_evaluate.main([*map(str, runs.values()), "--no-progress"])

    val = sorted((data / "val").iterdir(), key=natural)[:4]
    loaded = [models.load(r, "cpu")[0] for r in runs.values()]
    rows = []
    for f in val:
        pair = to_tensor(read(f, "RGB"))
        a, b = pair[:, :, :pair.shape[2] // 2], pair[:, :, pair.shape[2] // 2:]
        src, tgt = (a, b) if args.direction == "AtoB" else (b, a)
        src = torch.nn.functional.interpolate(src[None], size=(args.size, args.size), mode="bilinear",
                                              antialias=True)[0]
        tgt = torch.nn.functional.interpolate(tgt[None], size=(args.size, args.size), mode="bilinear",
                                              antialias=True)[0]
        rows += [src] + [m.translate(src[None])[0] for m in loaded] + [tgt]
    strip = out / "strip.png"
    save_image_atomic(torch.stack([as_rgb(r[None].float())[0] for r in rows]).clamp(-1, 1), strip,
                      nrow=len(runs) + 2, normalize=True, value_range=(-1, 1), pad_value=1)
    print(f"wrote {strip}: per held-out pair, input | " + " | ".join(runs) + " | truth")


if __name__ == "__main__":
    main()
