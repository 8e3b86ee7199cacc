"""Pure-PyTorch twins of the compiled ops: the ground truth in tests, the
fallback when the extension is missing, and what ONNX export traces.

The activation, gain * leaky_relu(x + bias, negative_slope), is written once,
in bias_leaky_relu_ref; the fused op composes it with upsample2x_ref.
"""
from __future__ import annotations

import torch.nn.functional as F

from ._layout import along

MODES = ("nearest", "bilinear")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"upsample2x mode must be 'nearest' or 'bilinear', got {mode!r}")
    return mode


def bias_leaky_relu_ref(x, bias=None, negative_slope=0.2, gain=1.0, dim=1):
    if bias is not None:
        x = x + along(bias, x.ndim, dim)
    y = F.leaky_relu(x, negative_slope)
    return y * gain if gain != 1.0 else y


def upsample2x_ref(x, mode="nearest"):
    if check_mode(mode) == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def upsample2x_bias_leaky_relu_ref(x, bias=None, negative_slope=0.2, gain=1.0, mode="nearest"):
    return upsample2x_ref(bias_leaky_relu_ref(x, bias, negative_slope, gain, 1), mode)
