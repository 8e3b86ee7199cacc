"""Device, precision and memory layout: one choice for every command (training and inference alike).

Inference commands import this, not the training loop.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .errors import CondganError


def pick_device(name: str) -> torch.device:
    """auto (cuda > mps > cpu), or the named device, refused in one sentence when it is not there."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise CondganError(f"--device {name!r} is not a device name (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise CondganError(f"--device {name!r} is not supported (use auto, cpu, cuda, cuda:N or mps)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CondganError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CondganError(f"--device {name} was asked for, but there are {torch.cuda.device_count()} "
                               f"CUDA GPU(s) here (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise CondganError("--device mps was asked for, but MPS is not available here")
    return dev


ALLOCATOR_ENV = "CONDGAN_MALLOC_TUNING"
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_allocator_tuned = False


def tune_cpu_allocator(env=None, libc=None) -> bool:
    """Keep freed memory in the process for reuse instead of returning it to the OS (glibc only).

    A training step frees and re-allocates the same large buffers every step (bf16 copies of the weights,
    their gradients, the activations). glibc serves blocks over 32 MB with fresh mmap()s and gives them back
    on free, so each step can page-fault and zero hundreds of megabytes again (the weight-gradient casts of
    a bf16 pix2pix step ran 4-5x slower than the same casts forward). With mmap off and no trimming, the
    heap grows to the step's peak once and is reused: measured on an AVX-512 BF16 CPU, the bf16 pix2pix
    step at 256x256 batch 8 took 1.21-1.29 s instead of 1.30-1.36 s; at batch 1 the difference was within
    the noise (BENCHMARKS.md). The process's resident memory then stays at that peak, which a training
    process reaches every step anyway. Called once by the CPU training step; CONDGAN_MALLOC_TUNING=0 (or
    off, false, no, as for CONDGAN_PROBE) turns it off. Returns whether it is in effect."""
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if (os.environ if env is None else env).get(ALLOCATOR_ENV, "1").strip().lower() in ("0", "off", "false", "no"):
        return False
    if libc is None:
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    _allocator_tuned = ok
    return ok


def cpu_has_bf16_units() -> bool:
    """True on CPUs with AMX tiles (Intel Xeon since Sapphire Rapids): bf16 convolutions run several times
    faster there than fp32 ones. Without them bf16 autocast on the CPU is no faster."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check and check())


def amp_dtype(setting: str, device: torch.device, bf16_on_cpu: bool = False):
    """None (full precision) or the autocast dtype for this device.

    auto: bf16 on CUDA GPUs that support it, else fp16 (with a GradScaler); on CPUs with AMX, bf16 for
    the models that set `bf16_on_cpu`; full precision everywhere else.
    """
    if setting == "off":
        return None
    if setting == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and bf16_on_cpu and cpu_has_bf16_units() else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def memory_layout(channels_last: bool, device: torch.device, channels_last_on_cpu: bool) -> torch.memory_format:
    """channels_last where asked for: on GPUs always, on CPU only for models where it measured faster."""
    use = channels_last and (device.type != "cpu" or channels_last_on_cpu)
    return torch.channels_last if use else torch.contiguous_format


def precision_text(dtype) -> str:
    """The device line's precision part: ", bf16 mixed precision" or "" for full precision."""
    return {torch.bfloat16: ", bf16 mixed precision", torch.float16: ", fp16 mixed precision"}.get(dtype, "")


DTYPE_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Setting:
    """One concrete precision and memory layout a training step or a generator forward runs in, and why
    it was chosen (`how`: empty for the fixed rule, else e.g. "probed: ...", shown in the device line)."""

    dtype: torch.dtype | None = None
    channels_last: bool = False
    how: str = ""

    @property
    def layout(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def name(self) -> str:
        """e.g. "bf16 channels-last", "fp32 NCHW"."""
        return f"{DTYPE_NAMES[self.dtype]} {'channels-last' if self.channels_last else 'NCHW'}"

    def text(self) -> str:
        """The device line's part, e.g. ", bf16 mixed precision, channels-last (probed: ...)"."""
        return (precision_text(self.dtype) + (", channels-last" if self.channels_last else "")
                + (f" ({self.how})" if self.how else ""))


def rule(amp: str, channels_last: bool, device: torch.device, bf16_on_cpu: bool = False,
         channels_last_on_cpu: bool = True) -> Setting:
    """The fixed rule (no measurement): amp_dtype and memory_layout above."""
    layout = memory_layout(channels_last, device, channels_last_on_cpu)
    return Setting(amp_dtype(amp, device, bf16_on_cpu), layout == torch.channels_last)


def autocast(device: torch.device, dtype):
    """Autocast to `dtype` on `device`'s type, or nothing for full precision."""
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
