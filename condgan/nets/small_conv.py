"""4x4 stride-2 convolutions that switch to one matrix product on small feature maps.

At the bottom of a U-Net the feature maps are 1x1 to 8x8 while the weights
are large (up to 1024x512x4x4). There the library convolution spends most of
its time on per-call overheads and weight reorders rather than arithmetic,
fused or not. Written as im2col/col2im around a single GEMM, the same
convolution is one pass over the weights per direction, and autograd's
matmul backward gives both gradients. Same parameters and state-dict keys as
nn.Conv2d / nn.ConvTranspose2d, same results up to float rounding; large maps,
other devices and ONNX export use the library path.

Measured on 2 CPU cores (fwd + bwd, median of 7, batch 1 / 8): 512->512 conv
on an 8x8 map 1.6x / 1.4x faster, on 2x2 2.3x / 3.1x; 1024->512 transposed
conv on 4x4 1.8x / 1.9x, on 8x8 2.1x / 1.2x (benchmarks/bench_pix2pix.py has
the end-to-end effect).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMALL = 64  # feature maps up to 8x8 (input side) take the GEMM path


def _gemm_ok(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dim() == 4 and x.shape[-2] * x.shape[-1] <= SMALL
            and not torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling())


def _weight_matrix(weight: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The 4-D weight (a, b, 4, 4) as an (a, 16 * b) matrix without copying it, and whether its columns run
    kernel-position-major, (kh, kw, b), as a channels-last weight's memory does, rather than (b, kh, kw).

    A channels-last model (`model.to(memory_format=torch.channels_last)`) keeps its weights channels-last;
    reshaping those to (a, b * 16) would copy the largest tensors of the network on every call, and their
    gradients back (measured: over a third of a bf16 pix2pix step). The columns are reordered instead,
    on the small side of the product (the unfolded input or the output columns)."""
    if weight.is_contiguous() or not weight.is_contiguous(memory_format=torch.channels_last):
        return weight.reshape(weight.shape[0], -1), False
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1), True


def _swap_blocks(t: torch.Tensor, outer: int, inner: int) -> torch.Tensor:
    """(n, outer * inner, L) with rows ordered (outer, inner) -> rows ordered (inner, outer)."""
    n, _, length = t.shape
    return t.reshape(n, outer, inner, length).transpose(1, 2).reshape(n, outer * inner, length)


class Conv4x2(nn.Conv2d):
    """nn.Conv2d(cin, cout, 4, stride 2, padding 1)."""

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__(cin, cout, 4, 2, 1, bias=bias)

    def forward(self, x):
        if not _gemm_ok(x):
            return super().forward(x)
        n, cin, h, w = x.shape
        cols = F.unfold(x, 4, padding=1, stride=2)  # (n, cin*16, L), rows (cin, kh, kw)
        ho, wo = (h + 2 - 4) // 2 + 1, (w + 2 - 4) // 2 + 1
        weight, position_major = _weight_matrix(self.weight)
        if position_major:
            cols = _swap_blocks(cols, cin, 16)
        out = weight @ cols.transpose(0, 1).reshape(cin * 16, -1)
        out = out.reshape(self.out_channels, n, ho, wo).transpose(0, 1)
        return out if self.bias is None else out + self.bias[:, None, None]


class ConvT4x2(nn.ConvTranspose2d):
    """nn.ConvTranspose2d(cin, cout, 4, stride 2, padding 1): doubles H and W."""

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__(cin, cout, 4, 2, 1, bias=bias)

    def forward(self, x, output_size=None):
        if output_size is not None or not _gemm_ok(x):
            return super().forward(x, output_size)
        n, cin, h, w = x.shape
        cout = self.out_channels
        weight, position_major = _weight_matrix(self.weight)
        if n * h * w <= 8:  # a handful of pixels: (pixels x cin) @ W ran up to 2.4x faster than W^T @ x here
            cols = (x.permute(0, 2, 3, 1).reshape(n * h * w, cin) @ weight).reshape(n, h * w, cout * 16)
            cols = cols.transpose(1, 2)
        else:
            cols = (weight.t() @ x.transpose(0, 1).reshape(cin, n * h * w)).reshape(cout * 16, n, h * w)
            cols = cols.transpose(0, 1)
        if position_major:  # rows (kh, kw, cout) -> (cout, kh, kw), as fold wants them
            cols = _swap_blocks(cols, 16, cout)
        out = F.fold(cols, (2 * h, 2 * w), 4, padding=1, stride=2)
        return out if self.bias is None else out + self.bias[:, None, None]
