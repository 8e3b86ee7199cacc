"""Fused elementwise ops used by the nets.

Public API (stable; the compiled kernels plug in behind it):
    bias_leaky_relu(x, bias=None, negative_slope=0.2, gain=1.0, dim=1, impl="auto")
    upsample2x(x, mode="nearest", impl="auto")
    backend() -> str

This module currently provides the pure-PyTorch reference path only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _bias_leaky_relu_ref(x, bias=None, negative_slope=0.2, gain=1.0, dim=1):
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.view(shape)
    y = F.leaky_relu(x, negative_slope)
    return y * gain if gain != 1.0 else y


def _upsample2x_ref(x, mode="nearest"):
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    if mode == "bilinear":
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    raise ValueError(f"upsample2x mode must be 'nearest' or 'bilinear', got {mode!r}")


def bias_leaky_relu(x, bias=None, negative_slope=0.2, gain=1.0, dim=1, impl="auto"):
    """y = gain * leaky_relu(x + bias) with bias broadcast along `dim`."""
    return _bias_leaky_relu_ref(x, bias, negative_slope, gain, dim)


def upsample2x(x, mode="nearest", impl="auto"):
    """2x spatial upsampling of an NCHW tensor (nearest or bilinear, align_corners=False)."""
    return _upsample2x_ref(x, mode)


def backend() -> str:
    return "ref (compiled extension not part of this build)"
