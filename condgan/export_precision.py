"""Reduced-precision ONNX exports (fp16, int8) and their parity against the fp32 PyTorch generator.

fp16: the fp32 graph is converted by onnxruntime's own converter (onnxruntime.transformers.float16,
shipped inside the onnxruntime wheel, so no new dependency), with the graph's inputs and outputs kept
float32 and the operators that lose accuracy in half precision kept in fp32 (FP16_KEEP_FP32; Cast nodes
around them). int8: static QDQ quantisation (onnxruntime.quantization.quantize_static, per-channel
int8 weights, uint8 activations, MinMax ranges) calibrated on the run's own training images, or on
generated (z, label) inputs for sampling models. Either way the parity is measured on inputs the
calibration did not see: max abs error and PSNR (value range [-1, 1], so peak-to-peak 2).
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import models
from .errors import CondganError

PRECISIONS = ("fp32", "fp16", "int8")
# A model whose PSNR against fp32 PyTorch is below this is refused (--min-psnr overrides).
MIN_PSNR = {"fp32": 60.0, "fp16": 40.0, "int8": 20.0}
DEFAULT_CALIBRATION = 32
HELD_BACK = 8
# InstanceNormalization: onnxruntime's fp16 kernel accumulates mean and variance in half precision (known
# to drift, and to overflow on large images); the Reduce*/Pow family would do the same for a decomposed
# norm; Resize stays fp32 for onnxruntime-web's WebGPU kernels. The converter's default list is kept too.
FP16_KEEP_FP32 = ["InstanceNormalization", "BatchNormalization", "ReduceMean", "ReduceSumSquare", "Pow",
                  "Sqrt", "Resize", "RandomUniformLike"]


def to_fp16(proto):
    """fp32 ModelProto -> fp16 weights and arithmetic, float32 I/O, FP16_KEEP_FP32 operators left in fp32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel
    blocked = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP16_KEEP_FP32))
    half = OnnxModel(convert_float_to_float16(proto, keep_io_types=True, op_block_list=blocked,
                                              disable_shape_infer=True))
    half.topological_sort()  # the converter appends the input Casts at the end of the node list
    return half.model


def kept_fp32(proto) -> list[str]:
    """The operator types of `proto` that to_fp16 leaves in fp32."""
    return sorted({n.op_type for n in proto.graph.node if n.op_type in FP16_KEEP_FP32})


def sample_inputs(model, kind: str, direction: str | None, count: int, held_back: int, seed: int = 0):
    """(calibration, held-back) lists of ONNX feeds: the run's training images (translation) or generated
    (z, label) pairs (sampling); `source` says which. Raises CondganError when the data cannot be read."""
    if kind == "conditional":
        gen = torch.Generator().manual_seed(seed)
        latent, classes = model.latent_dim(), model.info.num_classes

        def feed(i):
            label = torch.tensor([i % classes], dtype=torch.int64)
            return {"z": torch.randn(1, latent, generator=gen), "label": label}
        feeds = [feed(i) for i in range(count + held_back)]
        return feeds[:count], feeds[count:], "generated z and labels"
    try:
        dataset, _ = models.data_for(model.cfg, "train")
    except (CondganError, OSError) as e:
        raise CondganError(f"the run's training data is needed for calibration and parity images but cannot be "
                           f"read: {e}") from None
    key = "input" if model.info.kind == "paired" else direction[0]  # unpaired items hold "A" and "B"
    n = len(dataset)
    hold = min(held_back, max(1, n // 4))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    calib, rest = order[:min(count, n - hold)], order[n - hold:]
    feeds = [{"image": dataset[i][key][None]} for i in calib + rest]
    return feeds[:len(calib)], feeds[len(calib):], "training images"


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over a list of feeds (torch tensors -> numpy)."""

    def __init__(self, feeds):
        self.feeds = iter(feeds)

    def get_next(self):
        f = next(self.feeds, None)
        return None if f is None else {k: v.numpy() for k, v in f.items()}

    def rewind(self):  # not needed by MinMax; present for readers that call it
        pass


def quantize_int8(fp32_path: Path, out: Path, calibration) -> None:
    """Static QDQ int8 quantisation of `fp32_path` into `out`, calibrated on `calibration` (list of feeds)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    if not calibration:
        raise CondganError("int8 quantisation needs at least one calibration input (--calibration)")
    with tempfile.TemporaryDirectory() as tmp:  # quantize_static writes an augmented model beside its temp files
        os.environ.setdefault("ORT_DISABLE_PROGRESS", "1")
        root = logging.getLogger()  # the quantiser logs generic advice and per-tensor notes on the root logger
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_static(str(fp32_path), str(Path(tmp) / "q.onnx"), _Reader(calibration),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"CalibTensorRangeSymmetric": False})
        finally:
            root.setLevel(level)
        os.replace(Path(tmp) / "q.onnx", out)


def parity(path: Path, reference, feeds) -> dict:
    """Max abs error and PSNR (dB, range [-1, 1]) of the ONNX model at `path` against `reference` on `feeds`."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    worst, sq, count, finite = 0.0, 0.0, 0, True
    for f in feeds:
        with torch.no_grad():
            expected = reference(*f.values()).numpy().astype(np.float64)
        got = session.run(None, {k: v.numpy() for k, v in f.items()})[0].astype(np.float64)
        finite &= bool(np.isfinite(got).all())
        worst = max(worst, float(np.abs(got - expected).max()))
        sq += float(((got - expected) ** 2).sum())
        count += got.size
    mse = sq / max(count, 1)
    psnr = math.inf if mse == 0 else 10 * math.log10(4.0 / mse)
    return {"inputs": len(feeds), "max_abs_diff": worst, "psnr": psnr, "finite": finite}


def check_min_psnr(result: dict, precision: str, min_psnr: float | None, out: Path) -> float:
    """Raise CondganError (after moving the file aside) when the PSNR is below the threshold; returns it."""
    threshold = MIN_PSNR[precision] if min_psnr is None else min_psnr
    if not result["finite"] or not result["psnr"] >= threshold:
        bad = out.with_suffix(".rejected.onnx")
        os.replace(out, bad)
        raise CondganError(f"the {precision} model reaches only {result['psnr']:.1f} dB PSNR against fp32 PyTorch "
                           f"(max abs error {result['max_abs_diff']:.3g}), below --min-psnr {threshold:g}; "
                           f"it was moved to {bad}")
    return threshold
