"""The condgan operators under the PyTorch custom-op tooling: opcheck
(schema, fake tensors, autograd registration, AOT dispatch) and torch.compile."""
from __future__ import annotations

import pytest
import torch
from ops_helpers import needs_native, randn

from condgan import ops
from condgan.ops import _registration

pytestmark = needs_native


@pytest.fixture(scope="module")
def condgan_ops():
    ops.bias_leaky_relu(torch.ones(1), impl="native")  # loads (or builds) the extension
    return torch.ops.condgan


def _opcheck_cases(op):
    x = randn((2, 3, 4, 5), torch.float32, seed=1)
    xcl = randn((2, 3, 4, 5), torch.float32, "channels_last", seed=2)
    b = randn((3,), torch.float32, seed=3)
    g = randn((2, 3, 8, 10), torch.float32, seed=4)
    y = op.bias_leaky_relu(x, b, 0.2, 1.4, 1)
    return [
        (op.bias_leaky_relu.default, (x.requires_grad_(), b.requires_grad_(), 0.2, 1.4, 1)),
        (op.bias_leaky_relu.default, (xcl, None, 0.0, 1.0, -3)),
        (op.bias_leaky_relu_backward.default, (torch.randn_like(y), y, 0.2, 1.4, 1, True)),
        (op.bias_leaky_relu_backward.default, (torch.randn_like(y).requires_grad_(), y, 0.2, 1.4, 1, False)),
        (op.upsample2x.default, (x, "nearest")),
        (op.upsample2x.default, (xcl.requires_grad_(), "bilinear")),
        (op.upsample2x_backward.default, (g.requires_grad_(), "bilinear")),
        (op.upsample2x_bias_leaky_relu.default, (x, b, 0.2, 1.4, "nearest")),
        (op.upsample2x_bias_leaky_relu.default, (xcl, b, 0.2, 1.4, "bilinear")),
        (op.upsample2x_bias_leaky_relu_backward.default, (g, y, 0.2, 1.4, "bilinear", True)),
    ]


def test_every_compiled_operator_has_python_rules_and_no_more(condgan_ops):
    assert set(_registration.RULES) == _registration.compiled_ops()


def test_opcheck_all_ops(condgan_ops):
    cases = _opcheck_cases(condgan_ops)
    assert {op.name().split("::")[1] for op, _ in cases} == set(_registration.RULES), "an operator has no case"
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_torch_compile_fullgraph_matches_eager(condgan_ops):
    def block(x, b):
        h = ops.upsample2x_bias_leaky_relu(x, b, 0.2, 1.4, "bilinear")
        return ops.upsample2x(ops.bias_leaky_relu(h, b, 0.2, 1.4), "nearest")

    compiled = torch.compile(block, fullgraph=True)
    x = randn((2, 3, 5, 6), torch.float32, seed=5).requires_grad_()
    b = randn((3,), torch.float32, seed=6).requires_grad_()
    y = compiled(x, b)
    gx, gb = torch.autograd.grad(y.square().sum(), (x, b))
    y_ref = block(x, b)
    gx_ref, gb_ref = torch.autograd.grad(y_ref.square().sum(), (x, b))
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(gx, gx_ref)
    torch.testing.assert_close(gb, gb_ref)
