"""The model registry: name -> model class (which declares its config class, data kind and task).

Adding a model is one line here (plus its own file); `register` adds one from outside the package.
Every lookup checks the class against the model contract (models/base.py), so an incomplete model is
refused with one sentence saying what it lacks.
"""
from __future__ import annotations

import importlib

from .. import data as data_lib
from ..errors import CheckpointError, CondganError
from .base import SAMPLE, TASKS, TRANSLATE, GANModel, GeneratorSpec, check_model_class  # noqa: F401

REGISTRY: dict[str, str | type] = {
    "cgan": "condgan.models.cgan:CGAN",
    "pix2pix": "condgan.models.pix2pix:Pix2Pix",
    "cyclegan": "condgan.models.cyclegan:CycleGAN",
    "cut": "condgan.models.cut:CUT",
}
_checked: dict[str, type] = {}


def register(name: str, target: str | type) -> None:
    """Add (or replace) a model: `target` is the class or "module:Class"."""
    REGISTRY[name] = target
    _checked.pop(name, None)


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)
    _checked.pop(name, None)


def model_class(name: str) -> type[GANModel]:
    """The registered model class for `name`, checked against the contract."""
    if name in _checked:
        return _checked[name]
    if name not in REGISTRY:
        raise CondganError(f"unknown model {name!r}; available: {', '.join(sorted(REGISTRY))}")
    target = REGISTRY[name]
    if isinstance(target, str):
        module, _, cls_name = target.partition(":")
        target = getattr(importlib.import_module(module), cls_name)
    check_model_class(name, target)
    _checked[name] = target
    return target


def config_class(name: str):
    return model_class(name).config_class


def data_kind(name: str) -> str:
    """The kind of data the model trains on: "labelled", "paired" or "unpaired"."""
    return model_class(name).data_kind


def data_for(cfg, split: str = "train"):
    """(dataset, DataInfo) of the `split` of the data a config trains on, as its model declares it."""
    cls = model_class(cfg.model)
    return data_lib.load(cls.data_kind, cls.data_options(cfg), split)


def build(cfg, info):
    """Instantiate the model named by cfg.model for data described by `info`."""
    cls = model_class(cfg.model)
    if cls.data_kind != info.kind:
        raise CondganError(f"model {cfg.model!r} needs {cls.data_kind} data, but {info.name!r} is {info.kind}")
    return cls(cfg, info)


def config_from_checkpoint(ckpt: dict, source: str):
    """The validated config a checkpoint carries (its model must be registered)."""
    from ..config import from_dict
    try:
        cls = config_class(ckpt["config"]["model"])
    except CondganError as e:
        raise CheckpointError(f"{source} cannot be used: {e}") from None
    return from_dict(cls, ckpt["config"], source)


def load(path, device="cpu", task: str | None = None):
    """Rebuild a trained model from a checkpoint file or run directory -> (model, cfg, info).

    With `task` (SAMPLE or TRANSLATE) a run of the other kind is refused, naming the command that fits it.
    """
    from .. import checkpoint as ckpt_io

    ckpt = ckpt_io.load(path)
    source = f"checkpoint {path}"
    cfg = config_from_checkpoint(ckpt, source)
    info = data_lib.DataInfo.from_dict(ckpt["data_info"], source)
    cls = model_class(cfg.model)
    if task is not None and cls.task != task:
        tool = {SAMPLE: "condgan.sample", TRANSLATE: "condgan.translate"}[cls.task]
        raise CondganError(f"{path} is a {cfg.model} run, which does not {task}; use {tool} for it")
    model = build(cfg, info)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit the {cfg.model} model of this version "
                              f"({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), cfg, info
