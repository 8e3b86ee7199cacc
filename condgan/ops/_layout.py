"""Memory-layout rules of the condgan operators: the Python mirror of
csrc/layout.h, and the only place in Python where these rules are written.

Used by the fake-tensor rules (_registration.py), the reference ops
(_reference.py) and the tests, so that all of them agree with the kernels on
which layout an output has.
"""
from __future__ import annotations

import torch


def is_channels_last(t: torch.Tensor) -> bool:
    """csrc/layout.h is_channels_last(): channels_last only when unambiguous, so a
    4-D tensor that is also contiguous (e.g. 1x1 spatial) counts as NCHW."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def low_res_format(t: torch.Tensor) -> torch.memory_format:
    """The layout the upsample kernels walk a low-resolution tensor in (forward
    input, backward output) and give their outputs: channels_last if `t` is,
    else NCHW (csrc/cpu/upsample2x_walk.h, csrc/cuda/upsample2x_cuda.cu)."""
    return torch.channels_last if is_channels_last(t) else torch.contiguous_format


def dense_like(t: torch.Tensor) -> torch.Tensor:
    """csrc/layout.h dense() followed by empty_like(): the elementwise kernels'
    output keeps a dense input's strides, anything else gets its suggested format."""
    from torch._prims_common import is_non_overlapping_and_dense_or_false, suggest_memory_format

    if is_non_overlapping_and_dense_or_false(t):
        return torch.empty_like(t)
    return torch.empty_like(t, memory_format=suggest_memory_format(t))


def along(v: torch.Tensor, ndim: int, dim: int) -> torch.Tensor:
    """A per-channel vector viewed to broadcast along `dim` of an `ndim`-D tensor."""
    shape = [1] * ndim
    shape[dim] = -1
    return v.view(shape)
