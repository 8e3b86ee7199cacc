"""Evaluate a trained run.

    python -m condgan.evaluate RUN_OR_CKPT [--data ...]

Class-conditional runs: conditional accuracy (share of generated images that a classifier,
trained by the package on real data, assigns to the requested label) and the
Fréchet distance between generated and real held-out images in that
classifier's feature space, next to the real-vs-real floor of the same
distance. This is "FID (classifier features)", not Inception FID.

Translation runs: L1, PSNR and SSIM of the translations against the targets
of the val (else test) split, next to the L1 of copying the input, and
Inception FID when its weights are available locally (never downloaded).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt_io
from . import data as data_lib
from . import models
from .checkpoint import atomic_write
from .cli import Parser, command, positive, writable_file
from .data.folder import LabelledFolder
from .device import pick_device
from .errors import CondganError
from .metrics.classifier import Features, accuracy, get_classifier

CLASSIFIER_VERSION = "v1"


def data_key(name: str, dataset) -> str:
    """Names the classifier's training data so the cache never mixes datasets."""
    if name == "digits":
        from .data.digits import DIGITS_SHA256
        return f"digits-{DIGITS_SHA256[:12]}-{CLASSIFIER_VERSION}"
    if name in ("mnist", "fashion-mnist"):
        return f"{name}-{CLASSIFIER_VERSION}"
    h = hashlib.sha256()
    for path, label in (dataset.samples if isinstance(dataset, LabelledFolder) else []):
        st = os.stat(path)
        h.update(f"{path}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"folder-{h.hexdigest()[:16]}-{CLASSIFIER_VERSION}"


def _stack(dataset, indices=None):
    indices = range(len(dataset)) if indices is None else indices
    items = [dataset[i] for i in indices]
    return torch.stack([it["image"] for it in items]), torch.stack([torch.as_tensor(it["label"]) for it in items])


@torch.no_grad()
def evaluate(model, cfg, info, device, seed: int = 0, log=print) -> dict:
    from torchmetrics.image.fid import FrechetInceptionDistance

    rest, _ = data_lib.build(cfg.data, "rest", cfg.data_root or None, cfg.image_size)
    heldout, _ = data_lib.build(cfg.data, "heldout", cfg.data_root or None, cfg.image_size)
    clf = get_classifier(data_key(cfg.data, rest), rest, info, device, log=log)
    real_acc = accuracy(clf, heldout, device)
    held_x, held_y = _stack(heldout)
    # real-vs-real floor: for each held-out image, a random training image of the same class
    g = torch.Generator().manual_seed(seed)
    rest_labels = torch.as_tensor(rest.labels)
    pick = []
    for y in held_y.tolist():
        pool = (rest_labels == y).nonzero().flatten()
        pick.append(pool[torch.randint(len(pool), (1,), generator=g)].item())
    floor_x, _ = _stack(rest, pick)
    # generated: the same label distribution as the held-out set
    torch.manual_seed(seed)
    gen_x = torch.cat([model.generate(yb.to(device)).float().cpu() for yb in held_y.split(500)])

    fid = FrechetInceptionDistance(feature=Features(clf.cpu()), reset_real_features=False)
    for xb in held_x.split(500):
        fid.update(xb, real=True)

    def distance(x):
        fid.reset()
        for xb in x.split(500):
            fid.update(xb, real=False)
        return fid.compute().item()

    clf_cpu = clf.cpu().eval()
    pred = torch.cat([clf_cpu(xb).argmax(1) for xb in gen_x.split(500)])
    per_class = [(pred[held_y == c] == c).float().mean().item() for c in range(info.num_classes)]
    return {
        "conditional_accuracy": (pred == held_y).float().mean().item(),
        "per_class_accuracy": per_class,
        "fid_classifier": distance(gen_x),
        "fid_classifier_real_floor": distance(floor_x),
        "classifier_real_accuracy": real_acc,
        "n": len(held_y),
    }


def report(res: dict, names) -> str:
    ratio = res["fid_classifier"] / max(res["fid_classifier_real_floor"], 1e-12)
    lines = [
        f"conditional accuracy      {res['conditional_accuracy'] * 100:6.2f} %  ({res['n']} generated images)",
        f"FID (classifier features) {res['fid_classifier']:8.3f}   "
        f"real-vs-real floor {res['fid_classifier_real_floor']:.3f}"
        f"  (ratio {ratio:.2f}x)",
        f"classifier accuracy on real held-out images {res['classifier_real_accuracy'] * 100:.2f} %",
        "per class: " + "  ".join(f"{n}:{a * 100:.0f}%" for n, a in zip(names, res["per_class_accuracy"])),
    ]
    return "\n".join(lines)


def evaluate_paired(model, cfg, args) -> dict:
    import dataclasses

    from .metrics.paired import evaluate_pairs, fid_unavailable_reason
    if args.data:
        cfg = dataclasses.replace(cfg, data=args.data)
    dataset, _ = models.data_for(cfg, args.split)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=0)
    res = evaluate_pairs(model, loader, model.device)
    res["data"], res["split"] = cfg.data, args.split
    base = res["l1_input_copy"]
    print(f"{cfg.data} ({args.split}, {res['n']} pairs, {cfg.direction})\n"
          f"L1    {res['l1']:.4f}" + (f"   (copying the input: {base:.4f})" if base is not None else "") +
          f"\nPSNR  {res['psnr']:.2f} dB" + (f"   (copying the input: {res['psnr_input_copy']:.2f} dB)"
                                             if base is not None else "") + f"\nSSIM  {res['ssim']:.4f}")
    why = fid_unavailable_reason()
    print(f"FID   {res['fid']:.2f}" if res["fid"] is not None else f"FID   not computed: {why}")
    return res


def evaluate_unpaired(model, cfg, args) -> dict:
    import dataclasses

    from .metrics.paired import fid_metric, fid_unavailable_reason
    if args.data:
        cfg = dataclasses.replace(cfg, data=args.data)
    dataset, _ = models.data_for(cfg, args.split)  # val falls back to the test folders
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=0)
    res = model.cycle_errors(loader)
    res["data"], res["split"] = cfg.data, args.split
    print(f"{cfg.data} ({args.split} split, {res['n']} image pairs (A, B))\n"
          f"cycle L1 A->B->A  {res['cycle_l1_a']:.4f}\ncycle L1 B->A->B  {res['cycle_l1_b']:.4f}")
    fids = {"AtoB": fid_metric(), "BtoA": fid_metric()}
    if fids["AtoB"] is None:
        print(f"FID   not computed: {fid_unavailable_reason()}")
        res["fid_a_to_b"] = res["fid_b_to_a"] = None
        return res
    with torch.no_grad():
        for b in loader:  # translated images against the real images of their target domain
            a, bb = b["A"].to(model.device), b["B"].to(model.device)
            for key, src, real in (("AtoB", a, bb), ("BtoA", bb, a)):
                fids[key].update(((real.float().cpu() + 1) / 2), real=True)
                fids[key].update(((model.translate(src, key).float().cpu() + 1) / 2), real=False)
    res["fid_a_to_b"], res["fid_b_to_a"] = (fids[k].compute().item() for k in ("AtoB", "BtoA"))
    print(f"FID   A->B {res['fid_a_to_b']:.2f}   B->A {res['fid_b_to_a']:.2f}")
    return res


def evaluate_labelled(model, cfg, args) -> dict:
    if args.data or args.split != "val":
        raise CondganError("--data and --split apply to translation runs; class-conditional runs are scored "
                           "on their own held-out images")
    res = evaluate(model, cfg, model.info, model.device, args.seed, log=lambda m: print(m, flush=True))
    print(report(res, model.info.class_names))
    return res


#: how each kind of training data is scored
EVALUATORS = {data_lib.LABELLED: evaluate_labelled, data_lib.PAIRED: evaluate_paired,
              data_lib.UNPAIRED: evaluate_unpaired}


@command
def main(argv=None):
    p = Parser(prog="condgan.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory or checkpoint file")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--data", help="translation runs: paired data to score on (default: the run's own)")
    p.add_argument("--split", default="val", choices=["val", "test", "train"],
                   help="translation runs: split to score (val falls back to test and vice versa)")
    p.add_argument("--best", action="store_true", help="use the run's best-validation checkpoint")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    positive("--batch-size", args.batch_size, 4096)
    json_out = writable_file(args.json, "--json") if args.json else None
    device = pick_device(args.device)
    run = ckpt_io.resolve_best(args.run) if args.best else Path(args.run)
    model, cfg, info = models.load(run, device)
    t0 = time.time()
    res = EVALUATORS[info.kind](model, cfg, args)
    print(f"({time.time() - t0:.0f} s)")
    if json_out:
        with atomic_write(json_out) as f:
            f.write((json.dumps(res, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    main()
