"""condgan_runtime: run exported condgan generators (ONNX) with onnxruntime, numpy and Pillow; no PyTorch.

    import condgan_runtime as cr
    g = cr.load("cgan.onnx")                    # a Generator (kind "conditional") or a Translator
    pixels = g.generate("3", n=16, seed=0)      # uint8 [16, H, W, C]
    cr.save(cr.grid(pixels, nrow=4), "grid.png")
"""
from __future__ import annotations

from .errors import CondganRuntimeError, UsageError
from .images import grid, read, save, to_float, to_uint8
from .model import Generator, Model, Translator, load, open_session, read_metadata

__version__ = "0.1.0"

__all__ = ["CondganRuntimeError", "UsageError", "Generator", "Translator", "Model", "load", "open_session",
           "read_metadata", "grid", "read", "save", "to_float", "to_uint8", "__version__"]
