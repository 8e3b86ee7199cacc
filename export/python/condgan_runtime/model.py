"""Loading an exported condgan generator into onnxruntime: Generator (class-conditional) and Translator."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import images, tiling
from .errors import CondganRuntimeError, UsageError

CPU = "CPUExecutionProvider"
PROVIDER_ALIASES = {"cpu": CPU, "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
                    "rocm": "ROCMExecutionProvider", "migraphx": "MIGraphXExecutionProvider",
                    "coreml": "CoreMLExecutionProvider", "dml": "DmlExecutionProvider",
                    "directml": "DmlExecutionProvider", "openvino": "OpenVINOExecutionProvider",
                    "webgpu": "WebGpuExecutionProvider"}
INSTALL_HINTS = {"CUDAExecutionProvider": "onnxruntime-gpu", "TensorrtExecutionProvider": "onnxruntime-gpu",
                 "DmlExecutionProvider": "onnxruntime-directml", "OpenVINOExecutionProvider": "onnxruntime-openvino"}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(" : ")[-1].strip().rstrip(".")  # drop onnxruntime's "[ONNXRuntimeError] : 7 : CODE :"


def resolve_provider(name: str | None) -> str:
    """A provider name or alias ("cpu", "cuda", ...) -> the onnxruntime name, if this onnxruntime has it."""
    if not name:
        return CPU
    available = ort.get_available_providers()
    full = PROVIDER_ALIASES.get(name.lower(), name)
    for p in available:
        if p.lower() in (full.lower(), full.lower() + "executionprovider"):
            return p
    hint = INSTALL_HINTS.get(full)
    hint = f"; install {hint} in place of onnxruntime to get it" if hint else ""
    raise UsageError(f"execution provider {full} is not available in this onnxruntime "
                     f"(available: {', '.join(available)}){hint}")


def open_session(path: str | Path, provider: str | None = None, threads: int | None = None):
    """An onnxruntime InferenceSession for `path`, with errors that say what is wrong with the file."""
    path = Path(path)
    if not path.exists():
        raise CondganRuntimeError(f"model file {path} does not exist")
    if path.is_dir():
        raise CondganRuntimeError(f"{path} is a folder, not an ONNX model file")
    if not os.access(path, os.R_OK):
        raise CondganRuntimeError(f"cannot read model file {path}: permission denied")
    if threads is not None and threads < 0:
        raise UsageError(f"--threads must be 0 (onnxruntime's choice) or more, not {threads}")
    chosen = resolve_provider(provider)
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: onnxruntime's warnings are not for the app's users
    if threads:
        so.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), so, providers=[chosen] + ([CPU] if chosen != CPU else []))
    except Exception as e:
        if "INVALID_PROTOBUF" in str(e) or "Protobuf parsing failed" in str(e):
            raise CondganRuntimeError(f"{path} is not an ONNX model (it cannot be parsed as one)") from None
        raise CondganRuntimeError(f"onnxruntime cannot load {path}: {_first_line(e)}") from None
    if chosen not in session.get_providers():
        raise UsageError(f"execution provider {chosen} could not be started for {path} (onnxruntime fell back "
                         f"to {', '.join(session.get_providers())}); check its drivers and libraries")
    return session


class Model:
    """What every exported condgan generator has: the session, its metadata and the output image format."""

    kind = ""

    def __init__(self, session, path: Path, metadata: dict[str, str]):
        self.session, self.path, self.metadata = session, Path(path), metadata
        self.model_name = metadata.get("condgan.model", "?")
        self.channels = self._int("condgan.channels")
        self.height = self._int("condgan.height")
        self.width = self._int("condgan.width")
        self.precision = metadata.get("condgan.precision", "fp32")
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_name = session.get_outputs()[0].name

    def _int(self, key: str, low: int = 1) -> int:
        value = self.metadata.get(key)
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise CondganRuntimeError(f"{self.path} has invalid condgan metadata: {key} is "
                                      f"{'missing' if value is None else repr(value)}, not a number") from None
        if n < low:
            raise CondganRuntimeError(f"{self.path} has invalid condgan metadata: {key} = {n}")
        return n

    def _expect_inputs(self, names: list[str]) -> None:
        if sorted(self.input_names) != sorted(names):
            raise CondganRuntimeError(f"{self.path} does not follow the condgan contract: its inputs are "
                                      f"{', '.join(self.input_names)}, not {', '.join(names)}")

    def _run(self, feeds: dict) -> np.ndarray:
        try:
            return self.session.run([self.output_name], feeds)[0]
        except Exception as e:
            raise CondganRuntimeError(f"onnxruntime failed to run {self.path}: {_first_line(e)}") from None

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()


class Generator(Model):
    """Class-conditional generator: (z [N, latent_dim], label [N]) -> images."""

    kind = "conditional"

    def __init__(self, session, path, metadata):
        super().__init__(session, path, metadata)
        self._expect_inputs(["z", "label"])
        self.latent_dim = self._int("condgan.latent_dim")
        self.num_classes = self._int("condgan.num_classes")
        try:
            names = json.loads(metadata.get("condgan.class_names") or "[]")
        except ValueError:
            names = []
        self.class_names = [str(n) for n in names] if len(names) == self.num_classes else []
        self.label_dtype = np.dtype(metadata.get("condgan.label_dtype", "int64"))

    def describe_classes(self) -> str:
        names = self.class_names or [str(i) for i in range(self.num_classes)]
        shown = ", ".join(f"{i} {n}" if self.class_names and n != str(i) else n for i, n in enumerate(names[:12]))
        return shown + (f", ... ({self.num_classes} in all)" if self.num_classes > 12 else "")

    def label_index(self, label) -> int:
        """A class index (int or numeric string) or a class name -> the index, checked against the classes."""
        if isinstance(label, (int, np.integer)) or (isinstance(label, str) and label.strip().lstrip("-").isdigit()):
            i = int(label)
            if not 0 <= i < self.num_classes:
                raise UsageError(f"label {i} is out of range: this model has {self.num_classes} classes, indices "
                                 f"0-{self.num_classes - 1} ({self.describe_classes()})")
            return i
        text = str(label).strip()
        for exact in (True, False):
            for i, name in enumerate(self.class_names):
                if name == text if exact else name.lower() == text.lower():
                    return i
        known = f"the classes are {self.describe_classes()}" if self.class_names else "the model has no class names"
        raise UsageError(f"unknown class {text!r}: {known} (or give an index 0-{self.num_classes - 1})")

    def class_name(self, index: int) -> str:
        return self.class_names[index] if self.class_names else str(index)

    def noise(self, n: int, seed: int | None = None) -> np.ndarray:
        """The app's noise: numpy.random.default_rng(seed).standard_normal((n, latent_dim), dtype=float32)."""
        return np.random.default_rng(seed).standard_normal((n, self.latent_dim), dtype=np.float32)

    def run(self, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Raw model call: float32 z [N, latent_dim], integer labels [N] -> float32 [N, C, H, W] in [-1, 1]."""
        return self._run({"z": np.ascontiguousarray(z, np.float32),
                          "label": np.ascontiguousarray(labels, self.label_dtype)})

    def generate(self, labels, z: np.ndarray | None = None, seed: int | None = None, n: int | None = None,
                 batch_size: int = 64) -> np.ndarray:
        """Images for `labels` (one label or a list; indices or class names) -> uint8 [N, H, W, C].

        One label with n=K gives K samples of that class. Without z, the noise is self.noise(N, seed)."""
        if isinstance(labels, (str, int, np.integer)):
            labels = [labels] * (1 if n is None else n)
        idx = np.array([self.label_index(v) for v in labels], dtype=np.int64)
        if len(idx) == 0:
            raise UsageError("nothing to generate: no labels given")
        z = self.noise(len(idx), seed) if z is None else np.asarray(z, np.float32)
        if z.shape != (len(idx), self.latent_dim):
            raise UsageError(f"z must have shape ({len(idx)}, {self.latent_dim}), not {z.shape}")
        step = max(1, batch_size)
        out = [self.run(z[i:i + step], idx[i:i + step]) for i in range(0, len(idx), step)]
        return images.to_uint8(np.concatenate(out))


class Translator(Model):
    """Image-to-image generator (pix2pix, CycleGAN): any N, H, W; C_in channels in, C channels out."""

    kind = "translation"

    def __init__(self, session, path, metadata):
        super().__init__(session, path, metadata)
        self._expect_inputs(["image"])
        self.in_channels = self._int("condgan.in_channels")
        self.direction = metadata.get("condgan.direction", "AtoB")
        # the generator's own padding multiple (exports before tiling existed say nothing: 1)
        self.tile_multiple = self._int("condgan.tile_multiple") if "condgan.tile_multiple" in metadata else 1

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw model call: float32 [N, C_in, H, W] in [-1, 1] -> float32 [N, C, H, W] in [-1, 1]."""
        return self._run({"image": np.ascontiguousarray(x, np.float32)})

    def translate(self, pixels: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """uint8 [H, W, C_in] or [N, H, W, C_in] ([H, W] too for 1 channel) -> uint8 [(N,) H, W, C]."""
        a = np.asarray(pixels)
        if a.dtype != np.uint8:
            raise UsageError(f"translate takes uint8 pixels, not {a.dtype}")
        single = a.ndim in (2, 3)
        if a.ndim == 2 and self.in_channels == 1:
            a = a[:, :, None]
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[-1] != self.in_channels or 0 in a.shape:
            raise UsageError(f"this model takes [N,] H x W x {self.in_channels} uint8 pixels, not shape "
                             f"{tuple(np.shape(pixels))}")
        step = max(1, batch_size)
        out = np.concatenate([images.to_uint8(self.run(images.to_float(a[i:i + step])))
                              for i in range(0, len(a), step)])
        return out[0] if single else out

    def translate_tiled(self, pixels: np.ndarray, tile: int = tiling.DEFAULT_TILE,
                        overlap: int = tiling.DEFAULT_OVERLAP, batch_size: int = tiling.DEFAULT_BATCH,
                        progress=None) -> np.ndarray:
        """uint8 [H, W, C_in] -> uint8 [H, W, C] in overlapping tiles blended without seams (see tiling)."""
        a = np.asarray(pixels)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != self.in_channels:
            raise UsageError(f"translate_tiled takes one uint8 H x W x {self.in_channels} image, not "
                             f"{a.dtype} {tuple(a.shape)}")
        return tiling.translate_tiled(self.run, a, tile, overlap, self.tile_multiple, batch_size, progress)


def read_metadata(path: str | Path, session=None) -> dict[str, str]:
    """The model's metadata_props as a dict, read through onnxruntime (no onnx package needed)."""
    session = session or open_session(path)
    return dict(session.get_modelmeta().custom_metadata_map)


def load(path: str | Path, provider: str | None = None, threads: int | None = None) -> Generator | Translator:
    """Open an exported condgan generator: a Generator (kind "conditional") or a Translator ("translation")."""
    session = open_session(path, provider, threads)
    meta = read_metadata(path, session)
    kind = meta.get("condgan.kind")
    if kind is None:
        raise CondganRuntimeError(f"{path} has no condgan metadata (condgan.kind); export the model with "
                                  f"python -m condgan.export")
    classes = {"conditional": Generator, "translation": Translator}
    if kind not in classes:
        raise CondganRuntimeError(f"{path} is a condgan {kind!r} model, which this runtime does not know")
    return classes[kind](session, Path(path), meta)
