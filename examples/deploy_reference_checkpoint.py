"""Deploy a generator trained with junyanz/pytorch-CycleGAN-and-pix2pix: convert, translate, export to ONNX.

    python examples/deploy_reference_checkpoint.py checkpoints/facades_pix2pix/latest_net_G.pth \\
        --opt checkpoints/facades_pix2pix/train_opt.txt --images my_label_maps/ --out deployed
    python examples/deploy_reference_checkpoint.py latest_net_G.pth --netG unet_256 --norm batch \\
        --images my_label_maps/ --reference-test-mode          # the reference's own test.py outputs

Writes into --out: run/ (a condgan run directory holding the converted generator), translated/ (the
translations of --images, any size) and generator.onnx (fp32; the report compares it with PyTorch; for
fp16 or int8 run `python -m condgan.export OUT/run --precision int8`). Settings the file cannot tell
(dropout for a U-Net, the direction) come from --opt or the flags; everything else is read off the
weights and checked.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from condgan import convert, export, translate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="the reference's latest_net_G.pth (CycleGAN: latest_net_G_A.pth)")
    p.add_argument("--opt", help="the reference's opt.txt / train_opt.txt")
    p.add_argument("--netG", help="generator, when there is no --opt (read off the weights otherwise)")
    p.add_argument("--norm", help="normalisation, when there is no --opt")
    p.add_argument("--no-dropout", action="store_true", help="the generator was trained without dropout")
    p.add_argument("--images", help="a folder (or one image) to translate")
    p.add_argument("--reference-test-mode", action="store_true",
                   help="translate as the reference's test.py does without --eval (dropout on, batch statistics)")
    p.add_argument("--out", default="deployed")
    args = p.parse_args(argv)
    out = Path(args.out)
    run = out / "run"
    flags = [args.checkpoint, "--from", "junyanz", "--out", str(run)]
    for flag, value in (("--opt", args.opt), ("--netG", args.netG), ("--norm", args.norm)):
        if value:
            flags += [flag, value]
    if args.no_dropout:
        flags.append("--no-dropout")
    if convert.main(flags) != 0:
        return 1
    if args.images:
        mode = ["--reference-test-mode"] if args.reference_test_mode else []
        if translate.main([str(run), args.images, "--out", str(out / "translated"), "--no-progress", *mode]) != 0:
            return 1
    report = export.export_run(run, out / "generator.onnx")
    print(export.format_report(report))
    print(f"deployed: {run} (condgan run), {out / 'generator.onnx'}"
          + (f", translations in {out / 'translated'}" if args.images else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
