"""An inter-process lock for the extension build directory that never hangs
on a lock left behind by a killed build."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BuildLock:
    """Exclusive lock file holding "pid host time" of its owner.

    A lock is stale, and is broken, when its owner on this host is dead, when
    it is older than `stale_after` seconds (CONDGAN_EXT_LOCK_STALE_S, default
    600), or when it stays unreadable. Waiting gives up after `wait_limit`.
    """

    def __init__(self, path: Path, stale_after: float | None = None, wait_limit: float = 1800.0):
        self.path = Path(path)
        if stale_after is None:
            stale_after = float(os.environ.get("CONDGAN_EXT_LOCK_STALE_S", 600))
        self.stale_after = stale_after
        self.wait_limit = wait_limit
        self._token = f"{os.getpid()} {socket.gethostname()} {time.time():.6f}"

    def __enter__(self) -> "BuildLock":
        deadline = time.monotonic() + self.wait_limit
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._break_if_stale()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"timed out waiting for the build lock {self.path}") from None
                time.sleep(0.25)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(self._token)
            return self

    def __exit__(self, *exc) -> None:
        try:
            if self.path.read_text() == self._token:
                self.path.unlink()
        except OSError:
            pass

    def _break_if_stale(self) -> None:
        try:
            content = self.path.read_text()
            age = time.time() - self.path.stat().st_mtime
        except OSError:
            return  # released meanwhile
        if not self._is_stale(content, age):
            return
        # Re-read right before removing, so a lock freshly taken by another
        # waiter is not removed on the strength of its predecessor's state.
        try:
            if self.path.read_text() == content:
                self.path.unlink()
        except OSError:
            pass

    def _is_stale(self, content: str, age: float) -> bool:
        if age > self.stale_after:
            return True
        parts = content.split()
        if len(parts) != 3 or not parts[0].isdigit():
            return age > 5.0  # a writer may be between create and write
        pid, host = int(parts[0]), parts[1]
        return host == socket.gethostname() and not _pid_alive(pid)
