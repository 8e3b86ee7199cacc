"""The CUDA upsample kernels' per-element bodies, run on the CPU.

csrc/cuda/upsample2x_body.cuh holds what each GPU thread computes; the CUDA
kernels only wrap it in grid-stride loops. tests/cuda_emulation/emulate.cpp
compiles the same header with the host compiler and calls it for every index,
so these tests check the GPU code's index arithmetic, clamping, weights and
activation against the PyTorch reference without a GPU. The launch itself
and device-compiler behaviour are left to tests/test_ops_cuda.py on a GPU."""
from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import pytest
import torch
from ops_helpers import DTYPES, assert_close, expected_format, randn

from condgan.ops._build_lock import BuildLock
from condgan.ops._loader import cache_root
from condgan.ops._reference import bias_leaky_relu_ref, upsample2x_bias_leaky_relu_ref, upsample2x_ref

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "cuda_emulation" / "emulate.cpp"
SHAPES = [(2, 3, 5, 7), (1, 1, 1, 1), (2, 4, 1, 6), (3, 2, 6, 1), (1, 5, 9, 8), (2, 16, 4, 3)]
LAYOUTS = ["contiguous", "channels_last"]
MODES = ["nearest", "bilinear"]
ACTIVATIONS = [(0.2, 1.0), (0.2, math.sqrt(2)), (0.1, -0.7)]


@pytest.fixture(scope="module")
def emu():
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler to build the emulation")
    from torch.utils.cpp_extension import load

    inputs = [SOURCE, ROOT / "csrc" / "layout.h", *sorted((ROOT / "csrc" / "cuda").glob("*.cuh"))]
    digest = hashlib.sha256(torch.__version__.encode())
    for path in inputs:
        digest.update(path.read_bytes())
    build_dir = cache_root() / f"cuda-emulation-{digest.hexdigest()[:16]}"
    build_dir.mkdir(parents=True, exist_ok=True)
    # Same discipline as the extension's own build: our lock breaks stale
    # owners, and torch's lock file, under ours, can only be a killed build's.
    with BuildLock(build_dir / "condgan.lock"):
        (build_dir / "lock").unlink(missing_ok=True)
        return load(name="condgan_cuda_emulation", sources=[str(SOURCE)], build_directory=str(build_dir),
                    extra_cflags=["-O1"], verbose=False)


def _low_res(shape, dtype, layout, seed=0):
    x = randn(shape, dtype, layout, seed=seed)
    return x.contiguous(memory_format=expected_format(x))


def _poisoned_like(shape, like, fmt):
    return torch.full(shape, float("nan"), dtype=like.dtype).contiguous(memory_format=fmt)


def _up_shape(x):
    n, c, h, w = x.shape
    return (n, c, 2 * h, 2 * w)


SMALL_INDEX = pytest.mark.parametrize("small_index", [True, False], ids=["fast-divide", "int64-divide"])


def upsample_grid(test):
    """Every shape, mode, layout and dtype, with both coordinate splits:
    small_index = by multiplication (every tensor here) or, forced, the plain
    64-bit division that tensors past 2**31 elements take."""
    for name, values in (("dtype", DTYPES), ("layout", LAYOUTS), ("mode", MODES), ("shape", SHAPES)):
        test = pytest.mark.parametrize(name, values)(test)
    return SMALL_INDEX(test)


@upsample_grid
def test_forward_bodies_match_the_reference(emu, shape, mode, layout, dtype, small_index):
    x = _low_res(shape, dtype, layout)
    y = _poisoned_like(_up_shape(x), x, expected_format(x))
    emu.forward(x, None, y, None, 0.2, 1.0, mode == "bilinear", False, small_index)
    assert not y.isnan().any(), "an output element was not written"
    assert_close(y, upsample2x_ref(x, mode), dtype)


@upsample_grid
def test_backward_bodies_match_autograd_of_the_reference(emu, shape, mode, layout, dtype, small_index):
    x = _low_res(shape, dtype, layout)
    gy = _low_res(_up_shape(x), dtype, layout, seed=1)
    dx = _poisoned_like(shape, x, expected_format(gy))
    emu.backward(gy, None, dx, 0.2, 1.0, mode == "bilinear", small_index)
    assert not dx.isnan().any(), "a gradient element was not written"
    x64 = x.double().requires_grad_()
    (want,) = torch.autograd.grad(upsample2x_ref(x64, mode), x64, gy.double())
    assert_close(dx, want.to(dtype), dtype, scale=2)


@pytest.mark.parametrize("slope,gain", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (2, 16, 4, 3)])
def test_fused_bodies_match_the_reference(emu, shape, mode, layout, dtype, slope, gain):
    x = _low_res(shape, dtype, layout)
    bias = randn((shape[1],), dtype, seed=2)
    fmt = expected_format(x)
    y = _poisoned_like(_up_shape(x), x, fmt)
    act = _poisoned_like(shape, x, fmt)
    emu.forward(x, bias, y, act, slope, gain, mode == "bilinear", True, True)
    assert not y.isnan().any() and not act.isnan().any()
    assert_close(y, upsample2x_bias_leaky_relu_ref(x, bias, slope, gain, mode), dtype)
    assert_close(act, bias_leaky_relu_ref(x, bias, slope, gain), dtype)

    gy = _low_res(_up_shape(x), dtype, layout, seed=3)
    dx = _poisoned_like(shape, x, fmt)
    emu.backward(gy.contiguous(memory_format=fmt), act, dx, slope, gain, mode == "bilinear", True)
    assert not dx.isnan().any()
    x64 = x.double().requires_grad_()
    out = upsample2x_bias_leaky_relu_ref(x64, bias.double(), slope, gain, mode)
    (want,) = torch.autograd.grad(out, x64, gy.double())
    assert_close(dx, want.to(dtype), dtype, scale=2)


# (shape, layout, dim): row chunks (inner > 1, one chunk or several), the
# channel layout (inner == 1, more rows than the slice cap), one channel.
BLR_CASES = [
    ((2, 5, 7, 9), "contiguous", 1),
    ((2, 5, 7, 9), "channels_last", 1),
    ((3, 300, 1, 33), "channels_last", 1),
    ((2, 40, 64, 70), "contiguous", 1),
    ((1, 3, 50, 50), "contiguous", 1),
    ((1500, 8), "contiguous", 1),
    ((4, 7), "contiguous", 0),
    ((3, 4, 5), "contiguous", -1),
    ((1, 1, 3, 3), "contiguous", 1),
]


@SMALL_INDEX
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout,dim", BLR_CASES)
def test_bias_leaky_relu_bodies_match_the_reference(emu, shape, layout, dim, dtype, small_index):
    x = randn(shape, dtype, layout, seed=4)
    bias = randn((shape[dim],), dtype, seed=5)
    slope, gain = 0.2, math.sqrt(2)
    y = torch.full_like(x, float("nan"))
    emu.blr_forward(x, bias, y, slope, gain, dim, small_index)
    assert not y.isnan().any(), "an output element was not written"
    assert_close(y, bias_leaky_relu_ref(x, bias, slope, gain, dim), dtype)

    g = randn(shape, dtype, layout, seed=6)
    dx = torch.full_like(y, float("nan"))
    dbias = emu.blr_backward(g, y, dx, slope, gain, dim, True)
    assert not dx.isnan().any(), "a gradient element was not written"
    x64, b64 = x.double().requires_grad_(), bias.double().requires_grad_()
    want_dx, want_db = torch.autograd.grad(bias_leaky_relu_ref(x64, b64, slope, gain, dim), (x64, b64), g.double())
    assert_close(dx, want_dx.to(dtype), dtype, scale=2)
    assert_close(dbias, want_db.to(dtype), dtype, scale=1 if dtype in (torch.float32, torch.float64) else 16)

    dx_only = torch.full_like(y, float("nan"))
    assert emu.blr_backward(g, y, dx_only, slope, gain, dim, False).numel() == 0
    assert torch.equal(dx_only, dx)
