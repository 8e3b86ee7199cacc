"""Parameter names of the reference pix2pix/CycleGAN generators (junyanz/pytorch-CycleGAN-and-pix2pix)
and how they map onto condgan's UNetGenerator and ResnetGenerator.

Written from the published architecture (no code taken from it):

- U-Net: nested skip-connection blocks, each holding one Sequential `model`. The outermost is
  [down conv, inner block, ReLU, up conv (with bias), tanh], the middle ones [LeakyReLU, down conv,
  down norm, inner block, ReLU, up conv, up norm (, Dropout)], the innermost [LeakyReLU, down conv, ReLU,
  up conv, up norm]; so level 0's convs are `model.model.0` / `model.model.3`, level 1's Sequential is
  `model.model.1.model`, and each deeper level sits at index 3 of the one above it. Dropout comes last in
  its block, so it moves no parameter name: whether a U-Net used dropout cannot be read from its weights.
- ResNet: one Sequential `model` with the same layer order as condgan's `net`, residual blocks holding
  `conv_block`; dropout inside a block shifts its second conv from index 5 to 6.
- Convolutions have a bias only with instance norm (and the last layer always); batch norm has affine
  weights and running statistics, instance norm neither.

`inspect` reads the architecture off a state dict, `to_condgan` renames it for condgan's generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import CondganError

SOURCE = "junyanz/pytorch-CycleGAN-and-pix2pix"
UNET_NAMES = {7: "unet_128", 8: "unet_256"}
RESNET_NAMES = {6: "resnet_6blocks", 9: "resnet_9blocks"}
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Arch:
    """A reference generator as its weights show it."""

    kind: str  # "unet" or "resnet"
    levels: int  # U-Net down-samplings, or ResNet residual blocks
    norm: str  # "batch", "instance" or "none"
    ngf: int
    input_nc: int
    output_nc: int
    dropout: bool | None  # None: not visible in the weights (U-Net)

    @property
    def net_name(self) -> str:
        names = UNET_NAMES if self.kind == "unet" else RESNET_NAMES
        if self.levels in names:
            return names[self.levels]
        return f"a U-Net with {self.levels} levels" if self.kind == "unet" else \
            f"a ResNet with {self.levels} blocks"


def strip_prefix(state: dict) -> dict:
    """Drop the `module.` prefix nn.DataParallel puts on every name."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _unet_seq(level: int) -> str:
    """The prefix of the Sequential of U-Net level `level` (0: outermost)."""
    return "model.model." + "".join("1.model." if i == 0 else "3.model." for i in range(level))


def _shape(state: dict, key: str):
    v = state.get(key)
    return tuple(v.shape) if torch.is_tensor(v) else None


def inspect(state: dict, file) -> Arch:
    """The reference architecture a (prefix-stripped) generator state dict holds, or one sentence why not."""
    w0 = _shape(state, "model.model.0.weight")
    if w0 is not None and len(w0) == 4 and w0[2:] == (4, 4):
        levels = 1
        while _shape(state, _unet_seq(levels) + "1.weight") is not None:
            levels += 1
        if levels < 2:
            raise CondganError(f"{file} has a U-Net's first layer but no inner levels; is it a complete "
                               f"generator file?")
        inner = _unet_seq(levels - 1)
        norm = "batch" if inner + "4.weight" in state else "instance" if inner + "1.bias" in state else "none"
        out = _shape(state, "model.model.3.weight")
        if out is None:
            raise CondganError(f"{file} has no outermost up-convolution (model.model.3.weight); is it a complete "
                               f"U-Net generator file?")
        return Arch("unet", levels, norm, w0[0], w0[1], out[1], None)
    w1 = _shape(state, "model.1.weight")
    if w1 is not None and len(w1) == 4 and w1[2:] == (7, 7):
        blocks = 0
        while _shape(state, f"model.{10 + blocks}.conv_block.1.weight") is not None:
            blocks += 1
        if blocks == 0:
            raise CondganError(f"{file} has a ResNet generator's first layer but no residual blocks")
        dropout = "model.10.conv_block.5.weight" not in state  # dropout moves the 2nd conv from 5 to 6
        norm = "batch" if "model.2.weight" in state else "instance" if "model.1.bias" in state else "none"
        out = _shape(state, f"model.{17 + blocks}.weight")
        if out is None:
            raise CondganError(f"{file} has no output convolution (model.{17 + blocks}.weight); is it a complete "
                               f"ResNet generator file?")
        return Arch("resnet", blocks, norm, w1[0], w1[1], out[0], dropout)
    names = ", ".join(list(state)[:3]) or "nothing"
    hint = " (this is a discriminator: convert the G file, latest_net_G*.pth)" if \
        _shape(state, "model.0.weight") is not None and len(_shape(state, "model.0.weight")) == 4 else ""
    raise CondganError(f"{file} is not a {SOURCE} U-Net or ResNet generator (it starts with {names}){hint}")


def _unet_modules(levels: int) -> dict[str, str]:
    """condgan UNetGenerator module name -> reference module name."""
    names = {}
    for i in range(levels):
        seq, outer, inner = _unet_seq(i), i == 0, i == levels - 1
        names[f"down.{i}"] = seq + ("0" if outer else "1")
        names[f"up.{i}"] = seq + ("3" if outer or inner else "5")
        if not outer and not inner:
            names[f"down_norm.{i}"] = seq + "2"
        if not outer:
            names[f"up_norm.{i}"] = seq + ("4" if inner else "6")
    return names


def _reference_key(condgan_key: str, arch: Arch, modules: dict) -> str:
    module, _, param = condgan_key.rpartition(".")
    if arch.kind == "resnet":  # net.J[.block.K].param -> model.J[.conv_block.K].param
        parts = module.split(".")
        parts[0] = "model"
        return ".".join("conv_block" if p == "block" else p for p in parts) + "." + param
    return modules[module] + "." + param


def to_condgan(state: dict, arch: Arch, target: dict, file) -> dict:
    """The reference weights renamed to condgan's generator keys (`target`: that generator's state dict).

    Fills what old or bias-free files lack (num_batches_tracked, zero biases for --norm none), drops the
    running statistics pytorch < 0.4 saved for instance norm, and refuses leftovers or wrong shapes.
    """
    modules = _unet_modules(arch.levels) if arch.kind == "unet" else {}
    out, used = {}, set()
    for key, like in target.items():
        ref = _reference_key(key, arch, modules)
        value = state.get(ref)
        if value is None and key.endswith("num_batches_tracked"):
            value = torch.zeros((), dtype=torch.long)
        elif value is None and key.endswith(".bias") and arch.norm == "none":
            value = torch.zeros_like(like)  # the reference has no conv bias without a norm
        elif value is None:
            raise CondganError(f"{file} lacks {ref}, which a {arch.net_name} generator with {arch.norm} norm "
                               f"has; is the file complete?")
        else:
            used.add(ref)
        if tuple(value.shape) != tuple(like.shape):
            raise CondganError(f"{file} holds {ref} of shape {tuple(value.shape)} where a {arch.net_name} "
                               f"generator (ngf {arch.ngf}) has {tuple(like.shape)}")
        out[key] = value.to(like.dtype)
    left = [k for k in state if k not in used and not
            (arch.norm == "instance" and k.rpartition(".")[2] in ("running_mean", "running_var",
                                                                   "num_batches_tracked"))]
    if left:
        raise CondganError(f"{file} has {len(left)} entr{'y' if len(left) == 1 else 'ies'} a {arch.net_name} "
                           f"generator with {arch.norm} norm does not have (first: {left[0]})")
    return out


def reference_test_mode(model):
    """Make `model.translate` run its generators as the reference's test.py does without --eval, and
    return the model: in train mode, so dropout stays on and batch norm normalises by the statistics of
    the batch it is given (test.py's batch is one image) instead of its running ones. Those running
    statistics are updated in memory as a side effect, never used and never saved.
    """
    def translate(images: torch.Tensor, direction: str | None = None) -> torch.Tensor:
        g = model.generator(model.resolve_direction(direction))
        was_training = g.training
        g.train()
        try:
            with torch.no_grad():
                return g(images)
        finally:
            g.train(was_training)

    model.translate = translate
    return model
