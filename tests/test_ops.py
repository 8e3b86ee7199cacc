"""Compiled kernels vs their PyTorch twins: values, gradients of first and
second order, layouts, dtypes, odd sizes, and every output element written.

Native tests fail (not skip) when the extension cannot be built, unless
CONDGAN_OPS=ref is set explicitly.
"""
from __future__ import annotations

import math

import pytest
import torch
from ops_helpers import DTYPES, assert_close, expected_format, needs_native, poisoned_outputs, randn

from condgan import ops

pytestmark = needs_native
LAYOUTS = ["contiguous", "channels_last", "noncontiguous"]
SHAPES_4D = [(2, 5, 7, 9), (3, 17, 1, 33), (1, 1, 1, 1), (2, 40, 3, 70)]
ACTIVATIONS = [(0.2, math.sqrt(2)), (0.0, 1.0), (0.3, -1.5)]  # (negative_slope, gain)


def _run(fn, x, bias, grad_seed=1):
    """Forward and backward; returns (y, dx, dbias)."""
    x = x.detach().clone().requires_grad_()
    b = None if bias is None else bias.detach().clone().requires_grad_()
    y = fn(x, b)
    g = randn(y.shape, y.dtype, seed=grad_seed)
    y.backward(g)
    return y.detach(), x.grad, (None if b is None else b.grad)


@pytest.mark.parametrize("impl", ["native", "ref"])
def test_an_fp32_bias_follows_a_reduced_precision_input(impl):
    # under autocast a convolution hands a bf16 x to its fp32 bias; both ops add the bias in x's dtype
    x = randn((2, 6, 5, 4), torch.bfloat16, seed=12)
    bias = randn((6,), torch.float32, seed=13)
    for fused in (False, True):
        fn = (lambda x, b: ops.upsample2x_bias_leaky_relu(x, b, impl=impl)) if fused else \
            (lambda x, b: ops.bias_leaky_relu(x, b, impl=impl))
        y, dx, db = _run(fn, x, bias)
        want = fn(x, bias.to(torch.bfloat16))
        assert y.dtype == dx.dtype == torch.bfloat16 and db.dtype == torch.float32
        assert_close(y, want, torch.bfloat16)


@pytest.mark.parametrize("shape,layout,want", [
    ((2, 3, 4, 5), "contiguous", torch.contiguous_format),
    ((2, 3, 4, 5), "channels_last", torch.channels_last),
    ((3, 17, 1, 33), "channels_last", torch.channels_last),
    ((2, 3, 1, 1), "channels_last", torch.contiguous_format),  # also contiguous: walked as NCHW
    ((1, 1, 1, 1), "channels_last", torch.contiguous_format),
    ((2, 3, 4, 5), "noncontiguous", torch.contiguous_format),
    ((2, 3, 4), "contiguous", torch.contiguous_format),
])
def test_the_layout_rule_the_outputs_are_checked_against(shape, layout, want):
    # expected_format is condgan/ops/_layout.py's mirror of csrc/layout.h; pin it independently here.
    assert expected_format(randn(shape, torch.float32, layout)) == want


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES_4D)
def test_bias_leaky_relu_matches_reference(dtype, layout, shape):
    x = randn(shape, dtype, layout, seed=2)
    bias = randn(shape[1:2], dtype, seed=3)
    for slope, gain in ACTIVATIONS:
        with poisoned_outputs():
            got = _run(lambda x, b: ops.bias_leaky_relu(x, b, slope, gain, impl="native"), x, bias)
        want = _run(lambda x, b: ops.bias_leaky_relu(x, b, slope, gain, impl="ref"), x, bias)
        assert_close(got[0], want[0], dtype)
        assert_close(got[1], want[1], dtype)
        # The bias gradient sums many terms; reduced precision rounds it coarsely.
        assert_close(got[2], want[2], dtype, scale=1 if dtype in (torch.float32, torch.float64) else 8)
        assert got[0].is_contiguous(memory_format=expected_format(x))


@pytest.mark.parametrize("shape,dim", [((6, 11), 1), ((3, 4, 5, 6, 7), 2), ((2, 3, 19), -1), ((5,), 0),
                                       ((4, 9, 0, 3), 1)])
def test_bias_leaky_relu_any_rank_and_dim(shape, dim):
    x = randn(shape, torch.float32, seed=4)
    bias = randn((shape[dim],), torch.float32, seed=5)
    got = _run(lambda x, b: ops.bias_leaky_relu(x, b, 0.2, 1.3, dim, impl="native"), x, bias)
    want = _run(lambda x, b: ops.bias_leaky_relu(x, b, 0.2, 1.3, dim, impl="ref"), x, bias)
    for a, b in zip(got, want):
        assert_close(a, b, torch.float32)


def test_bias_leaky_relu_without_bias_and_special_values():
    x = randn((3, 4, 5, 6), torch.float32, seed=6)
    x[0, 0, 0, :4] = torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0])
    got = ops.bias_leaky_relu(x, None, 0.2, 2.0, impl="native")
    assert_close(got, ops.bias_leaky_relu(x, None, 0.2, 2.0, impl="ref"), torch.float32)


def test_bias_leaky_relu_backward_saves_only_the_output():
    """The backward must not keep (or re-read) x: the one saved tensor is y."""
    saved = []
    x = randn((2, 3, 4, 5), torch.float32, seed=7).requires_grad_()
    b = randn((3,), torch.float32, seed=8).requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = ops.bias_leaky_relu(x, b, impl="native")
    assert len(saved) == 1 and saved[0].data_ptr() == y.data_ptr()


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 19, 4, 37), (2, 5, 1, 1), (1, 2, 1, 40), (1, 3, 6, 2),
                                   (2, 24, 9, 21), (1, 2, 3, 1100)])  # the last: rows longer than 2 column chunks
def test_upsample2x_matches_reference(mode, dtype, layout, shape):
    x = randn(shape, dtype, layout, seed=9)
    with poisoned_outputs():
        got = _run(lambda x, b: ops.upsample2x(x, mode, impl="native"), x, None)
    want = _run(lambda x, b: ops.upsample2x(x, mode, impl="ref"), x, None)
    assert_close(got[0], want[0], dtype)
    assert_close(got[1], want[1], dtype, scale=2)
    assert got[0].is_contiguous(memory_format=expected_format(x))


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_fused_upsample_bias_leaky_relu_matches_reference(mode, dtype, layout):
    for shape in [(2, 5, 7, 9), (1, 20, 1, 35), (1, 2, 2, 600)]:
        x = randn(shape, dtype, layout, seed=10)
        bias = randn(shape[1:2], dtype, seed=11)
        fused = lambda x, b: ops.upsample2x_bias_leaky_relu(x, b, 0.2, math.sqrt(2), mode, impl="native")  # noqa: E731
        with poisoned_outputs():
            got = _run(fused, x, bias)
        want = _run(lambda x, b: ops.upsample2x_bias_leaky_relu(x, b, 0.2, math.sqrt(2), mode, impl="ref"), x, bias)
        assert_close(got[0], want[0], dtype)
        assert_close(got[1], want[1], dtype, scale=2)
        assert_close(got[2], want[2], dtype, scale=1 if dtype in (torch.float32, torch.float64) else 16)
        assert got[0].is_contiguous(memory_format=expected_format(x))


def test_fused_op_accepts_a_gradient_for_its_activation_output():
    x = randn((2, 3, 4, 5), torch.float64, seed=12).requires_grad_()
    b = randn((3,), torch.float64, seed=13).requires_grad_()
    fn = lambda x, b: torch.ops.condgan.upsample2x_bias_leaky_relu(x, b, 0.2, 1.5, "bilinear")  # noqa: E731
    torch.autograd.gradcheck(lambda x, b: sum(t.square().sum() for t in fn(x, b)), (x, b))


def test_upsample2x_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ops.upsample2x(torch.randn(1, 1, 2, 2), "bicubic")
    with pytest.raises(RuntimeError):
        torch.ops.condgan.upsample2x(torch.randn(2, 2, 2), "nearest")


# ------------------------------------------------------------ gradients
def _double(shape, layout="contiguous", seed=20):
    return randn(shape, torch.float64, layout, seed=seed).requires_grad_()


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_bias_leaky_relu_gradcheck_and_gradgradcheck(layout):
    x, b = _double((2, 3, 4, 5), layout), _double((3,), seed=21)
    fn = lambda x, b: ops.bias_leaky_relu(x, b, 0.2, math.sqrt(2), impl="native")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))
    fn_neg_gain = lambda x, b: ops.bias_leaky_relu(x, b, 0.1, -0.7, impl="native")  # noqa: E731
    assert torch.autograd.gradgradcheck(fn_neg_gain, (x, b))


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_upsample_gradcheck_and_gradgradcheck(mode, layout):
    x, b = _double((2, 3, 3, 5), layout), _double((3,), seed=22)
    up = lambda x: ops.upsample2x(x, mode, impl="native")  # noqa: E731
    assert torch.autograd.gradcheck(up, (x,))
    assert torch.autograd.gradgradcheck(up, (x,))
    fused = lambda x, b: ops.upsample2x_bias_leaky_relu(x, b, 0.2, 1.4, mode, impl="native")  # noqa: E731
    assert torch.autograd.gradcheck(fused, (x, b))
    assert torch.autograd.gradgradcheck(fused, (x, b))


def test_gradient_penalty_through_native_ops_matches_reference():
    """WGAN-GP pattern: differentiate the norm of an input gradient."""
    def penalty(impl):
        x = randn((2, 4, 5, 5), torch.float64, seed=23).requires_grad_()
        b = randn((4,), torch.float64, seed=24).requires_grad_()
        y = ops.bias_leaky_relu(ops.upsample2x(x, "bilinear", impl=impl), b, 0.2, 1.4, impl=impl)
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        gx.norm().backward()
        return x.grad, b.grad
    for got, want in zip(penalty("native"), penalty("ref")):
        torch.testing.assert_close(got, want)


def test_bias_gradient_is_deterministic():
    x = randn((4, 16, 33, 65), torch.float32, "channels_last", seed=25).requires_grad_()
    b = randn((16,), torch.float32, seed=26).requires_grad_()
    grads = []
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            (gb,) = torch.autograd.grad(ops.bias_leaky_relu(x, b, impl="native").sum(), b)
        finally:
            torch.set_num_threads(before)
        grads.append(gb)
    assert torch.equal(grads[0], grads[1])
