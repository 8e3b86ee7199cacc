"""How condgan.ops picks an implementation: impl=, CONDGAN_OPS, ONNX export,
unsupported devices, and the just-in-time build (message, cache, stale lock,
one warning and the reference path when the build fails)."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from ops_helpers import REF_ONLY, needs_native, randn

from condgan import ops
from condgan.ops import _loader, _registration
from condgan.ops._build_lock import BuildLock

REPO = Path(__file__).resolve().parents[1]


def _is_native(y: torch.Tensor) -> bool:
    return "condgan" in type(y.grad_fn).__name__


def _leaf():
    return randn((2, 3, 4, 4), torch.float32, seed=1).requires_grad_()


@needs_native
def test_auto_uses_native_and_backend_says_so():
    assert _is_native(ops.bias_leaky_relu(_leaf()))
    assert ops.backend().startswith("native (")


def test_impl_ref_and_env_ref_use_the_reference(monkeypatch):
    assert not _is_native(ops.bias_leaky_relu(_leaf(), impl="ref"))
    monkeypatch.setenv("CONDGAN_OPS", "ref")
    assert not _is_native(ops.upsample2x(_leaf()))
    assert ops.backend() == "ref (CONDGAN_OPS=ref)"


@needs_native
def test_explicit_impl_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("CONDGAN_OPS", "ref")
    assert _is_native(ops.bias_leaky_relu(_leaf(), impl="native"))


def test_bad_impl_names_are_rejected(monkeypatch):
    with pytest.raises(ValueError):
        ops.bias_leaky_relu(_leaf(), impl="fast")
    monkeypatch.setenv("CONDGAN_OPS", "fast")
    with pytest.raises(ValueError):
        ops.bias_leaky_relu(_leaf())


@needs_native
def test_unsupported_inputs_fall_back_under_auto_and_fail_under_native(monkeypatch):
    x = torch.randn(2, 3, 4, 4, device="meta")
    assert ops.bias_leaky_relu(x).device.type == "meta"
    with pytest.raises(RuntimeError, match="no compiled kernel for device 'meta'"):
        ops.bias_leaky_relu(x, impl="native")
    # A negative slope flips the sign the backward reads; the reference handles it.
    assert not _is_native(ops.bias_leaky_relu(_leaf(), None, -0.1))
    monkeypatch.setenv("CONDGAN_OPS", "native")
    with pytest.raises(RuntimeError):
        ops.upsample2x(x)


@needs_native
def test_onnx_export_traces_the_reference(monkeypatch):
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert not _is_native(ops.bias_leaky_relu(_leaf(), impl="native"))
    assert not _is_native(ops.upsample2x_bias_leaky_relu(_leaf(), impl="auto"))


@needs_native
def test_a_library_without_every_operator_is_not_used(monkeypatch):
    # e.g. a prebuilt condgan._C older than an operator added to csrc/ops.cpp
    assert _loader.state().loaded, _loader.state().origin
    monkeypatch.setattr(_registration, "compiled_ops", lambda: set(_registration.RULES) - {"upsample2x"})
    with pytest.warns(RuntimeWarning, match="lacks operators upsample2x"):
        state = _loader._load()  # loads the same library again, without caching the result
    assert not state.loaded and state.origin.endswith("rebuild it")


# ------------------------------------------------ just-in-time build, in a subprocess
def _built_library() -> str:
    """Path of the library this process loaded (prebuilt or JIT-built)."""
    assert _loader.state().loaded, _loader.state().origin
    try:
        import condgan._C as prebuilt  # noqa: PLC0415

        return prebuilt.__file__
    except ImportError:
        from condgan.ops import _build_flags  # noqa: PLC0415

        key = _loader.build_key(_build_flags.cpu_capability(), _loader._want_cuda())
        return glob.glob(str(_loader.cache_root() / key / "condgan_ext*.so"))[0]


# Runs in a fresh interpreter: hides any prebuilt condgan._C, replaces the
# compiler with MODE ("copy": install an already built library; "fail": raise).
SCRIPT = textwrap.dedent("""
    import sys, shutil, warnings
    sys.modules["condgan._C"] = None
    import torch
    from torch.utils import cpp_extension
    MODE, LIBRARY = sys.argv[1], sys.argv[2]
    def fake_load(name, sources, build_directory, **kwargs):
        assert not any(s.endswith(".cu") for s in sources)
        if MODE == "fail":
            raise RuntimeError("compiler exploded")
        target = build_directory + "/" + name + ".so"
        shutil.copy(LIBRARY, target)
        torch.ops.load_library(target)
    cpp_extension.load = fake_load
    from condgan import ops
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = torch.randn(2, 3, 4, 4)
        for _ in range(3):
            y = ops.bias_leaky_relu(x, torch.randn(3))
            ops.upsample2x(y)
    ours = [w for w in caught if "condgan.ops" in str(w.message)]
    print("WARNINGS", len(ours))
    print("BACKEND", ops.backend())
""")


def _run_build(tmp_path, mode, timeout=120):
    env = {**os.environ, "CONDGAN_EXT_DIR": str(tmp_path), "CONDGAN_OPS": "auto"}
    library = _built_library() if mode == "copy" else "-"
    return subprocess.run([sys.executable, "-c", SCRIPT, mode, library], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@needs_native
def test_jit_build_prints_one_line_then_loads_from_cache(tmp_path):
    first = _run_build(tmp_path, "copy")
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("condgan: compiling") == 1
    assert "WARNINGS 0" in first.stdout and "BACKEND native (just-in-time build" in first.stdout
    second = _run_build(tmp_path, "copy")
    assert second.returncode == 0, second.stderr
    assert "condgan: compiling" not in second.stderr and "BACKEND native" in second.stdout


@pytest.mark.skipif(REF_ONLY, reason="exercises the native loader")
def test_failed_build_warns_once_and_falls_back_to_reference(tmp_path):
    result = _run_build(tmp_path, "fail")
    assert result.returncode == 0, result.stderr
    assert "WARNINGS 1" in result.stdout
    assert "BACKEND ref (extension unavailable: RuntimeError: compiler exploded)" in result.stdout


@needs_native
def test_stale_locks_from_a_killed_build_do_not_hang(tmp_path):
    _run_build(tmp_path, "fail")  # creates the keyed build directory
    (build_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (build_dir / "condgan.lock").write_text(f"{dead.pid} {os.uname().nodename} 0")
    (build_dir / "lock").write_text("")  # torch's own lock, left by the killed build
    result = _run_build(tmp_path, "copy", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "BACKEND native" in result.stdout


def test_build_lock_breaks_old_locks_and_times_out_on_live_ones(tmp_path):
    path = tmp_path / "condgan.lock"
    path.write_text(f"{os.getpid()} {os.uname().nodename} 0")  # alive owner: us
    with pytest.raises(TimeoutError):
        with BuildLock(path, wait_limit=0.5):
            pass
    old = time.time() - 3600
    os.utime(path, (old, old))
    with BuildLock(path, stale_after=600, wait_limit=5):
        assert path.read_text().split()[0] == str(os.getpid())
    assert not path.exists()


@needs_native
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the OpenMP build is Linux-only")
def test_cpu_kernels_are_compiled_with_openmp():
    # Without -fopenmp, at::parallel_for's pragma is ignored and every kernel runs on one
    # thread; the compiled code then never calls into the OpenMP runtime.
    import shutil

    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    ops.bias_leaky_relu(torch.randn(2, 3, 4, 4), torch.randn(3))
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "condgan_ext" in line or "condgan/_C" in line}
    assert libs, "the compiled extension is not mapped into this process"
    for lib in libs:
        symbols = subprocess.run([nm, "-D", "--undefined-only", lib], capture_output=True, text=True,
                                 check=True).stdout
        assert "GOMP_parallel" in symbols, f"{lib} was built without OpenMP"
