"""CUDA kernels vs the reference. Run only where a GPU is present
(pytest -m cuda); CI without a GPU compile-checks them instead
(tools/check_cuda_compile.sh)."""
from __future__ import annotations

import math

import pytest
import torch
from ops_helpers import DTYPES, assert_close, expected_format, needs_native, poisoned_outputs, randn

from condgan import ops

pytestmark = [
    pytest.mark.cuda,
    needs_native,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
LAYOUTS = ["contiguous", "channels_last", "noncontiguous"]


def _run(fn, x, bias, grad_seed=1):
    x = x.detach().cuda().requires_grad_()
    b = None if bias is None else bias.detach().cuda().requires_grad_()
    y = fn(x, b)
    y.backward(randn(y.shape, y.dtype, seed=grad_seed).cuda())
    return y.detach(), x.grad, (None if b is None else b.grad)


def _compare(got, want, dtype, bias_scale):
    assert_close(got[0], want[0], dtype)
    assert_close(got[1], want[1], dtype, scale=2)
    if got[2] is not None:
        assert_close(got[2], want[2], dtype, scale=bias_scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (3, 300, 1, 33), (2, 40, 64, 70)])
def test_bias_leaky_relu_cuda_matches_reference(dtype, layout, shape):
    x, bias = randn(shape, dtype, layout, seed=2), randn(shape[1:2], dtype, seed=3)
    with poisoned_outputs():
        got = _run(lambda x, b: ops.bias_leaky_relu(x, b, 0.2, math.sqrt(2), impl="native"), x, bias)
    want = _run(lambda x, b: ops.bias_leaky_relu(x, b, 0.2, math.sqrt(2), impl="ref"), x, bias)
    _compare(got, want, dtype, 1 if dtype in (torch.float32, torch.float64) else 16)
    assert got[0].is_contiguous(memory_format=expected_format(x.cuda()))


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_upsample_and_fused_cuda_match_reference(mode, dtype, layout):
    for shape in [(2, 5, 7, 9), (1, 20, 1, 35)]:
        x, bias = randn(shape, dtype, layout, seed=4), randn(shape[1:2], dtype, seed=5)
        with poisoned_outputs():
            got = _run(lambda x, b: ops.upsample2x(x, mode, impl="native"), x, None)
            fused = _run(lambda x, b: ops.upsample2x_bias_leaky_relu(x, b, 0.2, 1.4, mode, impl="native"), x, bias)
        _compare(got, _run(lambda x, b: ops.upsample2x(x, mode, impl="ref"), x, None), dtype, 1)
        want = _run(lambda x, b: ops.upsample2x_bias_leaky_relu(x, b, 0.2, 1.4, mode, impl="ref"), x, bias)
        _compare(fused, want, dtype, 1 if dtype in (torch.float32, torch.float64) else 16)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_cuda_gradcheck_and_gradgradcheck(mode):
    x = randn((2, 3, 4, 5), torch.float64, seed=6).cuda().requires_grad_()
    b = randn((3,), torch.float64, seed=7).cuda().requires_grad_()
    for fn in (lambda x, b: ops.bias_leaky_relu(x, b, 0.2, 1.4, impl="native"),
               lambda x, b: ops.upsample2x_bias_leaky_relu(x, b, 0.2, 1.4, mode, impl="native")):
        assert torch.autograd.gradcheck(fn, (x, b))
        assert torch.autograd.gradgradcheck(fn, (x, b))


def test_cuda_opcheck():
    x = randn((2, 3, 4, 5), torch.float32, seed=8).cuda()
    b = randn((3,), torch.float32, seed=9).cuda()
    torch.library.opcheck(torch.ops.condgan.bias_leaky_relu.default, (x, b, 0.2, 1.4, 1))
    torch.library.opcheck(torch.ops.condgan.upsample2x.default, (x, "bilinear"))
    torch.library.opcheck(torch.ops.condgan.upsample2x_bias_leaky_relu.default, (x, b, 0.2, 1.4, "nearest"))
