"""Quality reports per kind of model: the numbers `condgan.evaluate` prints and training can select by.

- class-conditional (labelled data): the project's digit classifier (conditional accuracy per class; Fréchet
  distance and KID in its feature space, overall and per class, each beside its real-vs-real floor) and, for
  folders of natural RGB images, Inception FID/KID too;
- paired translation: L1, PSNR, SSIM against the targets, Inception FID/KID of outputs vs targets, per-pixel
  label accuracy when the targets are label maps;
- unpaired translation: Inception FID/KID per direction against the target domain, plus what the model
  reports itself (CycleGAN: cycle errors);
- every image model: the checkerboard ratio (period-2 power of the outputs over that of real images).

Inception FID/KID need the standard weights file on disk (see condgan.metrics.inception); without it they
are skipped with one sentence and everything else runs.
"""
from __future__ import annotations

import hashlib
import math
import os

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from tqdm.auto import tqdm

from .data import LABELLED, PAIRED, UNPAIRED
from .data.folder import LabelledFolder
from .metrics import images as image_metrics
from .metrics import inception
from .metrics.classifier import Features, get_classifier

CLASSIFIER_VERSION = "v1"
#: metrics where higher is better (all others: lower is better), for --select-by and the tables
HIGHER_IS_BETTER = {"psnr", "ssim", "conditional_accuracy", "label_accuracy", "label_accuracy_a_to_b",
                    "label_accuracy_b_to_a"}


def better(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if metric in HIGHER_IS_BETTER else value < best


class _Inception:
    """Inception features of real and generated images, collected batch by batch (or nothing, with a reason)."""

    def __init__(self, device, enabled: bool = True):
        self.reason = inception.unavailable_reason() if enabled else "not used for this data"
        self.net = inception.InceptionFeatures(device) if self.reason is None else None
        self.real, self.fake = [], []

    def add(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        if self.net is not None:
            self.real.append(self.net.extract(real.float().cpu()))
            self.fake.append(self.net.extract(fake.float().cpu()))

    def result(self, prefix: str = "") -> dict:
        keys = [f"fid{prefix}", f"kid{prefix}", f"kid{prefix}_std"]
        if self.net is None or sum(len(r) for r in self.real) < 2:
            return dict.fromkeys(keys)
        r = inception.fid_kid(torch.cat(self.real), torch.cat(self.fake))
        return dict(zip(keys, (r["fid"], r["kid_mean"], r["kid_std"])))


# ---- class-conditional ------------------------------------------------------------------------------------
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


def _features(net, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(xb).double() for xb in x.split(500)])


@torch.no_grad()
def report_labelled(model, cfg, device, seed: int = 0, log=print, limit: int = 0) -> dict:
    """Digit-classifier metrics (and Inception ones for natural RGB folders) of a class-conditional model."""
    from .data import build
    info = model.info
    rest, _ = build(cfg.data, "rest", cfg.data_root or None, cfg.image_size)
    heldout, _ = build(cfg.data, "heldout", cfg.data_root or None, cfg.image_size)
    clf = get_classifier(data_key(cfg.data, rest), rest, info, device, log=log).cpu().eval()
    g = torch.Generator().manual_seed(seed)
    held_idx = torch.randperm(len(heldout), generator=g)[:limit].sort().values if limit else None
    held_x, held_y = _stack(heldout, None if held_idx is None else held_idx.tolist())
    # real-vs-real floor: for each held-out image, a random training image of the same class
    rest_labels = torch.as_tensor(rest.labels)
    pick = []
    for y in held_y.tolist():
        pool = (rest_labels == y).nonzero().flatten()
        pick.append(pool[torch.randint(len(pool), (1,), generator=g)].item())
    floor_x, _ = _stack(rest, pick)
    torch.manual_seed(seed)  # generated: the held-out set's label distribution
    gen_x = torch.cat([model.generate(yb.to(device)).float().cpu() for yb in held_y.split(500)])
    feats = Features(clf)
    real_f, gen_f, floor_f = _features(feats, held_x), _features(feats, gen_x), _features(feats, floor_x)
    pred = torch.cat([clf(xb).argmax(1) for xb in gen_x.split(500)])
    real_acc = (torch.cat([clf(xb).argmax(1) for xb in held_x.split(500)]) == held_y).float().mean().item()
    res = {"conditional_accuracy": (pred == held_y).float().mean().item(),
           "per_class_accuracy": [(pred[held_y == c] == c).float().mean().item() for c in range(info.num_classes)],
           "classifier_real_accuracy": real_acc, "n": len(held_y)}
    for name, other in (("", gen_f), ("_real_floor", floor_f)):
        r = inception.fid_kid(real_f, other, seed=seed)
        res[f"fid_classifier{name}"], res[f"kid_classifier{name}"] = r["fid"], r["kid_mean"]
        res[f"kid_classifier{name}_std"] = r["kid_std"]
    per_class = {}
    for c in range(info.num_classes):
        m = held_y == c
        if m.sum() >= 4:
            gen_c, floor_c = inception.fid_kid(real_f[m], gen_f[m], seed=seed), inception.fid_kid(real_f[m],
                                                                                            floor_f[m], seed=seed)
            per_class[info.class_names[c] if c < len(info.class_names) else str(c)] = {
                "fid": gen_c["fid"], "fid_floor": floor_c["fid"], "kid": gen_c["kid_mean"],
                "kid_floor": floor_c["kid_mean"]}
    res["per_class"] = per_class
    res["checkerboard_ratio"] = image_metrics.checkerboard_ratio(gen_x, held_x)
    natural = isinstance(rest, LabelledFolder) and info.channels == 3
    inc = _Inception(device, enabled=natural)
    for a, b in zip(held_x.split(100), gen_x.split(100)):
        inc.add(a, b)
    res.update(inc.result())
    res["inception_note"] = inc.reason
    return res


# ---- translation ---------------------------------------------------------------------------------------
@torch.no_grad()
def report_paired(model, loader, progress: bool = True) -> dict:
    """L1, PSNR, SSIM, FID/KID, checkerboard ratio and (for label-map targets) label accuracy."""
    device = model.device
    inc = _Inception(device)
    sums, base, n = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0}, {"l1": 0.0, "psnr": 0.0}, 0
    outs, tgts = [], []
    for b in tqdm(loader, unit="batch", disable=not progress, desc="evaluate"):
        src, tgt = b["input"].to(device), b["target"].to(device).float()
        out = model.translate(src).float()
        o01, t01 = (out + 1) / 2, (tgt + 1) / 2
        sums["l1"] += (out - tgt).abs().flatten(1).mean(1).sum().item()
        sums["psnr"] += peak_signal_noise_ratio(o01, t01, data_range=1.0, reduction="none", dim=(1, 2, 3)).sum().item()
        sums["ssim"] += structural_similarity_index_measure(o01, t01, data_range=1.0, reduction="none").sum().item()
        if src.shape[1] == tgt.shape[1]:  # how far the untranslated input already is from the target
            base["l1"] += (src.float() - tgt).abs().flatten(1).mean(1).sum().item()
            base["psnr"] += peak_signal_noise_ratio((src.float() + 1) / 2, t01, data_range=1.0, reduction="none",
                                                    dim=(1, 2, 3)).sum().item()
        inc.add(tgt, out)
        outs.append(out.cpu())
        tgts.append(tgt.cpu())
        n += out.shape[0]
    res = {k: v / max(n, 1) for k, v in sums.items()}
    same = base["l1"] > 0
    res.update(n=n, l1_input_copy=base["l1"] / max(n, 1) if same else None,
               psnr_input_copy=base["psnr"] / max(n, 1) if same else None)
    out_all, tgt_all = torch.cat(outs), torch.cat(tgts)
    res["checkerboard_ratio"] = image_metrics.checkerboard_ratio(out_all, tgt_all)
    res["label_accuracy"] = None
    if tgt_all.shape[1] == 3 and image_metrics.looks_like_label_maps(tgt_all):
        palette = image_metrics.palette_from(tgt_all)
        res["label_accuracy"] = image_metrics.label_accuracy(out_all, tgt_all, palette)
    fk = inc.result()
    res.update(fid=fk["fid"], kid=fk["kid"], kid_std=fk["kid_std"], inception_note=inc.reason)
    return res


@torch.no_grad()
def report_unpaired(model, loader, progress: bool = True) -> dict:
    """FID/KID and checkerboard ratio per direction against the target domain, plus the model's own extras."""
    device = model.device
    res = {"n": 0}
    per = {d: (_Inception(device), [], []) for d in model.directions()}
    truth = {d: {"l1": 0.0, "psnr": 0.0, "n": 0, "outs": [], "targets": []} for d in per}  # names pair A with B
    for b in tqdm(loader, unit="batch", disable=not progress, desc="evaluate"):
        a, bb = b["A"].to(device), b["B"].to(device)
        paired = torch.as_tensor(b.get("paired", torch.zeros(a.shape[0], dtype=torch.bool))).to(device)
        for d, (inc, outs, reals) in per.items():
            src, real = (a, bb) if d == "AtoB" else (bb, a)
            out = model.translate(src, d).float()
            inc.add(real, out)
            outs.append(out.cpu())
            reals.append(real.float().cpu())
            if paired.any() and out.shape[1] == real.shape[1]:
                o, t = out[paired], real[paired].float()
                truth[d]["l1"] += (o - t).abs().flatten(1).mean(1).sum().item()
                truth[d]["psnr"] += peak_signal_noise_ratio((o + 1) / 2, (t + 1) / 2, data_range=1.0,
                                                            reduction="none", dim=(1, 2, 3)).sum().item()
                truth[d]["n"] += int(paired.sum())
                truth[d]["outs"].append(o.cpu())
                truth[d]["targets"].append(t.cpu())
        res["n"] += a.shape[0]
    for d, t in truth.items():
        key = "_a_to_b" if d == "AtoB" else "_b_to_a"
        res[f"l1{key}"] = t["l1"] / t["n"] if t["n"] else None  # against the true pairs, where names match
        res[f"psnr{key}"] = t["psnr"] / t["n"] if t["n"] else None
        res[f"paired_n{key}"] = t["n"]
        res[f"label_accuracy{key}"] = None  # per-pixel, where the true targets are label maps (photo -> labels)
        if t["n"]:
            outs, targets = torch.cat(t["outs"]), torch.cat(t["targets"])
            if targets.shape[1] == 3 and image_metrics.looks_like_label_maps(targets):
                res[f"label_accuracy{key}"] = image_metrics.label_accuracy(outs, targets,
                                                                           image_metrics.palette_from(targets))
    for d, (inc, outs, reals) in per.items():
        key = "_a_to_b" if d == "AtoB" else "_b_to_a"
        fk = inc.result(key)
        res.update(fk)
        res[f"checkerboard_ratio{key}"] = image_metrics.checkerboard_ratio(torch.cat(outs), torch.cat(reals))
        res["inception_note"] = inc.reason
    for m in ("fid", "kid"):  # both directions in one number, for --select-by
        values = [res.get(f"{m}{k}") for k in ("_a_to_b", "_b_to_a")]
        values = [v for v in values if v is not None]
        res[m] = sum(values) / len(values) if values else None
    res.update(model.evaluation_extras(loader))
    return res


# ---- during training ------------------------------------------------------------------------------------
#: what --select-by may name, per kind of data (val_l1 is pix2pix's per-epoch validation metric)
SELECTABLE = {
    LABELLED: ("conditional_accuracy", "fid_classifier", "kid_classifier", "fid", "kid", "checkerboard_ratio"),
    PAIRED: ("val_l1", "l1", "psnr", "ssim", "fid", "kid", "label_accuracy", "checkerboard_ratio"),
    UNPAIRED: ("fid", "kid", "fid_a_to_b", "fid_b_to_a", "kid_a_to_b", "kid_b_to_a", "cycle_l1_a", "cycle_l1_b"),
}
NEEDS_INCEPTION = {"fid", "kid", "fid_a_to_b", "fid_b_to_a", "kid_a_to_b", "kid_b_to_a"}


def check_selection(model, cfg) -> None:
    """Refuse, before training, a --select-by that cannot be computed for this model and machine."""
    from .errors import CondganError
    metric = cfg.select_by
    if not metric or metric == model.validation_metric:
        return
    allowed = SELECTABLE[model.data_kind]
    if metric not in allowed:
        raise CondganError(f"--select-by {metric} is not a metric of {cfg.model} runs; use one of "
                           f"{', '.join(allowed)}")
    if not cfg.eval_every:
        raise CondganError(f"--select-by {metric} needs --eval-every N (epochs between evaluations)")
    if metric in NEEDS_INCEPTION and inception.unavailable_reason():
        raise CondganError(f"--select-by {metric} needs Inception features, but {inception.unavailable_reason()}")


def report_for_training(model, cfg, val_dataset) -> dict:
    """The quality report on the first --eval-images validation items (class-conditional: held-out images)."""
    if model.data_kind == LABELLED:
        return report_labelled(model, cfg, model.device, cfg.seed, log=lambda m: None, limit=cfg.eval_images)
    from torch.utils.data import DataLoader, Subset
    subset = Subset(val_dataset, range(min(cfg.eval_images, len(val_dataset))))
    loader = DataLoader(subset, batch_size=8, num_workers=0)
    return (report_paired if model.data_kind == PAIRED else report_unpaired)(model, loader, progress=False)


def scalars(res: dict) -> dict:
    """The single-number entries of a report (for TensorBoard and metrics.jsonl)."""
    return {k: float(v) for k, v in res.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n"}


# ---- tables ------------------------------------------------------------------------------------------
def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def scalar_keys(results: list[dict]) -> list[str]:
    """The metrics every result can show as one number, in first-seen order."""
    keys = []
    for r in results:
        for k, v in r.items():
            if k not in keys and (v is None or isinstance(v, (int, float))) and not isinstance(v, bool):
                keys.append(k)
    return keys


def table(names: list[str], results: list[dict]) -> str:
    """A Markdown table: one row per metric, one column per run."""
    keys = scalar_keys(results)
    head = "| metric | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)
    rows = [f"| {k}{' (higher is better)' if k in HIGHER_IS_BETTER else ''} | "
            + " | ".join(_cell(r.get(k)) for r in results) + " |" for k in keys]
    return "\n".join([head, *rows])
