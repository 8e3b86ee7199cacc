"""Sources and compiler flags of the condgan._C extension.

Shared by the just-in-time build (condgan/ops/_loader.py) and setup.py, which
loads this file by path; so it imports nothing from condgan and imports torch
lazily.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

CAPABILITIES = ("default", "avx2")


def cpu_capability() -> str:
    """Which at::vec instruction set the CPU kernels are compiled for.

    Follows the capability torch detects on this machine (so a build cache is
    never shared between machines that need different code: the capability is
    part of the cache key); CONDGAN_CPU_CAPABILITY=default|avx2 overrides it,
    e.g. `default` when building a wheel for other machines.
    """
    forced = os.environ.get("CONDGAN_CPU_CAPABILITY", "").strip().lower()
    if forced:
        if forced not in CAPABILITIES:
            raise ValueError(f"CONDGAN_CPU_CAPABILITY must be one of {CAPABILITIES}, got {forced!r}")
        return forced
    import torch

    x86 = platform.machine().lower() in ("x86_64", "amd64")
    detected = torch.backends.cpu.get_cpu_capability()
    return "avx2" if x86 and detected in ("AVX2", "AVX512") else "default"


def openmp_flags() -> list[str]:
    """at::parallel_for runs on torch's OpenMP pool only in code compiled with OpenMP.

    Without -fopenmp its `#pragma omp parallel` is ignored and every kernel runs
    on one thread. On Linux, linking with -fopenmp records libgomp.so.1, the
    runtime torch has already loaded, so both share one thread pool. Elsewhere
    (macOS clang has no -fopenmp) the kernels stay single-threaded.
    """
    return ["-fopenmp"] if platform.system() == "Linux" else []


def cpu_flags(capability: str) -> list[str]:
    if capability == "avx2":
        return ["-O3", "-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2",
                *openmp_flags()]
    return ["-O3", "-DCPU_CAPABILITY=DEFAULT", *openmp_flags()]


def link_flags() -> list[str]:
    return openmp_flags()


def cuda_flags() -> list[str]:
    # Architectures come from TORCH_CUDA_ARCH_LIST (read by torch's builder).
    return ["-O3"]


def sources(csrc: Path, with_cuda: bool) -> list[Path]:
    files = [csrc / "ops.cpp", *sorted((csrc / "cpu").glob("*.cpp"))]
    if with_cuda:
        files += sorted((csrc / "cuda").glob("*.cu"))
    return files


def all_inputs(csrc: Path) -> list[Path]:
    """Every file whose content must key the build cache (sources and headers)."""
    return sorted(p for p in csrc.rglob("*") if p.suffix in (".cpp", ".cu", ".h", ".cuh"))
