"""Stopping a run between batches: SIGINT/SIGTERM become a request the training loop reads."""
from __future__ import annotations

import signal
import threading


class StopRequests:
    """SIGINT/SIGTERM set a flag that the loop reads between batches, so it can save a consistent checkpoint.

    The first signal only asks; a second SIGINT interrupts at once (the
    previous checkpoint stays intact, since checkpoints are written atomically).
    Handlers are installed only in the main thread and restored on exit.
    """

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        self.signum = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
