"""The boundary every condgan command shares: its parser, its output-path checks, and one place where
errors become sentences.

    from condgan.cli import Parser, command, writable_file

    @command
    def main(argv=None):
        p = Parser(prog="condgan.thing")
        ...

`command` turns condgan's own errors, operating-system errors (full disk, permissions, a file where a folder
should be), running out of memory (CPU or GPU) and Ctrl-C into one line on stderr and a non-zero exit. A
programming error still shows its traceback: those are bugs to report, not input to correct.
"""
from __future__ import annotations

import argparse
import errno
import functools
import os
import re
import sys
import tempfile
from pathlib import Path

from .errors import CondganError

#: exit status for errors of the environment (disk, permissions, memory), as opposed to bad input (2)
ENVIRONMENT_EXIT = 1


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) and exits 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive(flag: str, value, maximum=None):
    """Raise CondganError unless `value` is a positive number (at most `maximum`)."""
    if value is None or value <= 0:
        raise CondganError(f"{flag} must be positive, got {value}")
    if maximum is not None and value > maximum:
        raise CondganError(f"{flag} must be at most {maximum}, got {value}")
    return value


# ---- output paths, checked before the work starts --------------------------------------------------------
def _probe_dir(folder: Path, what: str) -> None:
    """Raise CondganError unless a file can be created in `folder`. Folders made for the test are removed
    again, so a check that passes leaves nothing behind (and one that fails leaves nothing either)."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise CondganError(f"cannot write {what}: {existing} is a file, not a folder")
    made = []
    try:
        for d in reversed([folder, *folder.parents]):
            if not d.exists():
                d.mkdir()
                made.append(d)
        fd, probe = tempfile.mkstemp(prefix=".condgan-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CondganError(f"cannot write {what}: {describe_os_error(e, e.filename or folder)}") from None
    finally:
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:
                pass


def writable_file(path, flag: str) -> Path:
    """Check that `path` can be written as a file (its folder is created); returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise CondganError(f"{flag} {path} is a folder; give a file name")
    _probe_dir(path.parent if str(path.parent) else Path("."), f"{flag} {path}")
    return path


def writable_dir(path, flag: str) -> Path:
    """Check that `path` is (or can become) a folder that files can be written into; returns it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CondganError(f"{flag} {path} is a file; give a folder")
    _probe_dir(path, f"{flag} {path}")
    return path


# ---- errors as sentences -------------------------------------------------------------------------------
_OS_SENTENCES = {
    errno.ENOSPC: "no space left on the device{at}; free some space and run again (files written before are "
                  "intact)",
    errno.EDQUOT: "disk quota exceeded{at}; free some space and run again (files written before are intact)",
    errno.EACCES: "permission denied{at}",
    errno.EPERM: "operation not permitted{at}",
    errno.EROFS: "read-only file system{at}",
    errno.ENOENT: "{path} does not exist",
    errno.EISDIR: "{path} is a folder where a file was expected",
    errno.ENOTDIR: "{path}: part of that path is a file, not a folder",
    errno.EEXIST: "{path} already exists",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer --workers",
}


def describe_os_error(e: OSError, path=None) -> str:
    """One sentence for an operating-system error, naming the file when known."""
    name = path if path is not None else (e.filename if e.filename is not None else None)
    template = _OS_SENTENCES.get(e.errno)
    if template is None or ("{path}" in template and name is None):
        text = e.strerror or str(e) or type(e).__name__
        return f"{text} ({name})" if name is not None else text
    return template.format(path=name, at=f" writing {name}" if name is not None else "")


_ALLOC = re.compile(r"tried to allocate ([0-9]+ bytes|[0-9.]+ ?[KMGT]?i?B)", re.IGNORECASE)


def out_of_memory(e: BaseException) -> bool:
    """True for allocation failures: MemoryError, torch's OutOfMemoryError, the CPU allocator's RuntimeError."""
    if isinstance(e, MemoryError):
        return True
    if type(e).__name__ == "OutOfMemoryError":
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


def describe_oom(e: BaseException) -> str:
    m = _ALLOC.search(str(e))
    size = m.group(1) if m else ""
    if size.endswith(" bytes"):
        size = f"{int(size.split()[0]) / 2**30:,.1f} GiB"
    where = "GPU" if "CUDA" in str(e) or "MPS" in str(e) else "CPU"
    tried = f" (an allocation of {size} failed)" if size else ""
    return (f"out of {where} memory{tried}; lower --batch-size or the image size (or the number of images "
            f"asked for) and run again")


_TOO_SMALL = ("Expected more than 1 value per channel when training", "Expected more than 1 spatial element",
              "Kernel size can't be greater than actual input size", "Output size is too small")


def too_small(e: BaseException) -> bool:
    """True for the errors torch raises when images are too small for a network's depth."""
    return isinstance(e, (RuntimeError, ValueError)) and any(t in str(e) for t in _TOO_SMALL)


def describe_too_small(e: BaseException) -> str:
    return ("the images are too small for the networks' depth (" + str(e).splitlines()[0].rstrip(".") + "); "
            "use larger images (--crop-size, --image-size) or shallower nets (--unet-depth, --d-layers, "
            "--generator)")


def _prog(fn) -> str:
    spec = getattr(sys.modules.get(fn.__module__), "__spec__", None)
    name = spec.name if spec else fn.__module__
    return name.removesuffix(".__main__")


def command(fn):
    """Wrap a CLI main(argv): errors become `prog: error: sentence` on stderr and SystemExit(code)."""

    @functools.wraps(fn)
    def wrapper(argv=None):
        prog = _prog(fn)

        def fail(message: str, code: int):
            print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
            raise SystemExit(code) from None

        try:
            return fn(argv)
        except CondganError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except OSError as e:
            fail(describe_os_error(e), ENVIRONMENT_EXIT)
        except (MemoryError, RuntimeError, ValueError) as e:
            if out_of_memory(e):
                fail(describe_oom(e), ENVIRONMENT_EXIT)
            if too_small(e):
                fail(describe_too_small(e), 2)
            raise

    return wrapper
