"""The errors the runtime raises: one readable sentence each, with the exit code the CLI uses."""
from __future__ import annotations


class CondganRuntimeError(Exception):
    """A problem with the model, an input file or an output path (CLI exit code 1)."""

    exit_code = 1


class UsageError(CondganRuntimeError):
    """The request does not fit the model or the options are wrong (CLI exit code 2)."""

    exit_code = 2
