"""The GANModel contract shared by every model.

A model declares its nets and optimizers, which phases run for a batch, and
how to compute each phase's losses. The Trainer owns everything else: devices,
mixed precision, backward and optimizer steps, schedules, logging, sample
grids and checkpoints. Adding a model = one file + one registry line.
"""
from __future__ import annotations

import torch
from torch import nn


class GANModel(nn.Module):
    #: phase whose completion counts as one training step (what --max-steps counts)
    step_phase = "G"
    #: data the model trains on ("labelled", "paired")
    data_kind = "labelled"
    #: Adam's fused kernel (same algorithm, different rounding order than the for-loop one)
    fused_adam = True
    #: whether --channels-last applies on CPU too (it is measured per model; GPUs always honour it)
    channels_last_on_cpu = True
    #: whether --amp auto trains in bfloat16 on CPUs with bf16 matrix units (AMX), where it measured faster
    #: and learned as well
    bf16_on_cpu = False
    #: name of the metric returned by validation() (lower is better); None: no validation
    validation_metric = None

    def __init__(self, cfg, info):
        super().__init__()
        self.cfg, self.info = cfg, info

    # ---- to implement -----------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per phase name."""
        raise NotImplementedError

    def phases(self, batch_index: int) -> tuple[str, ...]:
        """Phases to run, in order, on the batch with this index within the epoch."""
        return ("D", "G")

    def step(self, phase: str, batch: dict) -> dict[str, torch.Tensor]:
        """Compute one phase on a batch; return losses, "loss" being the one to minimise."""
        raise NotImplementedError

    def after_step(self, phase: str) -> None:
        """Called after the optimizer step of `phase` (EMA updates, pools)."""

    def generator(self) -> nn.Module:
        """The generator used for sampling, evaluation and export (the EMA copy when there is one)."""
        raise NotImplementedError

    def sample_grid(self, fixed: dict | None = None) -> tuple[torch.Tensor, int]:
        """Images in [-1, 1] for the per-epoch sample grid, and the number of images per row.

        `fixed` is a batch of validation items that stays the same all run (when there is validation data).
        """
        raise NotImplementedError

    def validation(self, batches) -> dict[str, float]:
        """Metrics over validation batches (includes `validation_metric`)."""
        raise NotImplementedError

    # ---- helpers ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @staticmethod
    def set_requires_grad(net: nn.Module, flag: bool) -> None:
        for p in net.parameters():
            p.requires_grad_(flag)

    def adam(self, params, lr_scale: float = 1.0) -> torch.optim.Adam:
        c = self.cfg
        params = list(params)
        # the fused kernel is one pass over the weights instead of about ten (3.6x faster for 56M weights on CPU)
        fused = self.fused_adam and bool(params) and params[0].device.type in ("cpu", "cuda")
        return torch.optim.Adam(params, lr=c.lr * lr_scale, betas=(c.beta1, c.beta2), fused=fused or None)
