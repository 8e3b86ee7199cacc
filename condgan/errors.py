"""User-facing errors: one clear sentence, non-zero exit, no traceback."""
from __future__ import annotations

import functools
import sys


class CondganError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""

    exit_code = 2


class DataError(CondganError):
    """Missing, unreadable or inconsistent data."""


class CheckpointError(CondganError):
    """A checkpoint or run directory that cannot be used."""


class TrainingDiverged(CondganError):
    """A loss became NaN or infinite."""

    exit_code = 3


class Interrupted(CondganError):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def cli_entry(fn):
    """Wrap a CLI main(): CondganError and Ctrl-C become one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(argv=None):
        spec = getattr(sys.modules.get(fn.__module__), "__spec__", None)
        prog = spec.name if spec else fn.__module__
        try:
            return fn(argv)
        except CondganError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
