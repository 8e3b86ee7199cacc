"""Train CycleGAN between aerial views and maps that never come in pairs, then translate both ways.

    python examples/unpaired_maps.py                       # 1200 steps at 64x64, about 12 min on 2 CPU cores
    python examples/unpaired_maps.py --steps 3000          # train longer (continues an earlier run)
    python examples/unpaired_maps.py --images my_maps/ --direction BtoA   # your own maps -> aerial views
    python examples/unpaired_maps.py --run runs/cyclegan-...               # reuse a trained run

Uses the package's procedural maps with aerial views and maps of *different*
cities (no pairs; no network). Trains a small CycleGAN (6 residual blocks,
width 32, 64x64 crops; otherwise the reference losses: LSGAN, cycle 10,
identity 5, pools of 50), then writes translations of held-out images both
ways into --out, with index.html pages and strip.png (rows: aerial | its map
| back to aerial, then map | its aerial view | back to map). Calling it again
continues the same run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from condgan import models
from condgan import train as condgan_train
from condgan.checkpoint import save_image_atomic
from condgan.models import data_for
from condgan.translate import list_inputs, translate_files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1200, help="training steps (ignored with --run)")
    p.add_argument("--run", help="use this trained run directory instead of training")
    p.add_argument("--images", help="images to translate (default: held-out procedural images, both ways)")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                   help="with --images: AtoB = aerial view -> map, BtoA = map -> aerial view")
    p.add_argument("--out", default="unpaired_out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)

    run_dir = Path(args.run) if args.run else out / "run"
    if args.run is None:
        flags = ["--model", "cyclegan", "--crop-size", "64", "--load-size", "72", "--resnet-blocks", "6",
                 "--g-width", "32", "--d-width", "32", "--max-steps", str(args.steps),
                 "--epochs", str(max(1, -(-args.steps // 400))), "--seed", str(args.seed), "--out", str(run_dir)]
        if (run_dir / "checkpoints" / "last.pt").exists():
            flags = ["--resume", str(run_dir), "--max-steps", str(args.steps),
                     "--epochs", str(max(1, -(-args.steps // 400)))]
        condgan_train.main(flags)

    model, cfg, _ = models.load(run_dir, "cpu")
    if args.images:
        files = list_inputs(Path(args.images))
        translate_files(model, files, out / "translated", direction=args.direction,
                        title=f"cyclegan {args.direction}")
        print(f"wrote {len(files)} translations ({args.direction}) into {out / 'translated'}")
        return

    test, _ = data_for(cfg, "test")  # held-out cities, resized to the training size
    items = [test[i] for i in range(4)]
    a, b = torch.stack([it["A"] for it in items]), torch.stack([it["B"] for it in items])
    fake_b, fake_a = model.translate(a, "AtoB"), model.translate(b, "BtoA")
    rows = [a, fake_b, model.translate(fake_b, "BtoA"), b, fake_a, model.translate(fake_a, "AtoB")]
    strip = out / "strip.png"
    grid = torch.stack(rows[:3], 1).flatten(0, 1), torch.stack(rows[3:], 1).flatten(0, 1)
    save_image_atomic(torch.cat(grid), strip, nrow=3, normalize=True, value_range=(-1, 1), pad_value=1)
    print(f"wrote {strip}: aerial | map | back to aerial (4 rows), then map | aerial | back to map (4 rows)")


if __name__ == "__main__":
    main()
