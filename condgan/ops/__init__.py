"""Fused elementwise ops used by the nets, with compiled kernels (condgan._C,
built from csrc/) and pure-PyTorch twins that give the same results.

Public API:
    bias_leaky_relu(x, bias=None, negative_slope=0.2, gain=1.0, dim=1, impl="auto")
    upsample2x(x, mode="nearest", impl="auto")
    upsample2x_bias_leaky_relu(x, bias=None, negative_slope=0.2, gain=1.0, mode="nearest", impl="auto")
    backend() -> str

impl: "native" runs the compiled kernels (error if they cannot), "ref" the
PyTorch twin, "auto" native where available and supported, else ref. The
environment variable CONDGAN_OPS=ref|native sets what "auto" means for the
process (native: fail loudly instead of falling back). ONNX export always
traces the reference, so exported graphs contain standard ops only.

Adding an operator: docs/adding-an-op.md.
"""
from __future__ import annotations

import os

import torch

from . import _loader
from ._reference import bias_leaky_relu_ref, check_mode, upsample2x_bias_leaky_relu_ref, upsample2x_ref

__all__ = ["bias_leaky_relu", "upsample2x", "upsample2x_bias_leaky_relu", "backend",
           "bias_leaky_relu_ref", "upsample2x_ref", "upsample2x_bias_leaky_relu_ref"]

IMPLS = ("auto", "native", "ref")
NATIVE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _process_impl() -> str:
    value = os.environ.get("CONDGAN_OPS", "auto").strip().lower() or "auto"
    if value not in IMPLS:
        raise ValueError(f"CONDGAN_OPS must be one of {IMPLS}, got {value!r}")
    return value


def _unsupported(x: torch.Tensor, negative_slope: float, devices: tuple) -> str | None:
    """Why the compiled kernels cannot take this call, or None if they can."""
    if x.dtype not in NATIVE_DTYPES:
        return f"dtype {x.dtype} has no compiled kernel"
    if x.device.type not in devices:
        return f"no compiled kernel for device {x.device.type!r}"
    if negative_slope < 0:
        # The backward reads the activation's sign off the output, which is
        # ambiguous when the negative side is flipped.
        return "negative_slope < 0 is handled by the reference path"
    return None


def _use_native(impl: str, x: torch.Tensor, negative_slope: float = 0.0) -> bool:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if torch.onnx.is_in_onnx_export():
        return False
    if impl == "auto":
        impl = _process_impl()
    if impl == "ref":
        return False
    state = _loader.state()
    if not state.loaded:
        if impl == "native":
            raise RuntimeError(f"condgan.ops: native kernels requested but {state.origin}")
        return False
    why_not = _unsupported(x, negative_slope, state.devices)
    if why_not is not None and impl == "native":
        raise RuntimeError(f"condgan.ops: native kernels requested but {why_not}")
    return why_not is None


def _bias_like(bias, x):
    return bias if bias is None or bias.dtype == x.dtype else bias.to(x.dtype)


def bias_leaky_relu(x, bias=None, negative_slope=0.2, gain=1.0, dim=1, impl="auto"):
    """y = gain * leaky_relu(x + bias, negative_slope), bias broadcast along `dim`.

    The bias is cast to x's dtype (as a convolution's own bias is), so under autocast a bf16 x with its
    fp32 bias gives a bf16 y on either implementation.
    """
    bias = _bias_like(bias, x)
    if _use_native(impl, x, negative_slope):
        return torch.ops.condgan.bias_leaky_relu(x, bias, float(negative_slope), float(gain), int(dim))
    return bias_leaky_relu_ref(x, bias, negative_slope, gain, dim)


def upsample2x(x, mode="nearest", impl="auto"):
    """2x spatial upsampling of an NCHW tensor: nearest, or bilinear with align_corners=False."""
    check_mode(mode)
    if x.dim() == 4 and _use_native(impl, x):
        return torch.ops.condgan.upsample2x(x, mode)
    return upsample2x_ref(x, mode)


def upsample2x_bias_leaky_relu(x, bias=None, negative_slope=0.2, gain=1.0, mode="nearest", impl="auto"):
    """upsample2x(bias_leaky_relu(x, bias, negative_slope, gain, dim=1), mode) in one pass."""
    check_mode(mode)
    bias = _bias_like(bias, x)
    if x.dim() == 4 and _use_native(impl, x, negative_slope):
        return torch.ops.condgan.upsample2x_bias_leaky_relu(x, bias, float(negative_slope), float(gain), mode)[0]
    return upsample2x_bias_leaky_relu_ref(x, bias, negative_slope, gain, mode)


def backend() -> str:
    """One line: which implementation "auto" uses in this process, and why."""
    impl = _process_impl()
    if impl == "ref":
        return "ref (CONDGAN_OPS=ref)"
    state = _loader.state()
    if not state.loaded:
        return f"ref ({state.origin})"
    devices = ", ".join(sorted(state.devices))
    forced = ", CONDGAN_OPS=native" if impl == "native" else ""
    return f"native ({state.origin}; devices: {devices}{forced})"
