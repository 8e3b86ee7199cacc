"""Translation quality against targets: L1, PSNR, SSIM, and Inception FID when its weights are local."""
from __future__ import annotations

from pathlib import Path

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from tqdm.auto import tqdm

from . import inception
from .inception import INCEPTION_FILE  # noqa: F401  (re-exported: the weights file's name)


def inception_weights() -> Path | None:
    """The FID Inception weights if present locally (see condgan.metrics.inception.weights_path); never downloads."""
    return inception.weights_path()


def fid_unavailable_reason() -> str | None:
    """None when Inception FID can run, else one sentence saying why not (inception.unavailable_reason)."""
    return inception.unavailable_reason()


def fid_metric():
    """A torchmetrics Inception FID on the local weights (images in [0, 1]), or None when unavailable."""
    if fid_unavailable_reason() is not None:
        return None
    from torchmetrics.image.fid import FrechetInceptionDistance
    return FrechetInceptionDistance(feature=2048, normalize=True,
                                    feature_extractor_weights_path=str(inception_weights()))


@torch.no_grad()
def evaluate_pairs(model, loader, device, progress: bool = True) -> dict:
    """Mean L1 (on [-1, 1] images), PSNR (dB) and SSIM (on [0, 1]) over a loader of {input, target}."""
    net = inception.InceptionFeatures(device) if fid_unavailable_reason() is None else None
    real, fake = [], []
    sums, n = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0}, 0
    base = {"l1": 0.0, "psnr": 0.0}
    for b in tqdm(loader, unit="batch", disable=not progress, desc="evaluate"):
        src, tgt = b["input"].to(device), b["target"].to(device).float()
        out = model.translate(src).float()
        o01, t01 = (out + 1) / 2, (tgt + 1) / 2
        k = out.shape[0]
        sums["l1"] += (out - tgt).abs().flatten(1).mean(1).sum().item()
        sums["psnr"] += peak_signal_noise_ratio(o01, t01, data_range=1.0, reduction="none",
                                                dim=(1, 2, 3)).sum().item()
        sums["ssim"] += structural_similarity_index_measure(o01, t01, data_range=1.0, reduction="none").sum().item()
        if src.shape[1] == tgt.shape[1]:  # how far the untranslated input already is from the target
            base["l1"] += (src.float() - tgt).abs().flatten(1).mean(1).sum().item()
            base["psnr"] += peak_signal_noise_ratio((src.float() + 1) / 2, t01, data_range=1.0, reduction="none",
                                                    dim=(1, 2, 3)).sum().item()
        if net is not None and out.shape[1] == 3:
            real.append(net.extract(tgt))
            fake.append(net.extract(out))
        n += k
    res = {k: v / max(n, 1) for k, v in sums.items()}
    res["n"] = n
    same_channels = base["l1"] > 0
    res["l1_input_copy"] = base["l1"] / max(n, 1) if same_channels else None
    res["psnr_input_copy"] = base["psnr"] / max(n, 1) if same_channels else None
    res["fid"] = inception.fid_kid(torch.cat(real), torch.cat(fake))["fid"] if len(real) and n > 1 else None
    return res
