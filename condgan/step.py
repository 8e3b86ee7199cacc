"""One training step: a batch through the model's phases with backward, optimizer step and mixed precision.

`StepRunner` is the public training-step API. The Trainer builds on it; `condgan.bench`, the tests and the
distributed wrapper use it directly:

    runner = StepRunner.build(cfg, info, device)          # or StepRunner(cfg, model, device)
    losses = runner.train_step(runner.to_device(batch))   # {"D": {...}, "G": {...}}
"""
from __future__ import annotations

import copy
import dataclasses
from contextlib import contextmanager, nullcontext

import torch

from . import augment
from . import device as device_lib


class StepRunner:
    ddp = None  # distributed.DDPNets when several ranks train

    def __init__(self, cfg, model, device: torch.device, setting: device_lib.Setting | None = None):
        """`setting`: the precision and layout to run in (condgan.probe's choice); default: the fixed rule."""
        self.cfg, self.model, self.device = cfg, model, torch.device(device)
        self.model.to(self.device)
        self.setting = setting or device_lib.rule(cfg.amp, cfg.channels_last, self.device, model.bf16_on_cpu,
                                                  model.channels_last_on_cpu)
        self.amp, self.layout = self.setting.dtype, self.setting.layout
        self.model.to(memory_format=self.layout)
        self.augmentations = augment.install(model, augment.parse_policy(cfg.diffaug))
        if self.device.type == "cpu":
            device_lib.tune_cpu_allocator()
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
        return device_lib.autocast(self.device, self.amp)

    @contextmanager
    def _model_code(self):
        """Where the model's step code runs: under autocast, with DDP's wrappers standing in for its nets."""
        with self.autocast(), (self.ddp.installed() if self.ddp else nullcontext()):
            yield

    def run_phase(self, phase: str, batch: dict) -> dict:
        """One phase: the model's losses, backward, optimizer step; returns the losses.

        A model's step() returns one dict of losses, or yields several (loss parts): each part is
        backwarded before the next is computed, so only one part's activations are alive at a time; the
        gradients add up to one optimizer step, and the returned "loss" is the sum of the parts' losses.
        """
        opt, scaler = self.opts[phase], self.scalers[phase]
        opt.zero_grad(set_to_none=True)
        with self._model_code():
            parts = self.model.step(phase, batch)
        if isinstance(parts, dict):
            losses = parts
            scaler.scale(losses["loss"]).backward()
        else:
            losses, parts = {}, iter(parts)
            while True:
                with self._model_code():
                    part = next(parts, None)  # the model's code for this part runs here
                if part is None:
                    break
                scaler.scale(part["loss"]).backward()
                total = losses.get("loss")
                losses.update(part)
                losses["loss"] = part["loss"].detach() if total is None else total + part["loss"].detach()
            if not losses:
                raise RuntimeError(f"{type(self.model).__name__}.step({phase!r}) yielded no losses")
        scaler.step(opt)
        scaler.update()
        self.model.after_step(phase)
        return losses

    def train_step(self, batch: dict, batch_index: int = 0) -> dict[str, dict]:
        """Every phase the model runs on the batch with this index; {phase: losses}."""
        return {phase: self.run_phase(phase, batch) for phase in self.model.phases(batch_index)}


def probe_timer(cfg, model, device, batch: dict, clock=None, budget_s: float = 2.0):
    """For condgan.probe: time_one(setting) -> seconds per training step of a copy of `model` (its weights,
    optimizers and buffers untouched) on `batch` in that setting, eager (--compile is not probed)."""
    from . import probe

    def time_one(setting):
        runner = StepRunner(dataclasses.replace(cfg, compile=False), copy.deepcopy(model), device, setting)
        on_device = runner.to_device(batch)
        return probe.seconds_per_call(lambda: runner.train_step(on_device), clock=clock, budget_s=budget_s)
    return time_one


def train_key(name: str, model, size: list, batch: int) -> dict:
    """What condgan.probe files a measured training setting under: the model, its size, the image size and
    the batch (the same run on the same machine then reuses the measurement)."""
    return {"mode": "train", "model": name, "parameters": sum(p.numel() for p in model.parameters()),
            "size": list(size), "batch": batch}


def probed_setting(cfg, model, device, dataset, clock=None, budget_s: float = 2.0, **inject) -> device_lib.Setting:
    """The precision and layout to train `model` in here: condgan.probe's measured choice on CPU (one batch
    of `dataset`, the run's batch size), the fixed rule on GPUs. RNG states are left as they were."""
    from torch.utils.data import DataLoader

    from . import checkpoint as ckpt_io
    from . import probe
    from .data.tensors import collate

    device = torch.device(device)
    state = ckpt_io.rng_state()
    try:
        batch = next(iter(DataLoader(dataset, batch_size=cfg.batch_size, collate_fn=collate)))
        images = [v for v in batch.values() if torch.is_tensor(v) and v.ndim == 4]
        key = train_key(cfg.model, model, list(images[0].shape[-2:]) if images else [], cfg.batch_size)
        return probe.decide(cfg.amp, cfg.channels_last, device, type(model), key,
                            probe_timer(cfg, model, device, batch, clock, budget_s), **inject)
    finally:
        ckpt_io.set_rng_state(state)
