"""Helpers shared by the condgan.ops tests (tests/test_ops*.py, test_cuda_emulation.py,
test_bench_scripts.py). Lives in tests/, not in the package, because it imports pytest;
pytest puts tests/ on sys.path, so tests import it as `ops_helpers`."""
from __future__ import annotations

import contextlib
import os

import pytest
import torch

from condgan.ops._layout import low_res_format

REF_ONLY = os.environ.get("CONDGAN_OPS", "").strip().lower() == "ref"
needs_native = pytest.mark.skipif(REF_ONLY, reason="CONDGAN_OPS=ref set explicitly: native kernels not wanted")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# (atol, rtol) for comparing native and reference results of the same dtype.
TOL = {
    torch.float64: (1e-12, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}


def randn(shape, dtype, layout="contiguous", seed=0):
    """Fresh random tensor (never zeros) in the requested layout."""
    g = torch.Generator().manual_seed(seed)
    if layout == "noncontiguous":
        # Every other element of a wider tensor: not dense, not contiguous.
        wide = list(shape)
        wide[-1] *= 2
        return torch.randn(wide, generator=g, dtype=torch.float64).to(dtype)[..., ::2]
    x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    return x


def assert_close(actual, expected, dtype, scale=1.0):
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(actual, expected, atol=atol * scale, rtol=rtol * scale, equal_nan=True)


@contextlib.contextmanager
def poisoned_outputs():
    """Newly allocated tensors are filled with NaN, so an output element a
    kernel forgot to write shows up as NaN."""
    flag = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(flag)
        torch.utils.deterministic.fill_uninitialized_memory = fill


# The layout a kernel's output must have: the rule of csrc/layout.h, written once in
# Python (condgan/ops/_layout.py, which the fake-tensor rules use too); the tests
# compare real kernel outputs against it, and test_ops.py pins the rule itself.
expected_format = low_res_format
