"""Train a class-conditional digit GAN briefly, then write one image per requested digit.

    python examples/digits_on_request.py 2 0 2 6          # -> digits_out/digit_0_2.png ... and a strip
    python examples/digits_on_request.py 7 --steps 1500   # longer training, better digits
    python examples/digits_on_request.py 3 1 4 --run runs/cgan-digits-...   # reuse a trained run

Uses the embedded digits (no network). The default 800 steps give the right,
if rough, digits in about five minutes on 2 CPU cores (at 400 steps a
requested 2 can still look like a 3); the default job (`python -m
condgan.train`, 2120 steps) trains to full quality.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from condgan import models
from condgan import train as condgan_train
from condgan.checkpoint import save_image_atomic


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("digits", nargs="+", type=int, help="digits to draw, e.g. 2 0 2 6")
    p.add_argument("--steps", type=int, default=800, help="generator steps to train (ignored with --run)")
    p.add_argument("--run", help="use this trained run directory instead of training")
    p.add_argument("--out", default="digits_out", help="folder for the images")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if any(not 0 <= d <= 9 for d in args.digits):
        p.error("digits must be between 0 and 9")

    out = Path(args.out)
    run_dir = args.run
    if run_dir is None:
        run_dir = out / "run"
        # the same entry point as `python -m condgan.train`; --resume continues an earlier call
        flags = ["--out", str(run_dir), "--max-steps", str(args.steps), "--seed", str(args.seed)]
        if (run_dir / "checkpoints" / "last.pt").exists():
            flags = ["--resume", str(run_dir), "--max-steps", str(args.steps)]
        condgan_train.main(flags)

    model, cfg, info = models.load(run_dir, "cpu")  # the EMA generator, ready to sample
    torch.manual_seed(args.seed)
    labels = torch.tensor(args.digits)
    images = model.generate(labels)  # (n, 1, 28, 28) in [-1, 1]
    for i, (digit, image) in enumerate(zip(args.digits, images)):
        path = out / f"digit_{i}_{digit}.png"
        save_image_atomic(image, path, normalize=True, value_range=(-1, 1))
        print(f"wrote {path}")
    strip = out / "strip.png"
    save_image_atomic(images, strip, nrow=len(images), normalize=True, value_range=(-1, 1), padding=0)
    print(f"wrote {strip}: {' '.join(map(str, args.digits))}")


if __name__ == "__main__":
    main()
