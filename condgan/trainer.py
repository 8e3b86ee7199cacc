"""The one training loop for every model.

The Trainer runs the model's phases on each batch (backward, optimizer step,
AMP), counts steps, schedules learning rates, logs to TensorBoard, writes a
sample grid per epoch and checkpoints atomically. Resuming restores counters,
optimizer, scheduler and RNG states and skips the batches of the current epoch
that were already used, so a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from . import distributed
from . import quality, run_folder
from .batches import EpochBatches
from .data.tensors import LabelledTensors, collate
from .device import amp_dtype, cpu_has_bf16_units, pick_device  # noqa: F401 - re-exported for old imports
from .errors import CheckpointError, CondganError, Interrupted, TrainingDiverged
from .step import StepRunner
from .stopping import StopRequests


class _NoWriter:
    """Stands in for TensorBoard's writer on ranks other than 0."""

    def add_scalar(self, *args, **kwargs):
        pass

    add_image = add_scalar
    close = add_scalar


class Trainer(StepRunner):
    """Data, schedule, logging, sample grids, validation and checkpoints around the StepRunner's steps."""

    def __init__(self, cfg, model, dataset, info, run_dir: Path, device: torch.device, val_dataset=None,
                 setting=None):
        self.dataset, self.info, self.val_dataset = dataset, info, val_dataset
        self.run_dir = Path(run_dir)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.main = self.rank == 0  # rank 0 alone logs, draws samples and writes checkpoints
        distributed.check_same_config(cfg)
        if self.world > 1:
            distributed.sync_batchnorm(model, device)
        super().__init__(cfg, model, device, setting)  # setting: condgan.step.probed_setting's choice
        self.sampler = EpochBatches(len(dataset), cfg.batch_size, cfg.seed, rank=self.rank, world=self.world)
        if self.sampler.batches_per_epoch() == 0:
            ranks = f" x {self.world} ranks" if self.world > 1 else ""
            raise CondganError(f"the dataset has {len(dataset)} images, fewer than --batch-size {cfg.batch_size}"
                               f"{ranks}")
        self.steps_per_epoch = sum(model.step_phase in model.phases(i)
                                   for i in range(self.sampler.batches_per_epoch()))
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.scheds = {p: torch.optim.lr_scheduler.LambdaLR(o, self._lr_factor) for p, o in self.opts.items()}
        self.step = self.epoch = self.batch_in_epoch = 0
        self.best = None  # (value, step) of the best validation metric so far
        self.writer = None
        self.last_means: dict = {}  # the losses of the last logged interval
        self.val_text = ""  # the last validation result, for the per-epoch line
        self._fixed = self._fixed_batch()
        if self.world > 1:  # after the model's last move: DDP starts every rank from rank 0's weights
            self.ddp = distributed.DDPNets(model, device)
            torch.manual_seed(cfg.seed * 1_000_003 + self.rank)  # each rank draws its own noise

    def _fixed_batch(self) -> dict | None:
        """The validation items shown in every sample grid (None for models that need none)."""
        n = self.model.shown_items()
        if not n or self.val_dataset is None:
            return None
        return collate([self.val_dataset[i] for i in range(min(n, len(self.val_dataset)))])

    # ---- schedule -----------------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        """constant, or constant then linear decay to 0 over the last --decay-epochs epochs."""
        decay_epochs = self.cfg.decay_epochs_resolved()
        if self.cfg.lr_schedule == "constant" or decay_epochs == 0:
            return 1.0
        decay_steps = decay_epochs * self.steps_per_epoch
        start = self.cfg.epochs * self.steps_per_epoch - decay_steps
        return max(0.0, 1.0 - max(0, step - start) / decay_steps)

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        epoch, batch = self.epoch, self.batch_in_epoch
        if batch >= self.sampler.batches_per_epoch():
            epoch, batch = epoch + 1, 0
        return {
            "format": 1, "version": ckpt_io.package_version(),
            "config": self.cfg.to_dict(), "data_info": self.info.to_dict(),
            "model": self.model.state_dict(),
            "optimizers": {p: o.state_dict() for p, o in self.opts.items()},
            "schedulers": {p: s.state_dict() for p, s in self.scheds.items()},
            "scalers": {p: s.state_dict() for p, s in self.scalers.items()},
            "step": self.step, "epoch": epoch, "batch_in_epoch": batch,
            "best": self.best, "rng": ckpt_io.rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint (on every rank: each takes its own RNG state when the world size matches)."""
        try:
            self.model.load_state_dict(state["model"])
            for p, o in self.opts.items():
                o.load_state_dict(state["optimizers"][p])
                self.scheds[p].load_state_dict(state["schedulers"][p])
                self.scalers[p].load_state_dict(state["scalers"][p])
            ckpt_io.set_rng_state(state["rng"])  # tried here so a malformed state is refused before any work
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"the checkpoint in {self.run_dir} does not fit the {self.cfg.model} model and "
                                  f"its training state in this version ({detail})") from None
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best = state.get("best")
        per_rank = state.get("rng_ranks") or []
        if len(per_rank) == self.world > 1:
            ckpt_io.set_rng_state(per_rank[self.rank])
        else:
            ckpt_io.set_rng_state(state["rng"])
            if self.world > 1:  # another world size: fresh per-rank noise streams (not an exact resume)
                torch.manual_seed(self.cfg.seed * 1_000_003 + self.rank + 7919 * self.step)

    def save(self, name: str = ckpt_io.LAST) -> Path:
        """Write a checkpoint (called on every rank; rank 0 writes it, carrying every rank's RNG state)."""
        path = self.run_dir / "checkpoints" / name
        state = self.state_dict()
        if self.world > 1:
            state["rng_ranks"] = distributed.gather(state["rng"])
        if self.main:
            ckpt_io.atomic_save(state, path)
        distributed.barrier()
        return path

    # ---- validation ---------------------------------------------------------------------------
    def _validate(self, last: bool = False) -> None:
        """Score the fixed validation subset (and, every --eval-every epochs, the quality report); keep
        checkpoints/best.pt at the best value of --select-by (default: the model's validation metric)."""
        n = min(self.model.validation_items(), len(self.val_dataset)) if self.val_dataset is not None else 0
        every = self.cfg.eval_every
        report = bool(every) and ((self.epoch + 1) % every == 0 or last)
        if not report and (self.model.validation_metric is None or n == 0):
            return
        results = None
        if self.main:
            rng = ckpt_io.rng_state()  # validation must not shift the training run's random stream
            results = {}
            if self.model.validation_metric is not None and n:
                items = [self.val_dataset[i] for i in range(n)]
                results.update(self.model.validation([collate(items[i:i + 8]) for i in range(0, n, 8)]))
            if report:
                results.update(quality.scalars(quality.report_for_training(self.model, self.cfg,
                                                                            self.val_dataset)))
            ckpt_io.set_rng_state(rng)
        results = distributed.broadcast(results)  # every rank takes part in saving best.pt below
        for k, v in results.items():
            if v is not None:
                self.writer.add_scalar(f"{'eval' if report else 'val'}/{k}", v, self.step)
        metric = self.cfg.select_by or self.model.validation_metric
        value = results.get(metric)
        improved = value is not None and quality.better(metric, value, self.best[0] if self.best else None)
        if improved:
            self.best = (value, self.step)
        if self.main:
            run_folder.append_metrics(self.run_dir, {"step": self.step, "epoch": self.epoch + 1, **results,
                                                     "best": improved})
        if value is not None:
            self.val_text = f"{metric} {value:.4f}" + (" (best)" if improved else f" (best {self.best[0]:.4f})")
        if improved:
            self.save(ckpt_io.BEST)

    # ---- the loop -----------------------------------------------------------------------------
    def _loader(self) -> DataLoader:
        workers = self.cfg.workers
        if workers < 0:  # in-memory data needs no workers; files do
            workers = 0 if isinstance(self.dataset, LabelledTensors) else min(4, torch.get_num_threads())
        g = torch.Generator().manual_seed(self.cfg.seed * 7919 + self.epoch)  # keeps the global RNG untouched
        return DataLoader(self.dataset, batch_sampler=self.sampler, collate_fn=collate, num_workers=workers,
                          pin_memory=self.device.type == "cuda", generator=g,
                          persistent_workers=False)

    def _check_finite(self, sums: dict) -> None:
        bad = [k for k, v in sums.items() if not math.isfinite(float(v))]
        if bad:
            last = self.run_dir / "checkpoints" / ckpt_io.LAST
            keep = f"the last good checkpoint {last} is intact" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(f"loss {', '.join(bad)} became NaN or infinite near step {self.step} "
                                   f"(epoch {self.epoch + 1}); training stopped and {keep}; "
                                   f"try a lower --lr or another --loss")

    def _log(self, sums: dict, count: int, bar) -> None:
        sums = distributed.mean_over_ranks(sums)  # on every rank: the one collective of logging
        means = {k: float(v) / count for k, v in sums.items()}
        self._check_finite(means)
        self.last_means = means
        if not self.main:
            return
        for k, v in means.items():
            self.writer.add_scalar(f"loss/{k}", v, self.step)
        for p, o in self.opts.items():
            self.writer.add_scalar(f"lr/{p}", o.param_groups[0]["lr"], self.step)
        run_folder.append_metrics(self.run_dir, {"step": self.step, "epoch": self.epoch + 1, **means})
        bar.set_postfix({"ep": self.epoch + 1, **{k: f"{v:.3f}" for k, v in means.items()}}, refresh=False)

    def _samples(self) -> None:
        if not self.main:
            return
        from torchvision.utils import make_grid
        images, nrow = self.model.sample_grid(self._fixed)
        grid = make_grid(images.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1)
        path = self.run_dir / "samples" / f"epoch_{self.epoch + 1:04d}.png"
        ckpt_io.save_image_atomic(grid, path)
        self.writer.add_image("samples", grid, self.step)

    def _interrupted(self, signum: int, sums: dict, bar) -> None:
        self._check_finite(sums)
        path = self.save()
        bar.close()
        name = signal.Signals(signum).name
        if not self.main:  # rank 0 reports for all
            raise SystemExit(128 + signum)
        print(f"{name}: checkpoint saved at step {self.step} ({path})", file=sys.stderr, flush=True)
        raise Interrupted(f"stopped by {name} at step {self.step}; continue with --resume {self.run_dir}", signum)

    def fit(self, resume: dict | None = None) -> dict:
        from torch.utils.tensorboard import SummaryWriter
        if resume is not None:
            self.load_state_dict(resume)
            if self.main:  # the log must match the weights: lines past the checkpoint are redone
                run_folder.truncate_metrics(self.run_dir, self.step)
        self.writer = (SummaryWriter(str(self.run_dir), purge_step=self.step if resume else None) if self.main
                       else _NoWriter())
        start_step, t0 = self.step, time.time()
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not self.cfg.progress or not self.main, mininterval=0.5, desc="train")
        sums, count = {}, 0
        stop = StopRequests()
        try:
            stop.__enter__()
            while self.step < self.total_steps and self.epoch < self.cfg.epochs:
                self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
                for batch in self._loader():
                    batch = self.to_device(batch)
                    stepped = False
                    for phase in self.model.phases(self.batch_in_epoch):
                        losses = self.run_phase(phase, batch)
                        for k, v in losses.items():
                            if k != "loss":
                                sums[k] = sums.get(k, 0.0) + v.detach()
                        if phase == self.model.step_phase:
                            stepped = True
                            self.step += 1
                            count += 1
                            bar.update(1)
                    if stepped:  # after all of the batch's phases, so every optimizer has stepped first
                        for s in self.scheds.values():
                            s.step()
                    self.batch_in_epoch += 1
                    if self.device.type == "cpu":  # free to check every batch on CPU; on GPUs at log time
                        self._check_finite(sums)
                    if stepped and self.step % self.cfg.log_every == 0:
                        self._log(sums, count, bar)
                        sums, count = {}, 0
                    if self.step >= self.total_steps:
                        break
                    if stepped and self.cfg.ckpt_every and self.step % self.cfg.ckpt_every == 0:
                        self._check_finite(sums)
                        self.save()
                    signum = distributed.agree_on_stop(stop.signum)  # every rank stops at the same batch
                    if signum is not None:  # between batches: every phase of this one has run
                        self._interrupted(signum, sums, bar)
                self._check_finite(sums)
                epoch_done = self.batch_in_epoch >= self.sampler.batches_per_epoch()
                last = self.step >= self.total_steps
                if (epoch_done and (self.epoch + 1) % self.cfg.sample_every == 0) or last:
                    self._samples()
                if epoch_done or last:
                    self._validate(last)
                self.save()
                if not self.cfg.progress and self.main:  # without a bar (logs, CI), one line per epoch
                    took = time.time() - t0
                    rate = (self.step - start_step) / max(took, 1e-9)
                    losses_txt = "  ".join(f"{k} {v:.3f}" for k, v in self.last_means.items())
                    val_txt = f"  {self.val_text}" if self.val_text else ""
                    print(f"epoch {self.epoch + 1}/{self.cfg.epochs}  step {self.step}/{self.total_steps}  "
                          f"{losses_txt}{val_txt}  ({took:.0f} s, {rate:.2f} steps/s)", flush=True)
                if epoch_done:
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        finally:
            stop.__exit__()
            bar.close()
            self.writer.close()
        elapsed = time.time() - t0
        return {"steps": self.step - start_step, "seconds": elapsed,
                "steps_per_s": (self.step - start_step) / max(elapsed, 1e-9)}
