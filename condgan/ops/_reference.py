"""Pure-PyTorch twins of the compiled ops: the ground truth in tests, the
fallback when the extension is missing, and what ONNX export traces."""
from __future__ import annotations

import torch.nn.functional as F

MODES = ("nearest", "bilinear")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"upsample2x mode must be 'nearest' or 'bilinear', got {mode!r}")
    return mode


def bias_leaky_relu_ref(x, bias=None, negative_slope=0.2, gain=1.0, dim=1):
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.view(shape)
    y = F.leaky_relu(x, negative_slope)
    return y * gain if gain != 1.0 else y


def upsample2x_ref(x, mode="nearest"):
    if check_mode(mode) == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def upsample2x_bias_leaky_relu_ref(x, bias=None, negative_slope=0.2, gain=1.0, mode="nearest"):
    return upsample2x_ref(bias_leaky_relu_ref(x, bias, negative_slope, gain, 1), mode)
