"""Model registry: name -> (config class, model class)."""
from __future__ import annotations

import importlib

from ..errors import CondganError

REGISTRY = {
    "cgan": ("condgan.models.cgan", "CGANConfig", "CGAN"),
    "pix2pix": ("condgan.models.pix2pix", "Pix2PixConfig", "Pix2Pix"),
    "cyclegan": ("condgan.models.cyclegan", "CycleGANConfig", "CycleGAN"),
}


def _lookup(name: str):
    if name not in REGISTRY:
        raise CondganError(f"unknown model {name!r}; available: {', '.join(sorted(REGISTRY))}")
    module, cfg_name, model_name = REGISTRY[name]
    mod = importlib.import_module(module)
    return getattr(mod, cfg_name), getattr(mod, model_name)


def config_class(name: str):
    return _lookup(name)[0]


def model_class(name: str):
    """The model's class, for its per-device settings (bf16_on_cpu, channels_last_on_cpu, ...)."""
    return _lookup(name)[1]


def data_kind(name: str) -> str:
    """The kind of data the model trains on: "labelled", "paired" or "unpaired"."""
    return getattr(_lookup(name)[1], "data_kind", "labelled")


def build(cfg, info):
    """Instantiate the model named by cfg.model for data described by `info`."""
    _, cls = _lookup(cfg.model)
    if getattr(cls, "data_kind", "labelled") != info.kind:
        raise CondganError(f"model {cfg.model!r} needs {cls.data_kind} data, but {info.name!r} is {info.kind}")
    return cls(cfg, info)


def load(path, device="cpu"):
    """Rebuild a trained model from a checkpoint file or run directory -> (model, cfg, info)."""
    from .. import checkpoint as ckpt_io
    from ..config import from_dict
    from ..data import DataInfo

    ckpt = ckpt_io.load(path)
    cfg_cls = config_class(ckpt["config"].get("model", "cgan"))
    cfg = from_dict(cfg_cls, ckpt["config"], f"checkpoint {path}")
    info = DataInfo.from_dict(ckpt["data_info"])
    model = build(cfg, info)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CondganError(f"checkpoint {path} does not fit the {cfg.model} model of this version "
                           f"({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), cfg, info
