"""Generate images from a trained class-conditional run.

    python -m condgan.sample RUN_OR_CKPT --label 7 --n 64 --out sevens.png
    python -m condgan.sample RUN_OR_CKPT --grid --out grid.png   # one row per class
"""
from __future__ import annotations

import sys

import torch

from . import models
from .checkpoint import save_image_atomic
from .cli import Parser, command, positive, writable_file
from .device import pick_device
from .errors import CondganError

MAX_IMAGES = 100_000  # one grid; more than this is a memory error waiting to happen


def parse_label(text: str, class_names: list[str], num_classes: int) -> int:
    """A class index or a class name -> index, with a clear error when out of range."""
    if text in class_names and not text.isdigit():
        return class_names.index(text)
    try:
        label = int(text)
    except ValueError:
        raise CondganError(f"--label {text!r} is neither a class index nor one of the class names "
                           f"({', '.join(class_names)})") from None
    if not 0 <= label < num_classes:
        raise CondganError(f"--label {label} is out of range: this model knows classes 0..{num_classes - 1}")
    return label


@command
def main(argv=None):
    p = Parser(prog="condgan.sample", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory or checkpoint file")
    p.add_argument("--label", help="class index or class name to generate")
    p.add_argument("--grid", action="store_true", help="one row per class instead of one label")
    p.add_argument("--n", type=int, help="images (default 64); with --grid, columns per class (default 10)")
    p.add_argument("--nrow", type=int, default=0, help="images per row (default: about square)")
    p.add_argument("--out", default="samples.png", help="output PNG")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    if args.grid == (args.label is not None):
        raise CondganError("give exactly one of --label L or --grid")
    if args.n is None:
        args.n = 10 if args.grid else 64
    positive("--n", args.n, MAX_IMAGES)
    if args.nrow < 0:
        raise CondganError(f"--nrow must be zero (about square) or positive, got {args.nrow}")
    out = writable_file(args.out, "--out")
    device = pick_device(args.device)
    model, cfg, info = models.load(args.run, device, task=models.SAMPLE)
    if args.grid and info.num_classes * args.n > MAX_IMAGES:
        raise CondganError(f"--grid with --n {args.n} asks for {info.num_classes * args.n} images; the most is "
                           f"{MAX_IMAGES}")
    if args.grid:
        labels = torch.arange(info.num_classes).repeat_interleave(args.n)
        nrow = args.n
    else:
        labels = torch.full((args.n,), parse_label(args.label, info.class_names, info.num_classes))
        nrow = args.nrow or max(1, round(args.n ** 0.5))
    torch.manual_seed(args.seed)
    images = torch.cat([model.generate(chunk.to(device)).cpu() for chunk in labels.split(1024)])
    save_image_atomic(images, out, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1)
    print(f"wrote {out} ({len(images)} images {info.channels}x{info.height}x{info.width})")
    return 0


if __name__ == "__main__":
    main()
