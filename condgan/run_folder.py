"""A run folder's life: one writer at a time (an exclusive lock), and a log that matches the weights.

The lock is an advisory `fcntl.flock` on RUN/.lock, held from before the first file is written until the
process exits. The kernel drops it when the holder dies in any way (kill -9 included), so a lock left by a
killed run is stale by construction; the file keeps the holder's PID and host for the refusal message.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from . import checkpoint as ckpt_io
from .errors import CondganError

LOCK_NAME = ".lock"
METRICS = "metrics.jsonl"

try:
    import fcntl
except ImportError:  # Windows: no flock; fall back to an O_EXCL file with a PID liveness check
    fcntl = None


class RunLocked(CondganError):
    """Another process is writing to this run folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    pid, host = info.get("pid"), info.get("host")
    if not pid:
        return "another process"
    return f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")


class RunLock:
    """Exclusive lock on a run folder for the life of one training process (re-entrant within it)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd = None
        self._made_dir = False

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        self._made_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return self._acquire_exclusive_file()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._made_dir = False
            raise RunLocked(f"{self.run_dir} is in use by {_holder(self.path)}, which is training into it; "
                            f"wait for it to finish or stop it, or choose another --out") from None
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        return self

    def _acquire_exclusive_file(self) -> RunLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                try:
                    pid = json.loads(self.path.read_text() or "{}").get("pid")
                except (OSError, ValueError):
                    pid = None
                if pid and _pid_alive(int(pid)):
                    raise RunLocked(f"{self.run_dir} is in use by {_holder(self.path)}, which is training into "
                                    f"it; wait for it to finish or stop it, or choose another --out") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            self._fd = fd
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
            return self
        raise RunLocked(f"could not lock {self.run_dir}")

    def release(self) -> None:
        """Unlock; a folder this lock created and nothing else wrote into is removed again."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        empty = self._made_dir and [p.name for p in self.run_dir.iterdir()] == [LOCK_NAME]
        if empty:
            self.path.unlink(missing_ok=True)
        if fcntl is None:
            os.close(fd)
            self.path.unlink(missing_ok=True)
        else:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        if empty:
            try:
                self.run_dir.rmdir()
            except OSError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def append_metrics(run_dir: Path, record: dict) -> None:
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(run_dir: Path, step: int) -> int:
    """Drop log lines written after the checkpoint at `step` (they describe work the resume repeats).

    Returns how many lines were dropped; the file is rewritten atomically, and only when something changes.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return 0
    keep, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            after = int(record.get("step", 0)) > step
        except (ValueError, TypeError, AttributeError):
            after = True  # a torn last line from a killed process
        if after:
            dropped += 1
        else:
            keep.append(line)
    if dropped:
        with ckpt_io.atomic_write(path) as f:
            f.write("".join(line + "\n" for line in keep).encode())
    return dropped
