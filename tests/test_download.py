"""Dataset archive download and extraction, served from a local HTTP server (never the real network)."""
from __future__ import annotations

import errno
import functools
import hashlib
import io
import re
import shutil
import socket
import stat
import tarfile
import threading
import urllib.request
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from condgan.data import download
from condgan.data.download import CYCLEGAN_ARCHIVES, PIX2PIX_ARCHIVES, Archive, fetch
from condgan.errors import DataError


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 16, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


FILES = {"train/1.jpg": _jpeg(1), "train/2.jpg": _jpeg(2), "val/1.jpg": _jpeg(3)}


def make_tar(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    """Write a .tar.gz holding `members` (name -> bytes) and the bare `extra` entries; return its bytes."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return path.read_bytes()


def make_zip(path: Path, members: dict[str, bytes], extra: list[zipfile.ZipInfo] = ()) -> bytes:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info in extra:
            zf.writestr(info, b"/etc/passwd")
    return path.read_bytes()


def maps_files(top: str = "maps") -> dict[str, bytes]:
    return {f"{top}/{name}": data for name, data in FILES.items()}


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves the server's folder with `Range: bytes=N-` support; `server.cut` truncates every body."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match and srv.ranges else 0
        if start >= len(data) > 0:
            self.send_error(416)
            return
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if srv.cut is None else body[:srv.cut])


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local server for tmp_path/served; both base-URL variables point at it."""
    folder = tmp_path / "served"
    folder.mkdir()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(folder)))
    srv.folder, srv.requests, srv.ranges, srv.cut = folder, [], True, None
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    monkeypatch.setenv("CONDGAN_PIX2PIX_URL", srv.url)
    monkeypatch.setenv("CONDGAN_CYCLEGAN_URL", srv.url)
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def root(tmp_path):
    return tmp_path / "data"


MAPS = PIX2PIX_ARCHIVES["maps"]


def assert_nothing_extracted(root: Path, archive: Archive = MAPS):
    kind_dir = root / archive.kind
    assert not (kind_dir / archive.subdir).exists()
    assert not list(kind_dir.glob(".*.extracting-*"))


def assert_dataset(folder: Path, files: dict[str, bytes] = FILES):
    assert (folder / ".complete").is_file()
    for name, data in files.items():
        assert (folder / name).read_bytes() == data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tables():
    assert set(PIX2PIX_ARCHIVES) == {"maps", "facades", "edges2shoes", "edges2handbags", "night2day", "cityscapes"}
    assert len(CYCLEGAN_ARCHIVES) == 10 and "iphone2dslr_flower" in CYCLEGAN_ARCHIVES
    for table, kind, ext in [(PIX2PIX_ARCHIVES, "pix2pix", "tar.gz"), (CYCLEGAN_ARCHIVES, "cyclegan", "zip")]:
        for name, a in table.items():
            assert (a.name, a.subdir, a.kind, a.sha256) == (name, name, kind, None)
            assert a.url == f"http://efrosgans.eecs.berkeley.edu/{kind}/datasets/{name}.{ext}"
    assert "Cityscapes licence" in PIX2PIX_ARCHIVES["cityscapes"].note


def test_download_extract_then_cached_offline(server, root, monkeypatch, capsys):
    data = make_tar(server.folder / "maps.tar.gz", maps_files())
    folder = fetch(MAPS, root, progress=False)
    assert folder == root / "pix2pix" / "maps"
    assert_dataset(folder)
    archive = root / "pix2pix" / "downloads" / "maps.tar.gz"
    assert archive.read_bytes() == data  # kept for re-extraction
    assert not archive.with_name("maps.tar.gz.part").exists()
    assert server.requests == [("/maps.tar.gz", None)]
    assert not list((root / "pix2pix").glob(".*.extracting-*"))

    digest = hashlib.sha256(data).hexdigest()
    assert (archive.with_name("maps.tar.gz.sha256")).read_text().split()[0] == digest
    assert capsys.readouterr().out.count(f"sha256 of maps.tar.gz: {digest}") == 1

    # Cached: no network at all, not even a connection attempt.
    server.shutdown()
    monkeypatch.setenv("CONDGAN_PIX2PIX_URL", f"http://127.0.0.1:{free_port()}/")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used for a cached dataset"))
    assert fetch(MAPS, root, progress=False) == folder
    assert_dataset(folder)


def test_cyclegan_zip(server, root):
    files = {"trainA/1.jpg": _jpeg(4), "trainB/1.jpg": _jpeg(5)}
    make_zip(server.folder / "horse2zebra.zip", {f"horse2zebra/{k}": v for k, v in files.items()})
    folder = fetch(CYCLEGAN_ARCHIVES["horse2zebra"], root, progress=False)
    assert folder == root / "cyclegan" / "horse2zebra"
    assert_dataset(folder, files)


def test_licence_note_printed_before_download(server, root, capsys):
    make_tar(server.folder / "cityscapes.tar.gz", maps_files("cityscapes"))
    fetch(PIX2PIX_ARCHIVES["cityscapes"], root, progress=False)
    out = capsys.readouterr().out
    assert out.index("Cityscapes licence") < out.index("sha256 of cityscapes.tar.gz")


def test_resume_from_part(server, root):
    data = make_tar(server.folder / "maps.tar.gz", maps_files())
    part = root / "pix2pix" / "downloads" / "maps.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:len(data) // 2])
    assert_dataset(fetch(MAPS, root, progress=False))
    assert server.requests == [("/maps.tar.gz", f"bytes={len(data) // 2}-")]
    assert (root / "pix2pix" / "downloads" / "maps.tar.gz").read_bytes() == data
    assert not part.exists()


def test_server_without_ranges_starts_over(server, root):
    data = make_tar(server.folder / "maps.tar.gz", maps_files())
    server.ranges = False
    part = root / "pix2pix" / "downloads" / "maps.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes of another file")
    assert_dataset(fetch(MAPS, root, progress=False))
    assert (root / "pix2pix" / "downloads" / "maps.tar.gz").read_bytes() == data


def test_truncated_download_keeps_part_and_resumes(server, root):
    data = make_tar(server.folder / "maps.tar.gz", maps_files())
    server.cut = 100
    with pytest.raises(DataError, match=f"stopped after 100 of {len(data)} bytes"):
        fetch(MAPS, root, progress=False)
    part = root / "pix2pix" / "downloads" / "maps.tar.gz.part"
    assert part.read_bytes() == data[:100]
    assert not (root / "pix2pix" / "downloads" / "maps.tar.gz").exists()
    assert_nothing_extracted(root)

    server.cut = None
    assert_dataset(fetch(MAPS, root, progress=False))
    assert server.requests[-1] == ("/maps.tar.gz", "bytes=100-")


def test_pinned_digest_mismatch(server, root):
    make_tar(server.folder / "maps.tar.gz", maps_files())
    pinned = Archive("maps", MAPS.url, "0" * 64, "maps")
    with pytest.raises(DataError, match="does not match its pinned sha256"):
        fetch(pinned, root, progress=False)
    assert not (root / "pix2pix" / "downloads" / "maps.tar.gz").exists()
    assert_nothing_extracted(root)


def test_pinned_digest_match(server, root):
    data = make_tar(server.folder / "maps.tar.gz", maps_files())
    pinned = Archive("maps", MAPS.url, hashlib.sha256(data).hexdigest(), "maps")
    assert_dataset(fetch(pinned, root, progress=False))
    assert not (root / "pix2pix" / "downloads" / "maps.tar.gz.sha256").exists()


def test_tampered_cached_archive(server, root):
    make_tar(server.folder / "maps.tar.gz", maps_files())
    folder = fetch(MAPS, root, progress=False)
    archive = root / "pix2pix" / "downloads" / "maps.tar.gz"
    recorded = archive.with_name("maps.tar.gz.sha256").read_text()

    shutil.rmtree(folder)  # no .complete marker: the cached archive is verified and extracted again
    archive.write_bytes(archive.read_bytes() + b"tampered")
    with pytest.raises(DataError, match="sha256 recorded at its first download"):
        fetch(MAPS, root, progress=False)
    assert not archive.exists()
    assert_nothing_extracted(root)

    # The next run downloads again and checks it against the recorded digest.
    assert_dataset(fetch(MAPS, root, progress=False))
    assert archive.with_name("maps.tar.gz.sha256").read_text() == recorded


@pytest.mark.parametrize("content", ["garbage", "half"])
def test_corrupt_archive(server, root, content):
    noise = np.random.default_rng(0).bytes(200_000)  # incompressible: half the archive cuts into the members
    data = make_tar(server.folder / "maps.tar.gz", {**maps_files(), "maps/big.bin": noise})
    bad = b"not an archive at all" * 100 if content == "garbage" else data[:len(data) // 2]
    (server.folder / "maps.tar.gz").write_bytes(bad)
    with pytest.raises(DataError, match="corrupt") as info:
        fetch(MAPS, root, progress=False)
    assert "\n" not in str(info.value)
    downloads = root / "pix2pix" / "downloads"
    assert not (downloads / "maps.tar.gz").exists()
    assert not (downloads / "maps.tar.gz.sha256").exists()
    assert_nothing_extracted(root)


def test_corrupt_zip(server, root):
    (server.folder / "horse2zebra.zip").write_bytes(b"PK\x03\x04" + b"\0" * 300)
    with pytest.raises(DataError, match="corrupt"):
        fetch(CYCLEGAN_ARCHIVES["horse2zebra"], root, progress=False)
    assert_nothing_extracted(root, CYCLEGAN_ARCHIVES["horse2zebra"])


def no_writing(*args, **kwargs):
    pytest.fail("extraction started before every member was checked")


def _tar_entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def _unsafe_tar_members(tmp_path: Path) -> dict[str, tuple[dict[str, bytes], list[tarfile.TarInfo]]]:
    absolute = str(tmp_path / "absolute-evil.txt")
    return {
        "traversal": ({"../evil.txt": b"evil"}, []),
        "nested-traversal": ({"maps/../../evil.txt": b"evil"}, []),
        "absolute": ({absolute: b"evil"}, []),
        "symlink": ({}, [_tar_entry("maps/link", tarfile.SYMTYPE, "/etc/passwd")]),
        "hardlink": ({}, [_tar_entry("maps/hard", tarfile.LNKTYPE, "maps/train/1.jpg")]),
        "fifo": ({}, [_tar_entry("maps/fifo", tarfile.FIFOTYPE)]),
        "device": ({}, [_tar_entry("maps/dev", tarfile.CHRTYPE)]),
    }


@pytest.mark.parametrize("case", ["traversal", "nested-traversal", "absolute", "symlink", "hardlink", "fifo",
                                  "device"])
def test_unsafe_tar_member(server, root, tmp_path, monkeypatch, case):
    members, extra = _unsafe_tar_members(tmp_path)[case]
    # Safe members come first: still, nothing may be written before every member is checked.
    monkeypatch.setattr(download.tempfile, "mkdtemp", no_writing)
    make_tar(server.folder / "maps.tar.gz", {**maps_files(), **members}, extra)
    bad_name = next(iter(members), None) or extra[0].name
    with pytest.raises(DataError, match=re.escape(repr(bad_name))):
        fetch(MAPS, root, progress=False)
    assert_nothing_extracted(root)
    assert not (root / "pix2pix" / "evil.txt").exists()
    assert not (root / "evil.txt").exists()
    assert not (tmp_path / "absolute-evil.txt").exists()
    assert sorted(p.name for p in (root / "pix2pix").iterdir()) == ["downloads"]


@pytest.mark.parametrize("case", ["traversal", "absolute", "symlink"])
def test_unsafe_zip_member(server, root, tmp_path, monkeypatch, case):
    monkeypatch.setattr(download.tempfile, "mkdtemp", no_writing)
    extra = []
    if case == "symlink":
        link = zipfile.ZipInfo("horse2zebra/link")
        link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        extra, members, bad_name = [link], {}, "horse2zebra/link"
    else:
        bad_name = "../evil.txt" if case == "traversal" else str(tmp_path / "absolute-evil.txt")
        members = {bad_name: b"evil"}
    archive = CYCLEGAN_ARCHIVES["horse2zebra"]
    make_zip(server.folder / "horse2zebra.zip", {"horse2zebra/trainA/1.jpg": _jpeg(4), **members}, extra)
    with pytest.raises(DataError, match=re.escape(repr(bad_name))):
        fetch(archive, root, progress=False)
    assert_nothing_extracted(root, archive)
    assert sorted(p.name for p in (root / "cyclegan").iterdir()) == ["downloads"]
    assert not (tmp_path / "absolute-evil.txt").exists()


def test_missing_top_folder(server, root, monkeypatch):
    monkeypatch.setattr(download.tempfile, "mkdtemp", no_writing)
    make_tar(server.folder / "maps.tar.gz", maps_files("other"))
    with pytest.raises(DataError, match="no top folder 'maps'"):
        fetch(MAPS, root, progress=False)
    assert_nothing_extracted(root)


def test_offline(root, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/"
    monkeypatch.setenv("CONDGAN_PIX2PIX_URL", url)
    with pytest.raises(DataError) as info:
        fetch(MAPS, root, progress=False)
    message = str(info.value)
    assert f"{url}maps.tar.gz" in message and str(root / "pix2pix" / "maps") in message
    assert_nothing_extracted(root)


def test_http_error(server, root):
    with pytest.raises(DataError, match=r"maps\.tar\.gz \(HTTP 404"):
        fetch(MAPS, root, progress=False)
    assert_nothing_extracted(root)


def test_incomplete_folder_is_not_overwritten(server, root):
    make_tar(server.folder / "maps.tar.gz", maps_files())
    (root / "pix2pix" / "maps").mkdir(parents=True)
    (root / "pix2pix" / "maps" / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="not marked complete"):
        fetch(MAPS, root, progress=False)
    assert server.requests == []
    assert (root / "pix2pix" / "maps" / "mine.txt").read_text() == "user data"


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_extracting(server, root, monkeypatch):
    make_tar(server.folder / "maps.tar.gz", maps_files())
    monkeypatch.setattr(download.shutil, "copyfileobj", _disk_full)
    with pytest.raises(DataError, match="not enough disk space in"):
        fetch(MAPS, root, progress=False)
    assert_nothing_extracted(root)
    assert (root / "pix2pix" / "downloads" / "maps.tar.gz").is_file()  # extracting again needs no download


def test_disk_full_while_downloading(server, root, monkeypatch):
    make_tar(server.folder / "maps.tar.gz", maps_files())
    real_open = open

    def full_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith(".part"):
            f.write = _disk_full
        return f

    monkeypatch.setattr(download, "open", full_open, raising=False)
    with pytest.raises(DataError, match="not enough disk space in"):
        fetch(MAPS, root, progress=False)
    assert not (root / "pix2pix" / "downloads" / "maps.tar.gz").exists()
    assert_nothing_extracted(root)


def test_train_cli_downloads_maps_then_trains_from_the_cache(server, root, monkeypatch, capsys):
    """`python -m condgan.train --model pix2pix --data maps` end to end against the local server."""
    from condgan import train
    make_tar(server.folder / "maps.tar.gz", maps_files())
    monkeypatch.setenv("CONDGAN_DATA", str(root))
    flags = ["--model", "pix2pix", "--data", "maps", "--crop-size", "8", "--load-size", "8", "--unet-depth", "3",
             "--g-width", "4", "--d-width", "4", "--d-layers", "1", "--epochs", "1", "--no-progress",
             "--workers", "0", "--val-images", "1", "--sample-pairs", "1"]
    assert train.main(flags + ["--out", str(root.parent / "run1")]) == 0
    assert_dataset(root / "pix2pix" / "maps")
    assert "data: maps, 2 training pairs (1 validation)" in capsys.readouterr().out
    server.shutdown()  # the second run must not need the network
    assert train.main(flags + ["--out", str(root.parent / "run2")]) == 0
    assert len(server.requests) == 1


def test_train_cli_offline_is_one_sentence(root, monkeypatch, capsys):
    from condgan import train
    monkeypatch.setenv("CONDGAN_PIX2PIX_URL", f"http://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("CONDGAN_DATA", str(root))
    with pytest.raises(SystemExit) as e:
        train.main(["--model", "pix2pix", "--data", "maps", "--out", str(root.parent / "run")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("condgan.train: error:") and "\n" not in err
    assert "maps.tar.gz" in err


# ---- size limits: checked from the headers before anything is written, and again while writing ---------------
ZEROS = b"\0" * (4 << 20)  # 4 MiB that deflate to about 4 KiB: over RATIO_FLOOR, about 1000 times smaller


def make_deflated_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


H2Z = CYCLEGAN_ARCHIVES["horse2zebra"]
H2Z_FILES = {"horse2zebra/trainA/1.jpg": _jpeg(4), "horse2zebra/trainB/1.jpg": _jpeg(5)}


def assert_refused_and_deleted(root: Path, archive: Archive) -> None:
    assert_nothing_extracted(root, archive)
    downloads = root / archive.kind / "downloads"
    assert sorted(p.name for p in downloads.iterdir()) == []  # the archive and its recorded digest are gone
    assert sorted(p.name for p in (root / archive.kind).iterdir()) == ["downloads"]


def test_zip_member_expanding_too_much_is_refused_from_its_header(server, root, monkeypatch):
    monkeypatch.setattr(download.tempfile, "mkdtemp", no_writing)
    make_deflated_zip(server.folder / "horse2zebra.zip", {**H2Z_FILES, "horse2zebra/trainA/bomb.png": ZEROS})
    with pytest.raises(DataError) as e:
        fetch(H2Z, root, progress=False)
    msg = str(e.value)
    assert "member 'horse2zebra/trainA/bomb.png' would expand" in msg and "to 4.0 MiB" in msg
    assert "(the limit is 100)" in msg and "deleted from the download cache" in msg and "\n" not in msg
    assert_refused_and_deleted(root, H2Z)


def test_tar_gz_expanding_too_much_is_refused_from_its_headers(server, root, monkeypatch):
    monkeypatch.setattr(download.tempfile, "mkdtemp", no_writing)
    make_tar(server.folder / "maps.tar.gz", {**maps_files(), "maps/train/bomb.jpg": ZEROS, "maps/val/2.jpg": b"x"})
    with pytest.raises(DataError, match=r"member 'maps/train/bomb.jpg' takes the extracted size to 4\.0 MiB, "
                                        r"\d+ times the archive's .*deleted from the download cache"):
        fetch(MAPS, root, progress=False)
    assert_refused_and_deleted(root, MAPS)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_total_size_limit(server, root, monkeypatch, kind):
    monkeypatch.setattr(download.tempfile, "mkdtemp", no_writing)
    if kind == "zip":
        archive, files, name = H2Z, H2Z_FILES, "horse2zebra/trainB/1.jpg"
        make_deflated_zip(server.folder / "horse2zebra.zip", files)
    else:
        archive, files, name = MAPS, maps_files(), "maps/train/2.jpg"
        make_tar(server.folder / "maps.tar.gz", files)
    limit = len(next(iter(files.values()))) + 1  # room for the first member only
    with pytest.raises(DataError, match=rf"member {name!r} takes the extracted size past the limit of "):
        fetch(archive, root, progress=False, max_bytes=limit)
    assert_refused_and_deleted(root, archive)


def test_limits_can_be_raised(server, root):
    make_deflated_zip(server.folder / "horse2zebra.zip", {**H2Z_FILES, "horse2zebra/trainA/bomb.png": ZEROS})
    folder = fetch(H2Z, root, progress=False, max_ratio=10_000)
    assert (folder / "trainA" / "bomb.png").stat().st_size == len(ZEROS)


def test_small_compressible_members_are_not_ratio_checked(server, root):
    text = b"a" * (download.RATIO_FLOOR // 2)
    make_deflated_zip(server.folder / "horse2zebra.zip", {**H2Z_FILES, "horse2zebra/README.txt": text})
    assert (fetch(H2Z, root, progress=False) / "README.txt").read_bytes() == text


def test_member_longer_than_its_header_says_is_refused(server, root, monkeypatch):
    """zipfile and tarfile already stop at the declared size; the extractor does not rely on it."""
    make_deflated_zip(server.folder / "horse2zebra.zip", H2Z_FILES)
    real_open = zipfile.ZipFile.open

    def lying_open(self, info, *args, **kwargs):
        with real_open(self, info, *args, **kwargs) as f:
            return io.BytesIO(f.read() + b"\0" * 100)  # more than the header declares

    monkeypatch.setattr(zipfile.ZipFile, "open", lying_open)
    with pytest.raises(DataError, match=r"member 'horse2zebra/trainA/1.jpg' holds more than the \d+ bytes its "
                                        r"header declares; the archive was deleted"):
        fetch(H2Z, root, progress=False)
    assert_refused_and_deleted(root, H2Z)


def test_declared_size_is_enforced_chunk_by_chunk(tmp_path):
    src = io.BytesIO(b"x" * (download.CHUNK + 10))
    with pytest.raises(DataError, match=r"member 'top/a.bin' holds more than the 1\.0 MiB its header declares"):
        download._write(tmp_path, "top/a.bin", False, download.CHUNK, lambda: src, tmp_path / "arc.zip")
    assert (tmp_path / "top" / "a.bin").stat().st_size == download.CHUNK  # the excess chunk was never written


def test_encrypted_zip_member_is_refused(server, root, monkeypatch):
    monkeypatch.setattr(download.tempfile, "mkdtemp", no_writing)
    path = server.folder / "horse2zebra.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("horse2zebra/trainA/1.jpg", _jpeg(4))
        zf.writestr("horse2zebra/trainA/2.jpg", b"\0" * 12 + _jpeg(5))
    data = bytearray(path.read_bytes())  # set the "encrypted" flag of the second member in both of its headers
    local = data.index(b"PK\x03\x04", 1)
    central = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 1)
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="member 'horse2zebra/trainA/2.jpg' is encrypted"):
        fetch(H2Z, root, progress=False)
    assert_refused_and_deleted(root, H2Z)


def test_unsupported_zip_compression_is_refused(server, root, monkeypatch):
    monkeypatch.setattr(download.tempfile, "mkdtemp", no_writing)
    path = server.folder / "horse2zebra.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("horse2zebra/trainA/1.jpg", _jpeg(4))
    data = bytearray(path.read_bytes())  # mark the member deflate64 (method 9) in both of its headers
    data[8:10] = (9).to_bytes(2, "little")
    central = data.index(b"PK\x01\x02")
    data[central + 10:central + 12] = (9).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"'horse2zebra/trainA/1.jpg' uses an unsupported compression method \(9\)"):
        fetch(H2Z, root, progress=False)
    assert_refused_and_deleted(root, H2Z)


def test_unsafe_member_archive_is_deleted_from_the_cache(server, root):
    make_tar(server.folder / "maps.tar.gz", {**maps_files(), "../evil.txt": b"evil"})
    with pytest.raises(DataError, match="deleted from the download cache"):
        fetch(MAPS, root, progress=False)
    assert_refused_and_deleted(root, MAPS)
    make_tar(server.folder / "maps.tar.gz", maps_files())  # the server fixed its file: the next run downloads it
    assert_dataset(fetch(MAPS, root, progress=False))
