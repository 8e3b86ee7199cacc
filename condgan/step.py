"""One training step: a batch through the model's phases with backward, optimizer step and mixed precision.

`StepRunner` is the public training-step API. The Trainer builds on it; `condgan.bench`, the tests and the
distributed wrapper use it directly:

    runner = StepRunner.build(cfg, info, device)          # or StepRunner(cfg, model, device)
    losses = runner.train_step(runner.to_device(batch))   # {"D": {...}, "G": {...}}
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from . import augment
from . import device as device_lib


class StepRunner:
    ddp = None  # distributed.DDPNets when several ranks train

    def __init__(self, cfg, model, device: torch.device):
        self.cfg, self.model, self.device = cfg, model, torch.device(device)
        self.model.to(self.device)
        self.amp = device_lib.amp_dtype(cfg.amp, self.device, model.bf16_on_cpu)
        self.layout = device_lib.memory_layout(cfg.channels_last, self.device, model.channels_last_on_cpu)
        self.model.to(memory_format=self.layout)
        self.augmentations = augment.install(model, augment.parse_policy(cfg.diffaug))
        if self.device.type == "cuda":  # training crops have one size, so cuDNN's autotuning pays off
            torch.backends.cudnn.benchmark = True
        if cfg.compile:  # in place: state_dict keys, checkpoints and export are unchanged
            for net in model.children():
                if any(p.requires_grad for p in net.parameters()):
                    net.compile()
        self.opts = model.optimizers()
        use_scaler = self.amp == torch.float16
        self.scalers = {p: torch.amp.GradScaler(self.device.type, enabled=use_scaler) for p in self.opts}

    @classmethod
    def build(cls, cfg, info, device="cpu") -> StepRunner:
        """The model `cfg` names, built for data described by `info` (a DataInfo), with its training step."""
        from . import models
        return cls(cfg, models.build(cfg, info), device)

    def to_device(self, batch: dict) -> dict:
        """Tensors onto the device, images (4-D) in the runner's memory layout."""
        def move(v):
            if not torch.is_tensor(v):
                return v
            v = v.to(self.device, non_blocking=True)
            return v.contiguous(memory_format=self.layout) if v.ndim == 4 else v
        return {k: move(v) for k, v in batch.items()}

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp) if self.amp else nullcontext()

    def run_phase(self, phase: str, batch: dict) -> dict:
        """One phase: the model's losses, backward, optimizer step; returns the losses."""
        opt, scaler = self.opts[phase], self.scalers[phase]
        opt.zero_grad(set_to_none=True)
        with self.autocast(), (self.ddp.installed() if self.ddp else nullcontext()):
            losses = self.model.step(phase, batch)
        scaler.scale(losses["loss"]).backward()
        scaler.step(opt)
        scaler.update()
        self.model.after_step(phase)
        return losses

    def train_step(self, batch: dict, batch_index: int = 0) -> dict[str, dict]:
        """Every phase the model runs on the batch with this index; {phase: losses}."""
        return {phase: self.run_phase(phase, batch) for phase in self.model.phases(batch_index)}
