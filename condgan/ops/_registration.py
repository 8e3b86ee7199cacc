"""Fake-tensor and autograd rules for the torch.ops.condgan operators, and
RULES, the one table of those operators on the Python side.

Each backward is itself an operator with its own autograd rule, so gradients
of any order flow through compiled kernels (WGAN-GP differentiates through
the discriminator's backward):
  bias_leaky_relu            -> bias_leaky_relu_backward (from the output y)
  bias_leaky_relu_backward   -> bias_leaky_relu_backward (it is linear in grad)
  upsample2x                 <-> upsample2x_backward (adjoints of each other)
  upsample2x_bias_leaky_relu -> upsample2x_bias_leaky_relu_backward
The mask read off y is piecewise constant, so no gradient flows into y.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._layout import along, dense_like, low_res_format

_registered = False


def _ops():
    return torch.ops.condgan


def _bias_grad_shape(y: torch.Tensor, dim: int, bias_grad: bool):
    return (y.shape[dim % y.dim()],) if bias_grad else (0,)


def _combine(gg_x, gg_b, like, dim):
    """Gradient arriving at (grad_x, grad_bias) folded into one grad_x-shaped tensor."""
    if gg_b is not None and gg_b.numel() > 0:
        gg_b = along(gg_b, like.dim(), dim)
        return gg_b.expand_as(like) if gg_x is None else gg_x + gg_b
    return gg_x


# --------------------------------------------------------------- fake rules
def _fake_bias_leaky_relu(x, bias, negative_slope, gain, dim):
    return dense_like(x)


def _fake_bias_leaky_relu_backward(grad_y, y, negative_slope, gain, dim, bias_grad):
    return dense_like(y), y.new_empty(_bias_grad_shape(y, dim, bias_grad))


def _fake_upsample2x(x, mode):
    n, c, h, w = x.shape
    return x.new_empty((n, c, 2 * h, 2 * w)).contiguous(memory_format=low_res_format(x))


def _fake_upsample2x_backward(grad_y, mode):
    n, c, h, w = grad_y.shape
    return grad_y.new_empty((n, c, h // 2, w // 2)).contiguous(memory_format=low_res_format(grad_y))


def _fake_fused(x, bias, negative_slope, gain, mode):
    fmt = low_res_format(x)
    return _fake_upsample2x(x, mode), x.new_empty(x.shape).contiguous(memory_format=fmt)


def _fake_fused_backward(grad_y, act, negative_slope, gain, mode, bias_grad):
    dx = act.new_empty(act.shape).contiguous(memory_format=low_res_format(act))
    return dx, act.new_empty(_bias_grad_shape(act, 1, bias_grad))


# ----------------------------------------------------------- autograd rules
def _setup_bias_leaky_relu(ctx, inputs, output):
    x, bias, negative_slope, gain, dim = inputs
    ctx.save_for_backward(output)
    ctx.args = (negative_slope, gain, dim, bias is not None)


def _backward_bias_leaky_relu(ctx, grad):
    (y,) = ctx.saved_tensors
    negative_slope, gain, dim, has_bias = ctx.args
    want_bias = has_bias and ctx.needs_input_grad[1]
    gx, gb = _ops().bias_leaky_relu_backward(grad, y, negative_slope, gain, dim, want_bias)
    return gx, (gb if want_bias else None), None, None, None


def _setup_bias_leaky_relu_backward(ctx, inputs, output):
    grad_y, y, negative_slope, gain, dim, bias_grad = inputs
    ctx.save_for_backward(y)
    ctx.args = (negative_slope, gain, dim)


def _backward_bias_leaky_relu_backward(ctx, gg_x, gg_b):
    (y,) = ctx.saved_tensors
    negative_slope, gain, dim = ctx.args
    total = _combine(gg_x, gg_b, y, dim)
    if total is None:
        return None, None, None, None, None, None
    gg_y, _ = _ops().bias_leaky_relu_backward(total, y, negative_slope, gain, dim, False)
    return gg_y, None, None, None, None, None


def _setup_upsample(ctx, inputs, output):
    ctx.mode = inputs[1]


def _backward_upsample2x(ctx, grad):
    return _ops().upsample2x_backward(grad, ctx.mode), None


def _backward_upsample2x_backward(ctx, grad):
    return _ops().upsample2x(grad, ctx.mode), None


def _setup_fused(ctx, inputs, output):
    x, bias, negative_slope, gain, mode = inputs
    # act is rarely used downstream: keep its gradient None (not zeros) so the
    # backward can take the fused kernel.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(output[1])
    ctx.args = (negative_slope, gain, mode, bias is not None)


def _backward_fused(ctx, grad_y, grad_act):
    (act,) = ctx.saved_tensors
    negative_slope, gain, mode, has_bias = ctx.args
    want_bias = has_bias and ctx.needs_input_grad[1]
    if grad_y is None and grad_act is None:
        return None, None, None, None, None
    if grad_act is None:  # the usual case: only y is used
        gx, gb = _ops().upsample2x_bias_leaky_relu_backward(grad_y, act, negative_slope, gain, mode, want_bias)
    else:
        low = grad_act if grad_y is None else _ops().upsample2x_backward(grad_y, mode) + grad_act
        gx, gb = _ops().bias_leaky_relu_backward(low, act, negative_slope, gain, 1, want_bias)
    return gx, (gb if want_bias else None), None, None, None


def _setup_fused_backward(ctx, inputs, output):
    grad_y, act, negative_slope, gain, mode, bias_grad = inputs
    ctx.save_for_backward(act)
    ctx.args = (negative_slope, gain, mode)


def _backward_fused_backward(ctx, gg_x, gg_b):
    (act,) = ctx.saved_tensors
    negative_slope, gain, mode = ctx.args
    total = _combine(gg_x, gg_b, act, 1)
    if total is None:
        return None, None, None, None, None, None
    low, _ = _ops().bias_leaky_relu_backward(total, act, negative_slope, gain, 1, False)
    return _ops().upsample2x(low, mode), None, None, None, None, None


# ------------------------------------------------------------ the table
@dataclass(frozen=True)
class Rules:
    """What Python adds to one operator of csrc/ops.cpp."""

    fake: Callable  # output metadata (shape, dtype, layout) for fake tensors: torch.compile, opcheck
    setup_context: Callable  # (ctx, inputs, output): saves what backward needs
    backward: Callable  # (ctx, *grads) -> one gradient (or None) per input, via condgan operators


# Every operator csrc/ops.cpp defines, and only those (tests/test_ops_registration.py
# checks both ways). register() attaches these rules; the loader counts a device
# as native only where each of these operators has a kernel.
RULES: dict[str, Rules] = {
    "bias_leaky_relu": Rules(_fake_bias_leaky_relu, _setup_bias_leaky_relu, _backward_bias_leaky_relu),
    "bias_leaky_relu_backward": Rules(_fake_bias_leaky_relu_backward, _setup_bias_leaky_relu_backward,
                                      _backward_bias_leaky_relu_backward),
    "upsample2x": Rules(_fake_upsample2x, _setup_upsample, _backward_upsample2x),
    "upsample2x_backward": Rules(_fake_upsample2x_backward, _setup_upsample, _backward_upsample2x_backward),
    "upsample2x_bias_leaky_relu": Rules(_fake_fused, _setup_fused, _backward_fused),
    "upsample2x_bias_leaky_relu_backward": Rules(_fake_fused_backward, _setup_fused_backward,
                                                 _backward_fused_backward),
}


def compiled_ops() -> set[str]:
    """Names of the condgan operators the loaded library defines (empty before loading)."""
    return {name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names() if name.startswith("condgan::")}


def register() -> None:
    """Attach the rules once the compiled library has defined every operator of RULES."""
    global _registered
    if _registered or not set(RULES) <= compiled_ops():
        return
    _registered = True
    for name, rules in RULES.items():
        torch.library.register_fake(f"condgan::{name}", rules.fake)
        torch.library.register_autograd(f"condgan::{name}", rules.backward, setup_context=rules.setup_context)


register()  # no-op until the library is loaded; torch imports this module on demand
