"""Official pix2pix and CycleGAN dataset archives: download into a cache and extract safely.

Layout under a root folder, per kind ("pix2pix" or "cyclegan"):

    root/<kind>/downloads/<file>          the archive, kept so it can be extracted again
    root/<kind>/downloads/<file>.sha256   its digest, recorded at first download when none is pinned
    root/<kind>/<subdir>/                 the extracted dataset; `.complete` inside marks it usable

A download streams into `<file>.part` and resumes from it with a Range request.
Extraction checks every member first (no absolute paths, no `..`, no links or
special files, no encrypted zip members) and the sizes the headers declare: at
most MAX_EXTRACT_BYTES in all and MAX_MEMBERS members, and no member of a zip
(nor a whole archive) expanding more than MAX_RATIO times (a tar.gz records no
compressed size per member, so there the whole archive's ratio is checked). It
then writes into a temporary sibling folder, stopping if a member holds more
than its header declared, and renames the folder into place, so the final
folder is either complete or absent. A refused archive is deleted from the
cache with its recorded digest.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from .. import __version__
from ..errors import DataError
from .http import CHUNK, BrokenDownload, copy_body

def default_root() -> Path:
    """Where downloaded datasets are cached: $CONDGAN_DATA, else ~/.cache/condgan/data."""
    env = os.environ.get("CONDGAN_DATA")
    return Path(env) if env else Path.home() / ".cache" / "condgan" / "data"


# kind -> (environment variable overriding the base URL, default base URL)
BASE_URLS = {
    "pix2pix": ("CONDGAN_PIX2PIX_URL", "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/"),
    "cyclegan": ("CONDGAN_CYCLEGAN_URL", "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/"),
}
MARKER = ".complete"
TIMEOUT_S = 30
MAX_EXTRACT_BYTES = 64 << 30  # 64 GiB in all; the largest official archive (edges2handbags) holds about 9 GiB
MAX_RATIO = 100  # uncompressed / compressed size: images barely compress, deflated zeros reach about 1000
RATIO_FLOOR = 1 << 20  # members (and archives) expanding to less than this are not ratio-checked
MAX_MEMBERS = 1_000_000  # the largest official archive has about 140,000
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)

CITYSCAPES_NOTE = ("The Cityscapes data may only be used under the Cityscapes licence: non-commercial use, "
                   "after registering at https://www.cityscapes-dataset.com.")


@dataclass(frozen=True)
class Archive:
    name: str  # e.g. "maps"
    url: str  # default full URL of the .tar.gz / .zip; the base is overridable per kind (BASE_URLS)
    sha256: str | None  # pinned hex digest, or None to record the digest at first download
    subdir: str  # top folder the archive extracts to
    note: str = ""  # printed before downloading (licence terms)
    kind: str = "pix2pix"  # "pix2pix" or "cyclegan": the cache subfolder and the base-URL variable

    def __post_init__(self):
        if self.kind not in BASE_URLS:
            raise ValueError(f"Archive kind must be one of {', '.join(BASE_URLS)}, not {self.kind!r}")
        if not self.subdir or self.subdir in (".", "..") or "/" in self.subdir or "\\" in self.subdir:
            raise ValueError(f"Archive subdir must be a single folder name, not {self.subdir!r}")

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def resolved_url(self) -> str:
        """The URL to download from: `url`, or the kind's environment base URL plus the file name."""
        base = os.environ.get(BASE_URLS[self.kind][0])
        return f"{base.rstrip('/')}/{self.filename}" if base else self.url


def _table(kind: str, names: list[str], extension: str, notes: dict[str, str] | None = None) -> dict[str, Archive]:
    base = BASE_URLS[kind][1]
    notes = notes or {}
    return {n: Archive(n, f"{base}{n}{extension}", None, n, notes.get(n, ""), kind) for n in names}


PIX2PIX_ARCHIVES = _table("pix2pix", ["maps", "facades", "edges2shoes", "edges2handbags", "night2day", "cityscapes"],
                          ".tar.gz", {"cityscapes": CITYSCAPES_NOTE})
CYCLEGAN_ARCHIVES = _table("cyclegan", ["horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo",
                                        "cezanne2photo", "ukiyoe2photo", "vangogh2photo", "maps", "facades",
                                        "iphone2dslr_flower"], ".zip")


def fetch(archive: Archive, root: Path, progress: bool = True, max_bytes: int | None = None,
          max_ratio: float | None = None) -> Path:
    """Return root/<kind>/<archive.subdir> (the extracted dataset folder).

    Downloads and extracts only when the folder is not already complete; a cached
    dataset needs no network access. `max_bytes` and `max_ratio` override
    MAX_EXTRACT_BYTES and MAX_RATIO.
    """
    kind_dir = Path(root).expanduser() / archive.kind
    target = kind_dir / archive.subdir
    if (target / MARKER).is_file():
        return target
    if target.exists():
        raise DataError(f"{target} exists but is not marked complete: delete it to download it again, or create "
                        f"an empty {MARKER} file in it if it holds the full dataset")
    path = kind_dir / "downloads" / archive.filename
    if not path.is_file():
        if archive.note:
            print(archive.note)
        _download(archive.resolved_url(), path, target, progress)
    digest = _verify(archive, path)
    _extract(path, archive.subdir, target, digest, max_bytes, max_ratio)
    return target


def _download(url: str, path: Path, target: Path, progress: bool) -> None:
    """Stream `url` into `path` through `path.part`, resuming a previous partial download."""
    part = path.with_name(path.name + ".part")
    unreachable = (f"; download it by hand to {path}, or place the extracted dataset at {target} with an empty "
                   f"{MARKER} file in it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": f"condgan/{__version__}"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:  # the partial file does not fit the server's file: start over
                part.unlink()
                _download(url, path, target, progress)
                return
            raise DataError(f"cannot download {url} (HTTP {e.code} {e.reason}){unreachable}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            raise DataError(f"cannot download {url} ({reason}){unreachable}") from None
        with response:
            resumed = bool(offset and response.status == 206
                           and re.match(rf"bytes {offset}-", response.headers.get("Content-Range", "")))
            if not resumed:
                offset = 0
            length = response.headers.get("Content-Length")
            expected = offset + int(length) if length and length.isdigit() else None
            with open(part, "ab" if resumed else "wb") as out:
                try:
                    done = copy_body(response, out, desc=path.name, progress=progress, total=expected, initial=offset)
                except BrokenDownload as e:
                    raise DataError(f"download of {url} was interrupted after {e.done} bytes ({e.cause}); run "
                                    f"again to resume it") from None
        if expected is not None and done != expected:
            raise DataError(f"download of {url} stopped after {done} of {expected} bytes; run again to resume it")
        os.replace(part, path)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DataError(f"not enough disk space in {path.parent} to download {url}") from None
        raise DataError(f"cannot write {part}: {e.strerror or e}") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _verify(archive: Archive, path: Path) -> str:
    """Check `path` against the pinned or recorded digest (recording it when there is none); return the digest."""
    record = _record_path(path)
    expected = archive.sha256
    if expected is None and record.is_file():
        expected = (record.read_text().split() or [""])[0]
    actual = _sha256(path)
    if expected is None:
        try:
            record.write_text(f"{actual}  {path.name}\n")
        except OSError as e:
            raise DataError(f"cannot write {record}: {e.strerror or e}") from None
        print(f"sha256 of {path.name}: {actual}")
    elif actual != expected.lower():
        path.unlink()
        if archive.sha256:
            raise DataError(f"{path} does not match its pinned sha256 ({actual} instead of {expected}); it was "
                            f"deleted, run again to download it again")
        raise DataError(f"{path} does not match the sha256 recorded at its first download in {record} ({actual} "
                        f"instead of {expected}); it was deleted, run again to download it again, or delete "
                        f"{record.name} too if the file on the server has changed")
    return actual


def _member_path(name: str) -> str | None:
    """The member's normalized relative path, or None when it is absolute or escapes the target folder."""
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


class Refused(DataError):
    """An archive that must not be extracted (unsafe member, too large, not the expected archive)."""


def _refuse(path: Path, member: str, why: str) -> DataError:
    return Refused(f"refusing to extract {path}: member {member!r} {why}")


def _human(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


class _Sizes:
    """Running checks of the sizes members declare, before anything is written."""

    def __init__(self, path: Path, max_bytes: int, max_ratio: float):
        self.path, self.max_bytes, self.max_ratio = path, max_bytes, max_ratio
        self.archive_size, self.total, self.count = max(path.stat().st_size, 1), 0, 0

    def add(self, name: str, size: int, compressed: int | None = None) -> None:
        self.count += 1
        if self.count > MAX_MEMBERS:
            raise Refused(f"refusing to extract {self.path}: it has more than {MAX_MEMBERS:,} members")
        if size > RATIO_FLOOR and compressed is not None and size > self.max_ratio * max(compressed, 1):
            raise _refuse(self.path, name, f"would expand {_human(compressed)} to {_human(size)}, "
                                           f"{size / max(compressed, 1):.0f} times (the limit is {self.max_ratio:g})")
        self.total += size
        if self.total > self.max_bytes:
            raise _refuse(self.path, name, f"takes the extracted size past the limit of {_human(self.max_bytes)}")
        if self.total > RATIO_FLOOR and self.total > self.max_ratio * self.archive_size:
            raise _refuse(self.path, name, f"takes the extracted size to {_human(self.total)}, "
                                           f"{self.total / self.archive_size:.0f} times the archive's "
                                           f"{_human(self.archive_size)} (the limit is {self.max_ratio:g})")


def _tar_plan(tar: tarfile.TarFile, path: Path, sizes: _Sizes) -> list[tuple[str, tarfile.TarInfo]]:
    plan = []
    for m in tar:  # header by header: a refused member stops the scan before its data is read
        rel = _member_path(m.name)
        if rel is None:
            raise _refuse(path, m.name, "lies outside the dataset folder")
        if m.issym() or m.islnk():
            raise _refuse(path, m.name, "is a link")
        if not (m.isfile() or m.isdir()):
            raise _refuse(path, m.name, "is not a regular file or folder")
        sizes.add(m.name, m.size if m.isfile() else 0)
        plan.append((rel, m))
    return plan


def _zip_plan(zf: zipfile.ZipFile, path: Path, sizes: _Sizes) -> list[tuple[str, zipfile.ZipInfo]]:
    plan = []
    for info in zf.infolist():
        rel = _member_path(info.filename)
        if rel is None:
            raise _refuse(path, info.filename, "lies outside the dataset folder")
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_IFMT(mode):  # made on Unix: the file type is recorded
            if stat.S_ISLNK(mode):
                raise _refuse(path, info.filename, "is a link")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _refuse(path, info.filename, "is not a regular file or folder")
        if info.flag_bits & 0x1:
            raise _refuse(path, info.filename, "is encrypted")
        if info.compress_type not in ZIP_METHODS:
            raise _refuse(path, info.filename, f"uses an unsupported compression method ({info.compress_type})")
        sizes.add(info.filename, 0 if info.is_dir() else info.file_size, info.compress_size)
        plan.append((rel, info))
    return plan


class _Declared:
    """A member's stream that refuses to yield more than the size its header declared."""

    def __init__(self, src, size: int, refusal):
        self.src, self.left, self.refusal = src, size, refusal

    def read(self, n: int = -1) -> bytes:
        chunk = self.src.read(n)
        self.left -= len(chunk)
        if self.left < 0:  # raised before the chunk is written
            raise self.refusal()
        return chunk


def _write(dest: Path, rel: str, is_dir: bool, size: int, open_member, path: Path) -> None:
    """Write one member, stopping before a byte beyond the `size` its header declared."""
    out = dest / rel
    if is_dir:
        out.mkdir(parents=True, exist_ok=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_member() as src, open(out, "wb") as f:
        shutil.copyfileobj(_Declared(src, size, lambda: _refuse(
            path, rel, f"holds more than the {_human(size)} its header declares")), f, CHUNK)


def _discard(path: Path) -> None:
    """Delete a cached archive and the digest recorded for it."""
    path.unlink(missing_ok=True)
    _record_path(path).unlink(missing_ok=True)


def _extract(path: Path, subdir: str, target: Path, digest: str, max_bytes: int | None = None,
             max_ratio: float | None = None) -> None:
    """Extract the archive at `path` and move its top folder `subdir` to `target`, marked complete."""
    sizes = _Sizes(path, MAX_EXTRACT_BYTES if max_bytes is None else max_bytes,
                   MAX_RATIO if max_ratio is None else max_ratio)
    name = path.name.lower()
    if not name.endswith((".tar.gz", ".tgz", ".tar", ".zip")):
        raise DataError(f"cannot extract {path}: not a .tar.gz, .tgz, .tar or .zip archive")
    tmp = None
    try:
        with (zipfile.ZipFile(path) if name.endswith(".zip") else tarfile.open(path, "r:*")) as arc:
            if isinstance(arc, zipfile.ZipFile):
                plan = [(rel, info.is_dir(), info.file_size, lambda info=info: arc.open(info))
                        for rel, info in _zip_plan(arc, path, sizes)]
            else:
                plan = [(rel, m.isdir(), m.size, lambda m=m: arc.extractfile(m))
                        for rel, m in _tar_plan(arc, path, sizes)]
            if not any(rel.split("/")[0] == subdir for rel, *_ in plan):
                raise Refused(f"{path} has no top folder {subdir!r}; it is not the expected archive")
            free = shutil.disk_usage(target.parent).free
            if sizes.total > free:
                raise DataError(f"not enough disk space in {target.parent} to extract {path.name} "
                                f"({_human(sizes.total)} needed, {_human(free)} free)")
            tmp = Path(tempfile.mkdtemp(prefix=f".{subdir}.extracting-", dir=target.parent))
            for rel, is_dir, size, open_member in plan:
                _write(tmp, rel, is_dir, size, open_member, path)
        top = tmp / subdir
        if not top.is_dir():
            raise Refused(f"{path} has no top folder {subdir!r}; it is not the expected archive")
        (top / MARKER).write_text(f"{digest}  {path.name}\n")
        os.replace(top, target)
    except Refused as e:
        _discard(path)
        raise DataError(f"{e}; the archive was deleted from the download cache, so the next run downloads it "
                        f"again") from None
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as e:
        _discard(path)  # a digest recorded for a corrupt file is worthless
        reason = str(e).splitlines()[0].rstrip(":") if str(e) else type(e).__name__
        raise DataError(f"{path} is corrupt or truncated ({reason}); it was deleted, run again to download it "
                        f"again") from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DataError(f"not enough disk space in {target.parent} to extract {path.name}") from None
        raise DataError(f"cannot extract {path} to {target}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
