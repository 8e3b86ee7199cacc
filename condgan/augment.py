"""Differentiable augmentation of every image a discriminator sees (DiffAugment, Zhao et al. 2020).

With little data the discriminator memorises the training images and its gradients stop helping the
generator. Augmenting real *and* generated images, on every path into the discriminator and in both the D
and the G steps, with transforms that gradients flow through, removes that shortcut without teaching the
generator to produce augmented images. The three transforms and their strengths are the paper's:

- ``color``: per image, brightness + U(-0.5, 0.5), saturation x U(0, 2) about the per-pixel channel mean,
  contrast x U(0.5, 1.5) about the image mean;
- ``translation``: per image, an integer shift of up to 1/8 of the height and width, zero fill;
- ``cutout``: per image, a zeroed square of half the height and width at a random centre.

Each call draws new parameters per image, so a real batch and a fake batch never share a draw. Images whose
discriminator input stacks several images along the channels (pix2pix judges input | output) keep them
aligned: the geometric transforms move all channels together, and colour statistics are taken per image
(``groups``: the channel count of each stacked image).

`install(model, policy)` attaches the augmentation to every discriminator the model declares
(`GANModel.discriminators()`) as a forward pre-hook, so no model has to remember to call it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import CondganError

TRANSFORMS = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(text: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' or 'none' -> (); unknown names are an error."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names in ((), ("none",)):
        return ()
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise CondganError(f"--diffaug takes a comma-separated subset of {', '.join(TRANSFORMS)}, "
                           f"got {', '.join(unknown)}")
    if len(set(names)) != len(names):
        raise CondganError(f"--diffaug names a transform twice: {text}")
    return tuple(n for n in TRANSFORMS if n in names)  # the paper's order: colour, then geometry


def _per_image(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).uniform_(low, high)


def _color(x: torch.Tensor, groups: Sequence[int]) -> torch.Tensor:
    brightness = _per_image(x, -0.5, 0.5)
    saturation = _per_image(x, 0.0, 2.0)
    contrast = _per_image(x, 0.5, 1.5)
    out = []
    for part in torch.split(x, list(groups), dim=1):
        part = part + brightness
        part = (part - part.mean(1, keepdim=True)) * saturation + part.mean(1, keepdim=True)
        mean = part.mean((1, 2, 3), keepdim=True)
        out.append((part - mean) * contrast + mean)
    return torch.cat(out, 1) if len(out) > 1 else out[0]


def _shift_indices(n: int, size: int, max_shift: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, source index of every position after a random shift, and whether it lies inside."""
    shift = torch.randint(-max_shift, max_shift + 1, (n, 1), device=device)
    src = torch.arange(size, device=device)[None, :] + shift
    inside = (src >= 0) & (src < size)
    return src.clamp(0, size - 1), inside


def _translation(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    n, c, h, w = x.shape
    rows, rows_in = _shift_indices(n, h, int(h * ratio + 0.5), x.device)
    cols, cols_in = _shift_indices(n, w, int(w * ratio + 0.5), x.device)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    moved = x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)
    inside = (rows_in[:, :, None] & cols_in[:, None, :]).unsqueeze(1)
    return moved * inside.to(x.dtype)


def _cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    top, left = cy - ch // 2, cx - cw // 2  # the square may hang over the border, as in the paper
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def augment(x: torch.Tensor, policy: Sequence[str], groups: Sequence[int] | None = None) -> torch.Tensor:
    """`x` (N, C, H, W) with the policy's transforms applied, a new draw per image; differentiable in x."""
    if not policy:
        return x
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.ndim == 4 \
        else torch.contiguous_format
    groups = tuple(groups) if groups else (x.shape[1],)
    if sum(groups) != x.shape[1]:
        raise ValueError(f"channel groups {groups} do not add up to the {x.shape[1]} channels")
    if "color" in policy:
        x = _color(x, groups)
    if "translation" in policy:
        x = _translation(x)
    if "cutout" in policy:
        x = _cutout(x)
    return x.contiguous(memory_format=layout)


class Augmentation:
    """The forward pre-hook: augments a discriminator's image argument (its first) while it trains."""

    def __init__(self, policy: Sequence[str], groups: Sequence[int] | None = None):
        self.policy, self.groups = tuple(policy), groups

    def __call__(self, module: nn.Module, args: tuple):
        if not module.training or not args or not torch.is_tensor(args[0]) or args[0].ndim != 4:
            return None
        return (augment(args[0], self.policy, self.groups), *args[1:])


def install(model, policy: Sequence[str]) -> list:
    """Augment every input of every discriminator `model` declares; returns the hook handles."""
    if not policy:
        return []
    judges = model.discriminators()
    if not judges:
        raise CondganError(f"--diffaug augments a model's discriminators, and {model.cfg.model} declares none")
    handles = []
    for name, net in judges.items():
        groups = model.discriminator_channel_groups(name)
        handles.append(net.register_forward_pre_hook(Augmentation(policy, groups)))
    return handles
