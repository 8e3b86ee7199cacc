"""Train pix2pix to turn aerial views into maps, then translate images with it.

    python examples/aerial_to_map.py                       # train 1500 steps (~12 min, 2 CPU cores), translate
    python examples/aerial_to_map.py --steps 4000          # longer training, cleaner maps
    python examples/aerial_to_map.py --images my_tiles/    # translate your own aerial images (any size)
    python examples/aerial_to_map.py --run runs/pix2pix-...   # reuse a trained run

Uses the package's procedural maps (no network): a random city rendered as a
textured aerial view (A) and as a flat-colour map (B). Trains at 128x128
(unet_128 + 70x70 PatchGAN, the reference losses and optimizer), then writes
the translations, a side-by-side index.html and strip.png (aerial | map made
by the model | true map) into --out. Calling it again continues the same run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from condgan import models
from condgan import train as condgan_train
from condgan.checkpoint import save_image_atomic
from condgan.data.procedural_maps import write_folder
from condgan.models.translation import as_rgb
from condgan.translate import list_inputs, translate_files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500, help="training steps (ignored with --run)")
    p.add_argument("--run", help="use this trained run directory instead of training")
    p.add_argument("--images", help="aerial images to translate (default: 8 generated validation tiles)")
    p.add_argument("--out", default="maps_out", help="folder for the run and the translations")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)

    run_dir = Path(args.run) if args.run else out / "run"
    if args.run is None:
        flags = ["--model", "pix2pix", "--crop-size", "128", "--load-size", "143", "--generator", "unet_128",
                 "--max-steps", str(args.steps), "--epochs", str(max(1, -(-args.steps // 400))),
                 "--seed", str(args.seed), "--out", str(run_dir)]
        if (run_dir / "checkpoints" / "last.pt").exists():
            flags = ["--resume", str(run_dir), "--max-steps", str(args.steps),
                     "--epochs", str(max(1, -(-args.steps // 400)))]
        condgan_train.main(flags)

    model, cfg, info = models.load(run_dir, "cpu")
    if args.images:
        files, aligned = list_inputs(Path(args.images)), False
    else:  # held-out tiles the model never saw, as A|B pairs so the page can show the true maps
        tiles = out / "val_tiles"
        if not tiles.exists():
            write_folder(tiles, 0, 8, size=128, seed=args.seed + 1000)
        files, aligned = list_inputs(tiles / "val"), True
    translated = out / "translated"
    translate_files(model, files, translated, aligned=aligned, title="aerial view -> map")
    print(f"wrote {len(files)} maps into {translated}; side by side: {translated / 'index.html'}")

    if aligned:  # one picture: a row per tile
        from condgan.data.paired import read, to_tensor
        rows = []
        for f in files[:4]:
            pair = to_tensor(read(f, "RGB"))
            src, tgt = pair[:, :, :pair.shape[2] // 2], pair[:, :, pair.shape[2] // 2:]
            rows += [src, model.translate(src[None])[0], tgt]
        strip = out / "strip.png"
        save_image_atomic(torch.stack([as_rgb(r[None])[0] for r in rows]), strip, nrow=3, normalize=True,
                          value_range=(-1, 1), pad_value=1)
        print(f"wrote {strip}: aerial | model's map | true map")


if __name__ == "__main__":
    main()
