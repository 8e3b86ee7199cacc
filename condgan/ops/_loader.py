"""Finds or builds the compiled extension, once per process.

Order: an extension built by setup.py (`condgan._C`), else a just-in-time
build of csrc/ with ninja, cached per source hash / torch / Python / CPU
capability so later processes load it instantly. If both fail, one warning
is issued and the reference path is used; `backend()` reports the reason.
"""
from __future__ import annotations

import glob
import hashlib
import importlib
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import _build_flags
from ._build_lock import BuildLock

CSRC = Path(__file__).resolve().parents[2] / "csrc"
LIB_NAME = "condgan_ext"


@dataclass(frozen=True)
class ExtensionState:
    loaded: bool
    origin: str  # where the kernels came from, or why there are none
    devices: tuple = ()  # device types with compiled kernels


_state: ExtensionState | None = None
_state_lock = threading.Lock()


@torch.compiler.assume_constant_result  # first use may come under torch.compile
def state() -> ExtensionState:
    global _state
    if _state is None:
        with _state_lock:
            if _state is None:
                _state = _load()
    return _state


def _load() -> ExtensionState:
    try:
        importlib.import_module("condgan._C")
        origin = "prebuilt condgan._C"
    except ImportError as prebuilt_error:
        try:
            origin = _load_jit()
        except Exception as error:  # noqa: BLE001 - any failure means "use the reference"
            first_line = (str(error).strip().splitlines() or [""])[0][:300]
            reason = f"{type(error).__name__}: {first_line}"
            if not isinstance(prebuilt_error, ModuleNotFoundError):
                reason += f" (prebuilt condgan._C unusable: {prebuilt_error})"
            warnings.warn(
                f"condgan.ops: compiled extension unavailable ({reason}); using the pure-PyTorch reference ops",
                RuntimeWarning,
                stacklevel=4,
            )
            return ExtensionState(False, f"extension unavailable: {reason}")
    from . import _registration

    missing = sorted(set(_registration.RULES) - _registration.compiled_ops())
    if missing:  # e.g. a prebuilt condgan._C older than an operator added to csrc/ops.cpp
        reason = f"{origin} lacks operators {', '.join(missing)}; rebuild it"
        warnings.warn(f"condgan.ops: {reason}; using the pure-PyTorch reference ops", RuntimeWarning, stacklevel=4)
        return ExtensionState(False, f"extension unusable: {reason}")
    _registration.register()
    return ExtensionState(True, origin, _devices_with_kernels(_registration.RULES))


def _devices_with_kernels(ops) -> tuple:
    """Device types where every operator has a kernel."""
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return tuple(d for d, key in (("cpu", "CPU"), ("cuda", "CUDA"))
                 if all(has(f"condgan::{name}", key) for name in ops))


def cache_root() -> Path:
    if os.environ.get("CONDGAN_EXT_DIR"):
        return Path(os.environ["CONDGAN_EXT_DIR"])
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"]) / "condgan"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "condgan" / "ext"


def _want_cuda() -> bool:
    if os.environ.get("CONDGAN_EXT_CUDA", "1") == "0" or not torch.cuda.is_available():
        return False
    from torch.utils.cpp_extension import CUDA_HOME

    return CUDA_HOME is not None and any((CSRC / "cuda").glob("*.cu"))


def build_key(capability: str, with_cuda: bool) -> str:
    h = hashlib.sha256()
    h.update(f"{torch.__version__}|{sys.version_info[:2]}|{capability}|{with_cuda}|".encode())
    h.update(repr((_build_flags.cpu_flags(capability), _build_flags.cuda_flags(),
                   _build_flags.link_flags())).encode())
    for path in _build_flags.all_inputs(CSRC):
        h.update(path.relative_to(CSRC).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _load_jit() -> str:
    if not (CSRC / "ops.cpp").exists():
        raise FileNotFoundError(f"no C++ sources at {CSRC} (package installed without csrc/)")
    capability = _build_flags.cpu_capability()
    with_cuda = _want_cuda()
    build_dir = cache_root() / build_key(capability, with_cuda)
    stamp = build_dir / "built.ok"
    kinds = f"CPU {capability}" + (" + CUDA" if with_cuda else "")
    origin = f"just-in-time build, {kinds}, cached in {build_dir}"
    if not stamp.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        with BuildLock(build_dir / "condgan.lock"):
            if not stamp.exists():  # else another process finished it while we waited
                _compile(build_dir, capability, with_cuda)
                stamp.write_text(f"{torch.__version__}\n")
                return origin  # torch's loader already loaded the fresh library
    libraries = glob.glob(str(build_dir / f"{LIB_NAME}*.so")) + glob.glob(str(build_dir / f"{LIB_NAME}*.pyd"))
    if not libraries:
        raise FileNotFoundError(f"{stamp} exists but no library next to it")
    torch.ops.load_library(libraries[0])
    return origin


def _import_cpp_extension():
    """torch.utils.cpp_extension, without its import-time warning about a missing CUDA runtime on CPU machines."""
    import logging

    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    if not torch.cuda.is_available():
        log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        log.setLevel(level)
    return cpp_extension


def _compile(build_dir: Path, capability: str, with_cuda: bool) -> None:
    cpp_extension = _import_cpp_extension()

    # We hold the directory lock, so torch's own lock file here can only be
    # left over from a killed build; removing it keeps torch from waiting on it.
    (build_dir / "lock").unlink(missing_ok=True)
    print(f"condgan: compiling the condgan._C extension once for this machine ({capability}"
          f"{' + CUDA' if with_cuda else ''}) into {build_dir}", file=sys.stderr, flush=True)
    cpp_extension.load(
        name=LIB_NAME,
        sources=[str(p) for p in _build_flags.sources(CSRC, with_cuda)],
        extra_cflags=_build_flags.cpu_flags(capability),
        extra_ldflags=_build_flags.link_flags(),
        extra_cuda_cflags=_build_flags.cuda_flags(),
        build_directory=str(build_dir),
        with_cuda=with_cuda,
        is_python_module=False,
        verbose=False,
    )
