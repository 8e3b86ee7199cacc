"""Copying an HTTP response body to a file in chunks, with a progress bar (datasets and weights alike)."""
from __future__ import annotations

import http.client

from tqdm.auto import tqdm

CHUNK = 1 << 20


class BrokenDownload(Exception):
    """The connection broke mid-body; `done` bytes (counting the resumed part) had arrived."""

    def __init__(self, done: int, cause: BaseException):
        super().__init__(str(cause))
        self.done, self.cause = done, cause


def copy_body(response, out, *, desc: str, progress: bool, total: int | None = None, initial: int = 0,
              on_chunk=None) -> int:
    """Copy an HTTP response body into the open file `out` in chunks, with a progress bar; return the byte
    count reached (from `initial`). `on_chunk(chunk)` sees every chunk (for a running checksum)."""
    done = initial
    with tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
              disable=not progress, dynamic_ncols=True) as bar:
        try:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)
                done += len(chunk)
                bar.update(len(chunk))
        except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
            raise BrokenDownload(done, e) from None
    return done
