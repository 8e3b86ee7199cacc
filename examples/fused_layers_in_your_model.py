"""Use condgan's fused layers in your own network: a small decoder whose
"add bias, leaky ReLU, upsample 2x" steps run through the compiled kernels.

    python examples/fused_layers_in_your_model.py               # CPU, or the GPU if there is one
    python examples/fused_layers_in_your_model.py --mode nearest --batch 16 --steps 20

Prints which implementation runs (compiled kernels or the PyTorch twin),
checks that the decoder computes the same function and gradients both ways,
then times training steps of each, alternating, and prints the ratio.

The pattern to copy: give the convolution no bias (bias=False) and let
BiasLeakyReLU own it, so the bias add and the activation are one pass over
memory, and use Upsample2x (or condgan.ops.upsample2x_bias_leaky_relu, the
two fused) where you would call F.interpolate(scale_factor=2).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import time

import torch
from torch import nn

from condgan import ops
from condgan.nets.layers import BiasLeakyReLU, Upsample2x


class Decoder(nn.Module):
    """(N, 128, s, s) features -> (N, 3, 8s, 8s) image."""

    def __init__(self, widths=(128, 64, 32, 16), mode: str = "bilinear"):
        super().__init__()
        layers = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False),  # the bias lives in BiasLeakyReLU
                       BiasLeakyReLU(cout, negative_slope=0.2, gain=math.sqrt(2)),
                       Upsample2x(mode)]
        layers += [nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@contextlib.contextmanager
def ops_impl(value: str):
    """Run condgan.ops as CONDGAN_OPS=value would (the variable is read on every call)."""
    old = os.environ.get("CONDGAN_OPS")
    os.environ["CONDGAN_OPS"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CONDGAN_OPS", None)
        else:
            os.environ["CONDGAN_OPS"] = old


def train_step(model, opt, x, target):
    opt.zero_grad(set_to_none=True)
    loss = (model(x) - target).abs().mean()
    loss.backward()
    opt.step()
    return loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["nearest", "bilinear"], default="bilinear")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=32, help="input feature size; the image is 8x larger")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per implementation")
    args = p.parse_args()
    if args.batch < 1 or args.size < 1 or args.steps < 1:
        p.error("--batch, --size and --steps must be positive")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = Decoder(mode=args.mode).to(device)
    x = torch.randn(args.batch, 128, args.size, args.size, device=device)
    target = torch.rand(args.batch, 3, 8 * args.size, 8 * args.size, device=device) * 2 - 1
    backend = ops.backend()
    print(f"device: {device}; condgan.ops backend: {backend}")
    if not backend.startswith("native"):
        out = model(x)
        print(f"the compiled kernels are not available here, so the decoder ran on the PyTorch twin "
              f"(output {tuple(out.shape)}); nothing to compare")
        return

    # Same function, same gradients, both ways.
    results = {}
    for impl in ("native", "ref"):
        with ops_impl(impl):
            model.zero_grad(set_to_none=True)
            out = model(x)
            (out - target).abs().mean().backward()
            results[impl] = (out.detach(), [q.grad.clone() for q in model.parameters()])
    out_err = (results["native"][0] - results["ref"][0]).abs().max().item()
    grad_err = max((a - b).abs().max().item() for a, b in zip(results["native"][1], results["ref"][1]))
    print(f"compiled kernels vs PyTorch twin: max |output diff| {out_err:.2e}, max |grad diff| {grad_err:.2e}")
    if out_err > 1e-4 or grad_err > 1e-3:
        raise SystemExit("the two implementations disagree; please report this with the line above")

    # Training steps, the two implementations alternating so drift hits both alike.
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = {"native": [], "ref": []}
    for i in range(args.steps + 1):
        for impl in times:
            with ops_impl(impl):
                sync()
                start = time.perf_counter()
                train_step(model, opt, x, target)
                sync()
                if i > 0:  # the first round warms up
                    times[impl].append(time.perf_counter() - start)
    native, ref = (statistics.median(times[k]) * 1e3 for k in ("native", "ref"))
    print(f"training step ({args.batch} x 3 x {8 * args.size} x {8 * args.size} output, {args.mode}): "
          f"compiled kernels {native:.1f} ms, PyTorch twin {ref:.1f} ms, {ref / native:.2f}x")


if __name__ == "__main__":
    main()
