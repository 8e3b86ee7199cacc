"""Train a model: python -m condgan.train [--model cgan] [--data digits] [flags...]

With no arguments it trains the class-conditional digit GAN on the embedded
real digits (no network needed) and writes a run directory under runs/.
`--model NAME --help` lists that model's flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt_io
from . import data as data_lib
from . import distributed, models, quality
from .cli import command, writable_dir
from .config import build_parser, flag_name, from_dict, load_json, print_config
from .device import pick_device
from .errors import CondganError
from .run_folder import RunLock
from .step import probed_setting
from .trainer import Trainer


def _pre_parse(argv):
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--model")
    pre.add_argument("--config")
    pre.add_argument("--resume")
    pre.add_argument("--preset")
    known, _ = pre.parse_known_args(argv)
    return known


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="start from a saved config.json; flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly from its last checkpoint")


def parse_config(argv):
    """Resolve the config from presets, --config or --resume, then flags. Returns (cfg, resume_ckpt)."""
    known = _pre_parse(argv)
    if known.config and known.resume:
        raise CondganError("use either --config or --resume, not both (a run directory carries its config)")
    base, resume = {}, None
    if known.resume:
        resume = ckpt_io.load(known.resume)
        source = f"the checkpoint in {known.resume}"
        models.config_from_checkpoint(resume, source)  # a registered model and valid settings, or one sentence
        data_lib.DataInfo.from_dict(resume["data_info"], source)
        ckpt_io.check_structure(resume, ckpt_io.resolve(known.resume), for_resume=True)
        base = dict(resume["config"])
    elif known.config:
        base, source = load_json(known.config), known.config
    if known.model and base.get("model") and known.model != base["model"]:
        raise CondganError(f"--model {known.model} contradicts {source}, which is a {base['model']} config")
    cls = models.config_class(known.model or base.get("model", "cgan"))
    if base:
        from_dict(cls, base, source)  # rejects unknown or invalid saved settings with the source named
    if known.preset:  # the preset's values, then the flags given
        if resume is not None:
            raise CondganError("--preset applies to a new run; a resumed run keeps its own settings")
        if known.preset not in cls.PRESETS:
            raise CondganError(f"--preset {known.preset} is not a {cls.__dataclass_fields__['model'].default} "
                               f"preset (known: {', '.join(cls.PRESETS) or 'none'})")
        base = {**base, **cls.PRESETS[known.preset], "preset": known.preset}
    args = build_parser(cls, "condgan.train", defaults=base, extra=_add_run_flags).parse_args(argv)
    cfg = cls(**{f.name: vars(args)[f.name] for f in dataclasses.fields(cls)})
    cfg.validate()
    if resume is not None:
        for f in dataclasses.fields(cls):
            if not f.metadata.get("resumable") and cfg.to_dict()[f.name] != base.get(f.name, f.default):
                raise CondganError(f"--{flag_name(f.name)} cannot change when resuming "
                                   f"(the run used {base.get(f.name)!r}); start a new run instead")
    return cfg, resume


def _run_dir(cfg, resume_arg: str | None) -> Path:
    """The run folder, checked writable and locked for this process (rank 0) before anything is written."""
    if resume_arg:
        p = Path(resume_arg)
        out = p.parent.parent if p.is_file() else p
    elif cfg.out:
        out = Path(cfg.out)
    else:
        data_tag = Path(cfg.data).name if os.sep in cfg.data else cfg.data
        out = Path("runs") / f"{cfg.model}-{data_tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    writable_dir(out, "--resume" if resume_arg else "--out")
    _LOCKS.append(RunLock(out).acquire())  # held until the process ends; a second writer is refused
    if not resume_arg and (out / "checkpoints" / ckpt_io.LAST).exists():
        raise CondganError(f"{out} already holds a run; continue it with --resume {out} or choose another --out")
    return out


_LOCKS: list[RunLock] = []


def release_run_folders() -> None:
    while _LOCKS:
        _LOCKS.pop().release()


def _shared_run_dir(cfg, resume_arg: str | None) -> Path:
    """_run_dir decided by rank 0 (names carry the time) and shared with every rank, errors included."""
    if not distributed.requested():
        return _run_dir(cfg, resume_arg)
    try:
        choice = (str(_run_dir(cfg, resume_arg)), None) if distributed.is_main() else None
    except CondganError as e:
        choice = (None, str(e))
    path, error = distributed.broadcast(choice)
    if error:
        raise CondganError(error)
    return Path(path)


def _write_json(path: Path, obj) -> None:
    with ckpt_io.atomic_write(path) as f:
        f.write((json.dumps(obj, indent=2) + "\n").encode())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _run(cfg, resume, run_dir, show_config) -> dict:
    device = pick_device(distributed.init(cfg.device))
    main_rank = distributed.is_main()
    run_dir = Path(run_dir) if run_dir else _shared_run_dir(cfg, None)
    first = distributed.local_rank() == 0  # one rank per machine fills its download cache; the others then
    if not first:                          # find the data there
        distributed.barrier()
    dataset, info = models.data_for(cfg, "train")
    if first:
        distributed.barrier()
    if resume is not None:
        saved = data_lib.DataInfo.from_dict(resume["data_info"], f"the checkpoint in {run_dir}")
        if (saved.channels, saved.height, saved.width, saved.num_classes) != \
                (info.channels, info.height, info.width, info.num_classes):
            raise CondganError(f"the data no longer matches the run: it was {saved.channels}x{saved.height}x"
                               f"{saved.width} with {saved.num_classes} classes, now {info.channels}x"
                               f"{info.height}x{info.width} with {info.num_classes}")
    if show_config and main_rank:  # once the data is known to load, so a bad --data gives just its error
        print_config(cfg)
    val_dataset = None
    if models.model_class(cfg.model).uses_validation_data:
        val_dataset, _ = models.data_for(cfg, "val")
    seed_everything(cfg.seed)
    model = models.build(cfg, info)
    quality.check_selection(model, cfg)
    if main_rank:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "config.json", cfg.to_dict())
    # measured once per machine on CPU (condgan.probe); ranks of a distributed run keep the fixed rule alike
    setting = None if distributed.requested() else probed_setting(cfg, model, device, dataset)
    trainer = Trainer(cfg, model, dataset, info, run_dir, device, val_dataset, setting)
    n_params = {k: sum(p.numel() for p in net.parameters()) for k, net in model.named_children()
                if k.startswith(("G", "D")) and any(True for _ in net.parameters())}
    ranks = (f" x {trainer.world} ranks (global batch {cfg.batch_size * trainer.world})"
             if trainer.world > 1 else "")
    if main_rank:
        print(f"run directory: {run_dir}\ndata: {info.name}, {data_lib.describe(info, dataset, val_dataset)}\n"
              f"device: {device}{trainer.setting.text()}{ranks}  parameters: "
              + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in n_params.items())
              + f"\nsteps: {trainer.total_steps} ({trainer.steps_per_epoch} per epoch)", flush=True)
    summary = trainer.fit(resume)
    summary["run_dir"] = str(run_dir)
    return summary


def run(cfg, resume: dict | None = None, run_dir: Path | None = None, show_config: bool = False) -> dict:
    """Train per `cfg` (optionally continuing `resume`); returns a summary dict.

    Under torchrun every rank calls this; rank 0 alone prints, writes the config and (in the Trainer) logs
    and checkpoints. The run folder is locked from before its first file until this returns.
    """
    try:
        return _run(cfg, resume, run_dir, show_config)
    finally:
        release_run_folders()


@command
def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    cfg, resume = parse_config(argv)
    try:
        distributed.init(cfg.device)
        run_dir = _shared_run_dir(cfg, _pre_parse(argv).resume)
        s = run(cfg, resume, run_dir, show_config=True)
    finally:
        release_run_folders()
        distributed.shutdown()
    if distributed.rank_from_env() == 0:
        print(f"done: {s['steps']} steps in {s['seconds']:.0f} s ({s['steps_per_s']:.2f} steps/s); "
              f"samples in {run_dir / 'samples'}, checkpoint {run_dir / 'checkpoints' / ckpt_io.LAST}")
    return 0


if __name__ == "__main__":
    main()
