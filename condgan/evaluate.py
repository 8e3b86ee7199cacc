"""Evaluate trained runs, one or several side by side.

    python -m condgan.evaluate RUN [RUN2 ...] [--data ...] [--json FILE] [--download-weights]

Class-conditional runs: conditional accuracy (share of generated images that a classifier, trained by the
package on real data, assigns to the requested label), and the Fréchet distance and KID between generated
and real held-out images in that classifier's feature space, overall and per class, next to their
real-vs-real floors. These are "FID (classifier features)", not Inception FID.

Translation runs: L1, PSNR and SSIM against the targets of the val (else test) split (paired), Inception
FID and KID (outputs against real images of the target domain, per direction for unpaired models) when the
standard weights file is on disk (`--download-weights` fetches it), per-pixel label accuracy when the
targets are label maps, and the checkerboard ratio of every image model.
"""
from __future__ import annotations

import dataclasses
import html
import json
import sys
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt_io
from . import data as data_lib
from . import models, quality
from .checkpoint import atomic_write
from .cli import Parser, command, positive, writable_file
from .device import pick_device
from .errors import CondganError
from .metrics import inception


def _report_labelled(res: dict, names) -> list[str]:
    ratio = res["fid_classifier"] / max(res["fid_classifier_real_floor"], 1e-12)
    lines = [
        f"conditional accuracy      {res['conditional_accuracy'] * 100:6.2f} %  ({res['n']} generated images)",
        f"FID (classifier features) {res['fid_classifier']:8.3f}   real-vs-real floor "
        f"{res['fid_classifier_real_floor']:.3f}  (ratio {ratio:.2f}x)",
        f"KID (classifier features) {res['kid_classifier']:8.5f}   real-vs-real floor "
        f"{res['kid_classifier_real_floor']:.5f}  (std over subsets {res['kid_classifier_std']:.5f})",
        f"classifier accuracy on real held-out images {res['classifier_real_accuracy'] * 100:.2f} %",
        "per class: " + "  ".join(f"{n}:{a * 100:.0f}%" for n, a in zip(names, res["per_class_accuracy"])),
        "per class FID (floor): " + "  ".join(f"{n}:{v['fid']:.2f} ({v['fid_floor']:.2f})"
                                              for n, v in res["per_class"].items()),
        f"checkerboard ratio {res['checkerboard_ratio']:.2f} (1 = as real images)",
    ]
    if res.get("fid") is not None:
        lines.append(f"Inception FID {res['fid']:.2f}   KID {res['kid']:.5f} ± {res['kid_std']:.5f}")
    return lines


def _report_paired(res: dict, cfg) -> list[str]:
    base = res["l1_input_copy"]
    lines = [f"{res['data']} ({res['split']}, {res['n']} pairs, {cfg.direction})",
             f"L1    {res['l1']:.4f}" + (f"   (copying the input: {base:.4f})" if base is not None else ""),
             f"PSNR  {res['psnr']:.2f} dB" + (f"   (copying the input: {res['psnr_input_copy']:.2f} dB)"
                                              if base is not None else ""),
             f"SSIM  {res['ssim']:.4f}",
             f"checkerboard ratio {res['checkerboard_ratio']:.2f} (1 = as the real targets)"]
    if res["label_accuracy"] is not None:
        lines.append(f"label accuracy {res['label_accuracy'] * 100:.2f} % of pixels (nearest label colour)")
    lines.append(f"FID   {res['fid']:.2f}   KID {res['kid']:.5f} ± {res['kid_std']:.5f}" if res["fid"] is not None
                 else f"FID   not computed: {res['inception_note']}")
    return lines


def _report_unpaired(res: dict, cfg) -> list[str]:
    lines = [f"{res['data']} ({res['split']} split, {res['n']} image pairs (A, B))"]
    if "cycle_l1_a" in res:
        lines += [f"cycle L1 A->B->A  {res['cycle_l1_a']:.4f}", f"cycle L1 B->A->B  {res['cycle_l1_b']:.4f}"]
    for key, name in (("_a_to_b", "A->B"), ("_b_to_a", "B->A")):
        if f"checkerboard_ratio{key}" in res:
            lines.append(f"checkerboard ratio {name} {res[f'checkerboard_ratio{key}']:.2f}")
        if res.get(f"l1{key}") is not None:
            lines.append(f"against the true pairs {name} ({res[f'paired_n{key}']} with matching names): "
                         f"L1 {res[f'l1{key}']:.4f}, PSNR {res[f'psnr{key}']:.2f} dB"
                         + (f", per-pixel label accuracy {res[f'label_accuracy{key}'] * 100:.2f} %"
                            if res.get(f"label_accuracy{key}") is not None else ""))
    ways = [(key, name) for key, name in (("_a_to_b", "A->B"), ("_b_to_a", "B->A"))
            if res.get(f"fid{key}") is not None]  # CUT translates one way only
    if not ways:
        lines.append(f"FID   not computed: {res['inception_note']}")
    else:
        lines.append("FID   " + "   ".join(f"{name} {res[f'fid{key}']:.2f}" for key, name in ways) + "   KID   "
                     + "   ".join(f"{name} {res[f'kid{key}']:.5f}" for key, name in ways))
    return lines


def evaluate_run(run, args, device) -> tuple[dict, list[str]]:
    """The report of one run: (results, lines to print)."""
    path = ckpt_io.resolve_best(run) if args.best else Path(run)
    model, cfg, info = models.load(path, device)
    t0 = time.time()
    if info.kind == data_lib.LABELLED:
        if args.data or args.split != "val":
            raise CondganError("--data and --split apply to translation runs; class-conditional runs are scored "
                               "on their own held-out images")
        res = quality.report_labelled(model, cfg, device, args.seed, log=lambda m: print(m, flush=True))
        lines = _report_labelled(res, info.class_names)
    else:
        data_cfg = dataclasses.replace(cfg, data=args.data) if args.data else cfg
        dataset, _ = models.data_for(data_cfg, args.split)  # val falls back to test and vice versa
        loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=0)
        report = quality.report_paired if info.kind == data_lib.PAIRED else quality.report_unpaired
        res = report(model, loader, progress=not args.no_progress)
        res["data"], res["split"] = data_cfg.data, args.split
        lines = (_report_paired if info.kind == data_lib.PAIRED else _report_unpaired)(res, cfg)
    res["seconds"] = time.time() - t0
    return res, lines + [f"({res['seconds']:.0f} s)"]


def write_page(run_dir: Path, names: list[str], results: list[dict]) -> Path:
    """RUN/evaluation.html: the metrics table beside the run's latest sample grid."""
    samples = sorted((run_dir / "samples").glob("*.png"))
    img = f'<p><img src="samples/{html.escape(samples[-1].name)}"></p>' if samples else ""
    rows = "".join("<tr><td>" + html.escape(k) + "</td>" + "".join(f"<td>{html.escape(quality._cell(r.get(k)))}</td>"
                                                                   for r in results) + "</tr>"
                   for k in quality.scalar_keys(results))
    page = ("<!doctype html><meta charset='utf-8'><title>condgan evaluation</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style>"
            f"<h1>Evaluation: {html.escape(', '.join(names))}</h1>{img}<table><tr><th>metric</th>"
            + "".join(f"<th>{html.escape(n)}</th>" for n in names) + f"</tr>{rows}</table>\n")
    path = run_dir / "evaluation.html"
    with atomic_write(path) as f:
        f.write(page.encode())
    return path


@command
def main(argv=None):
    p = Parser(prog="condgan.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or checkpoint files (several: side by side)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--data", help="translation runs: data to score on (default: each run's own)")
    p.add_argument("--split", default="val", choices=["val", "test", "train"],
                   help="translation runs: split to score (val falls back to test and vice versa)")
    p.add_argument("--best", action="store_true", help="use each run's best-validation checkpoint")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--download-weights", action="store_true",
                   help=f"first fetch the standard Inception weights for FID/KID ({inception.INCEPTION_FILE}) "
                        "into the cache (never done otherwise)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    positive("--batch-size", args.batch_size, 4096)
    json_out = writable_file(args.json, "--json") if args.json else None
    device = pick_device(args.device)
    if args.download_weights and inception.weights_path() is None:
        print(f"downloaded {inception.download_weights(progress=not args.no_progress)}")
    results, names = [], []
    for run in args.runs:
        res, lines = evaluate_run(run, args, device)
        results.append(res)
        name = Path(run).name or str(run)
        names.append(name if name not in names else str(run))  # two runs of one name: their paths
        if len(args.runs) == 1:
            print("\n".join(lines))
    if len(args.runs) > 1:
        print(quality.table(names, results))
    for run in args.runs:
        if Path(run).is_dir():
            write_page(Path(run), names, results)
    if json_out:
        payload = results[0] if len(results) == 1 else {"runs": dict(zip(names, results))}
        with atomic_write(json_out) as f:
            f.write((json.dumps(payload, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    main()
