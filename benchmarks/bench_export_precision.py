"""File size, onnxruntime CPU speed and parity of fp32 / fp16 / int8 exports (condgan.export --precision).

    PYTHONPATH=. python benchmarks/bench_export_precision.py --threads 2 --out /tmp/bench_precision

Models: the pix2pix U-Net (unet_256) and the CycleGAN ResNet (resnet_9blocks) at 256x256, and the
digits cGAN at its defaults, with random weights (PyTorch's default init, so the outputs have contrast);
int8 is calibrated on random images (translation) or generated z and labels (cGAN), and parity is
measured on 8 held-back inputs of the same kind: on random weights it says how the arithmetic holds
up, not how a trained model's images change. Latency: median of --repeats runs at batch 1;
throughput: images/s at batch 8.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def build(name):
    import torch

    from condgan import models
    from condgan.data import DataInfo
    from condgan.models.cgan import CGANConfig
    from condgan.models.cyclegan import CycleGANConfig
    from condgan.models.pix2pix import Pix2PixConfig
    torch.manual_seed(0)
    if name == "cgan":
        info = DataInfo("labelled", "digits", 1, 28, 28, num_classes=10, class_names=[str(i) for i in range(10)])
        model = models.build(CGANConfig(), info)
    elif name == "unet_256":
        model = models.build(Pix2PixConfig(generator="unet_256"), DataInfo("paired", "x", 3, 256, 256, in_channels=3))
    else:
        model = models.build(CycleGANConfig(generator="resnet_9blocks"),
                             DataInfo("unpaired", "x", 3, 256, 256, in_channels=3))
    for m in model.generator().modules():  # contrast: the GAN init gives a near-constant output
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            m.reset_parameters()
    return model.eval()


def speed(path, model, batch, repeats, threads):
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if model.task == "sample":
        feeds = {"z": rng.standard_normal((batch, model.latent_dim()), dtype=np.float32),
                 "label": rng.integers(0, 10, batch).astype(np.int64)}
    else:
        feeds = {"image": rng.uniform(-1, 1, (batch, 3, 256, 256)).astype(np.float32)}
    s.run(None, feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        s.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    from condgan import export
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["unet_256", "resnet_9blocks", "cgan"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calibration", type=int, default=32)
    p.add_argument("--out", default="/tmp/bench_precision")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        model = build(name)
        for precision in args.precisions:
            path = out / f"{name}_{precision}.onnx"
            r = export.export_model(model, path, precision=precision, calibration=args.calibration, min_psnr=0)
            b1 = speed(path, model, 1, args.repeats, args.threads)
            b8 = speed(path, model, 8, max(2, args.repeats // 2), args.threads)
            h = r["held_back"]
            print(json.dumps({"model": name, "precision": precision, "mib": round(r["bytes"] / 2**20, 2),
                              "latency_b1_ms": round(b1 * 1000, 1), "images_per_s_b8": round(8 / b8, 1),
                              "psnr_db": round(h["psnr"], 1), "max_abs": float(f"{h['max_abs_diff']:.3g}"),
                              "kept_fp32": r["kept_fp32"]}), flush=True)


if __name__ == "__main__":
    main()
