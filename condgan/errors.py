"""User-facing errors: one clear sentence, non-zero exit, no traceback (condgan.cli prints them)."""
from __future__ import annotations


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
