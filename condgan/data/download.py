"""Official pix2pix and CycleGAN dataset archives: download into a cache and extract safely.

Layout under a root folder, per kind ("pix2pix" or "cyclegan"):

    root/<kind>/downloads/<file>          the archive, kept so it can be extracted again
    root/<kind>/downloads/<file>.sha256   its digest, recorded at first download when none is pinned
    root/<kind>/<subdir>/                 the extracted dataset; `.complete` inside marks it usable

A download streams into `<file>.part` and resumes from it with a Range request.
Extraction checks every member first (no absolute paths, no `..`, no links or
special files), writes into a temporary sibling folder and renames it into
place, so the final folder is either complete or absent.
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

from tqdm.auto import tqdm

from .. import __version__
from ..errors import DataError

# kind -> (environment variable overriding the base URL, default base URL)
BASE_URLS = {
    "pix2pix": ("CONDGAN_PIX2PIX_URL", "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/"),
    "cyclegan": ("CONDGAN_CYCLEGAN_URL", "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/"),
}
MARKER = ".complete"
CHUNK = 1 << 20
TIMEOUT_S = 30

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


def fetch(archive: Archive, root: Path, progress: bool = True) -> Path:
    """Return root/<kind>/<archive.subdir> (the extracted dataset folder).

    Downloads and extracts only when the folder is not already complete; a cached
    dataset needs no network access.
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
    _extract(path, archive.subdir, target, digest)
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
            done = offset
            with open(part, "ab" if resumed else "wb") as out, \
                    tqdm(total=expected, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=path.name, disable=not progress, dynamic_ncols=True) as bar:
                try:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        bar.update(len(chunk))
                except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
                    raise DataError(f"download of {url} was interrupted after {done} bytes ({e}); run again to "
                                    f"resume it") from None
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


def _refuse(path: Path, member: str, why: str) -> DataError:
    return DataError(f"refusing to extract {path}: member {member!r} {why}")


def _tar_plan(tar: tarfile.TarFile, path: Path) -> list[tuple[str, tarfile.TarInfo]]:
    plan = []
    for m in tar.getmembers():
        rel = _member_path(m.name)
        if rel is None:
            raise _refuse(path, m.name, "lies outside the dataset folder")
        if m.issym() or m.islnk():
            raise _refuse(path, m.name, "is a link")
        if not (m.isfile() or m.isdir()):
            raise _refuse(path, m.name, "is not a regular file or folder")
        plan.append((rel, m))
    return plan


def _zip_plan(zf: zipfile.ZipFile, path: Path) -> list[tuple[str, zipfile.ZipInfo]]:
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
        plan.append((rel, info))
    return plan


def _write(dest: Path, rel: str, is_dir: bool, open_member) -> None:
    out = dest / rel
    if is_dir:
        out.mkdir(parents=True, exist_ok=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_member() as src, open(out, "wb") as f:
        shutil.copyfileobj(src, f, CHUNK)


def _extract(path: Path, subdir: str, target: Path, digest: str) -> None:
    """Extract the archive at `path` and move its top folder `subdir` to `target`, marked complete."""
    name = path.name.lower()
    if not name.endswith((".tar.gz", ".tgz", ".tar", ".zip")):
        raise DataError(f"cannot extract {path}: not a .tar.gz, .tgz, .tar or .zip archive")
    tmp = None
    try:
        with (zipfile.ZipFile(path) if name.endswith(".zip") else tarfile.open(path, "r:*")) as arc:
            if isinstance(arc, zipfile.ZipFile):
                plan = [(rel, info.is_dir(), lambda info=info: arc.open(info)) for rel, info in _zip_plan(arc, path)]
            else:
                plan = [(rel, m.isdir(), lambda m=m: arc.extractfile(m)) for rel, m in _tar_plan(arc, path)]
            if not any(rel.split("/")[0] == subdir for rel, _, _ in plan):
                raise DataError(f"{path} has no top folder {subdir!r}; it is not the expected archive")
            tmp = Path(tempfile.mkdtemp(prefix=f".{subdir}.extracting-", dir=target.parent))
            for rel, is_dir, open_member in plan:
                _write(tmp, rel, is_dir, open_member)
        top = tmp / subdir
        if not top.is_dir():
            raise DataError(f"{path} has no top folder {subdir!r}; it is not the expected archive")
        (top / MARKER).write_text(f"{digest}  {path.name}\n")
        os.replace(top, target)
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as e:
        path.unlink(missing_ok=True)
        _record_path(path).unlink(missing_ok=True)  # a digest recorded for a corrupt file is worthless
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
