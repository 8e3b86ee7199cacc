"""export/web: the static page runs exported condgan models in headless chromium (onnxruntime-web, WASM)
and draws the same pixels as onnxruntime in Python.

Needs Debian's chromium (or CHROMIUM=/path/to/chrome), the Python package playwright and the built
page (`npm ci && npm run build` in export/web); tools/ci_web.sh installs all three. Offline: the page
and the models are served from 127.0.0.1, and any other request fails the test.
"""
from __future__ import annotations

import base64
import functools
import http.server
import io
import math
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

WEB = Path(__file__).resolve().parents[1] / "export" / "web"
DIST_FILES = ["ort.min.mjs", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm"]
SETUP = "run tools/ci_web.sh"


def _chromium() -> str | None:
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    # Debian's real binary; /usr/bin/chromium is a shell wrapper that adds flags (and stderr noise)
    if os.access("/usr/lib/chromium/chromium", os.X_OK):
        return "/usr/lib/chromium/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _chromium()
if CHROMIUM is None or not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no chromium ({CHROMIUM or 'none on PATH'}): apt-get install chromium, or set CHROMIUM=...; {SETUP}",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason=f"the Python package playwright is missing ({SETUP})")
missing = [f for f in DIST_FILES if not (WEB / "dist" / f).is_file()]
if missing:
    pytest.skip(f"export/web/dist/ is not built (missing {', '.join(missing)}): "
                f"`npm ci && npm run build` in export/web ({SETUP})", allow_module_level=True)
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

TIMEOUT_MS = 60_000


# ----------------------------------------------------------------------------------------- fixtures

def contrasty(model):
    """GAN init (N(0, 0.02)) gives a near-constant gray output, which would make the pixel checks
    vacuous; PyTorch's default init gives contrast. Applied to the generator export_model writes."""
    import torch

    for m in model.generator().modules():
        if hasattr(m, "reset_parameters") and not isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()
    return model


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Tiny random-weight models exported with condgan.export, and input images."""
    import torch

    from condgan import models
    from condgan.data import DataInfo
    from condgan.export import export_model
    from condgan.models.cgan import CGANConfig
    from condgan.models.pix2pix import Pix2PixConfig

    d = tmp_path_factory.mktemp("web")
    torch.manual_seed(0)
    info = DataInfo(kind="labelled", name="digits", channels=1, height=28, width=28, num_classes=10,
                    class_names=[str(i) for i in range(10)])
    cgan = contrasty(models.build(CGANConfig(g_width=8, d_width=8, latent_dim=8, embed_dim=4), info).eval())
    export_model(cgan, d / "cgan.onnx", check=False)
    export_model(cgan, d / "cgan_int32.onnx", label_dtype="int32", check=False)
    info = DataInfo(kind="paired", name="x", channels=3, height=64, width=64, in_channels=3)
    p2p = contrasty(models.build(Pix2PixConfig(generator="unet_128", g_width=8, d_width=8), info).eval())
    export_model(p2p, d / "p2p.onnx", check=False)

    # a valid ONNX model that is not a condgan export, and bytes that are not ONNX at all
    proto = onnx.load(str(d / "cgan.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(d / "plain.onnx"))
    (d / "bad.onnx").write_bytes(b"definitely not a protobuf\x00\xff" * 40)

    rng = np.random.default_rng(0)
    # odd sizes: the graph pads to the U-Net multiple inside and crops back
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(d / "in.png")
    Image.fromarray(rng.integers(0, 256, (21, 33, 3), dtype=np.uint8)).save(d / "in2.png")
    return d


@pytest.fixture(scope="module")
def server(data_dir):
    """export/web at /, the temp folder at /_data/, on 127.0.0.1."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            p = urlsplit(path).path
            if p.startswith("/_data/"):
                return str(data_dir / p[len("/_data/"):])
            return super().translate_path(path)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(WEB)))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page; any request that leaves the local server (a CDN, say) is blocked and fails the test."""
    context = browser.new_context()
    foreign: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith((server, "data:")):
            r.continue_()
        else:
            foreign.append(url)
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.base = server
    yield pg
    context.close()
    assert not foreign, f"the page fetched from outside 127.0.0.1: {foreign}"


# ----------------------------------------------------------------------------------------- helpers

def wait_run(pg, run: int = 1) -> dict:
    """Wait until run number `run` has finished (or the page reports an error); returns condganResult."""
    pg.wait_for_function(
        "run => (window.condganResult && window.condganResult.run >= run) || document.body.dataset.state === 'error'",
        arg=run, timeout=TIMEOUT_MS)
    err = pg.evaluate("window.condganError")
    assert not err, f"page error: {err}"
    return pg.evaluate("window.condganResult")


def wait_error(pg) -> str:
    pg.wait_for_function("document.body.dataset.state === 'error'", timeout=TIMEOUT_MS)
    assert pg.is_visible("#error")
    return pg.inner_text("#error")


def canvas_rgba(pg, canvas_id: str) -> np.ndarray:
    url = pg.evaluate("id => document.getElementById(id).toDataURL('image/png')", canvas_id)
    raw = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGBA"))


def to_u8(y: np.ndarray) -> np.ndarray:
    return np.round((np.clip(y, -1, 1) + 1) * 127.5).astype(np.int16)


def mulberry32_normals(seed: int, count: int) -> np.ndarray:
    """Python twin of lib.mjs normalNoise: mulberry32 -> uniforms in (0, 1) -> Box-Muller."""
    m = 0xFFFFFFFF
    a = seed & m

    def nxt():
        nonlocal a
        a = (a + 0x6D2B79F5) & m
        t = a
        t = ((t ^ (t >> 15)) * (t | 1)) & m
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & m)) & m
        return (t ^ (t >> 14)) & m

    out = np.zeros(count, np.float32)
    for i in range(0, count, 2):
        u1 = (nxt() + 0.5) / 2**32
        u2 = (nxt() + 0.5) / 2**32
        r = math.sqrt(-2 * math.log(u1))
        out[i] = r * math.cos(2 * math.pi * u2)
        if i + 1 < count:
            out[i + 1] = r * math.sin(2 * math.pi * u2)
    return out


def check_grid(pg, model: Path, res: dict) -> None:
    """The canvas grid equals onnxruntime's output for the z and labels the page used."""
    z = np.asarray(pg.evaluate("window.condganLastZ"), np.float32)
    n, latent = res["n"], res["latentDim"]
    assert z.shape == (n * latent,)
    np.testing.assert_allclose(z, mulberry32_normals(res["seed"], n * latent), rtol=1e-6, atol=1e-6)
    labels = np.asarray(res["labels"], np.int64 if res["labelDtype"] == "int64" else np.int32)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"z": z.reshape(n, latent), "label": labels})[0]
    expected = to_u8(y)[:, 0]  # [n, H, W], 1 channel
    assert expected.std() > 5, "degenerate test model: near-constant output"

    grid = canvas_rgba(pg, "grid-canvas").astype(np.int16)
    h, w, pad, rows, cols = res["tileHeight"], res["tileWidth"], res["pad"], res["rows"], res["cols"]
    assert grid.shape == (rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 4)
    assert (grid[..., 3] == 255).all()
    assert (grid[..., 0] == grid[..., 1]).all() and (grid[..., 0] == grid[..., 2]).all(), "gray model, gray canvas"
    seen = np.zeros(grid.shape[:2], bool)
    for i in range(n):
        r, c = divmod(i, cols)  # row-major; with all classes, one row per class
        y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
        tile = grid[y0:y0 + h, x0:x0 + w, 0]
        diff = np.abs(tile - expected[i])
        assert diff.max() <= 2, f"tile {i}: max difference {diff.max()} levels"
        seen[y0:y0 + h, x0:x0 + w] = True
    assert (grid[~seen][:, :3] == 0).all(), "padding and empty cells are black"


def python_translate(model: Path, png: Path) -> np.ndarray:
    x = np.asarray(Image.open(png).convert("RGB"), np.float32) / 127.5 - 1
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"image": x.transpose(2, 0, 1)[None]})[0][0]
    return to_u8(y).transpose(1, 2, 0)  # HWC


def check_translation(pg, data_dir: Path, png: str, res: dict) -> None:
    src = np.asarray(Image.open(data_dir / png).convert("RGB"))
    h, w = src.shape[:2]
    assert (res["width"], res["height"], res["inputWidth"], res["inputHeight"]) == (w, h, w, h)
    shown_in = canvas_rgba(pg, "input-canvas")
    assert (shown_in[..., :3] == src).all(), "the input canvas shows the file's pixels"
    expected = python_translate(data_dir / "p2p.onnx", data_dir / png)
    assert expected.std() > 5, "degenerate test model: near-constant output"
    out = canvas_rgba(pg, "output-canvas").astype(np.int16)
    assert out.shape == (h, w, 4) and (out[..., 3] == 255).all()
    diff = np.abs(out[..., :3] - expected)
    assert diff.max() <= 2, f"max difference {diff.max()} levels"
    assert diff.mean() < 0.05


# ----------------------------------------------------------------------------------------- tests

def test_conditional_grid_matches_onnxruntime(page, data_dir):
    page.goto(page.base + "?model=_data/cgan.onnx&seed=7&n=5&label=3")
    res = wait_run(page, 1)
    assert res["backend"] == "wasm"  # headless chromium here has no WebGPU adapter
    assert page.inner_text("#backend") == "WASM"
    assert (res["kind"], res["model"], res["labelDtype"]) == ("conditional", "cgan", "int64")
    assert (res["n"], res["seed"], res["labels"]) == (5, 7, [3] * 5)
    assert (res["rows"], res["cols"]) == (2, 3)
    meta = page.evaluate("window.condganMetadata")
    assert meta["condgan.kind"] == "conditional" and meta["condgan.latent_dim"] == "8"
    assert page.locator("#class-select option").count() == 11  # 10 classes + "all"
    check_grid(page, data_dir / "cgan.onnx", res)

    # the UI path: new seed, all classes (one row each), Generate
    page.fill("#seed", "4000000000")
    page.fill("#count", "3")
    page.select_option("#class-select", "all")
    page.click("#generate")
    res = wait_run(page, 2)
    assert (res["n"], res["rows"], res["cols"], res["seed"]) == (30, 10, 3, 4000000000)
    assert res["labels"] == [i // 3 for i in range(30)]
    check_grid(page, data_dir / "cgan.onnx", res)

    # same seed, same z
    z1 = page.evaluate("window.condganLastZ")
    page.click("#generate")
    wait_run(page, 3)
    assert page.evaluate("window.condganLastZ") == z1


def test_conditional_int32_labels_from_file_picker(page, data_dir):
    page.goto(page.base)
    page.wait_for_function("document.body.dataset.state === 'idle'")
    page.set_input_files("#model-file", str(data_dir / "cgan_int32.onnx"))
    res = wait_run(page, 1)
    assert res["labelDtype"] == "int32" and res["labels"] == [0] * 8
    check_grid(page, data_dir / "cgan_int32.onnx", res)


def test_translation_matches_onnxruntime(page, data_dir):
    page.goto(page.base + "?model=_data/p2p.onnx&image=_data/in.png")
    res = wait_run(page, 1)
    assert (res["backend"], res["kind"], res["model"]) == ("wasm", "translation", "pix2pix")
    assert (res["inChannels"], res["channels"]) == (3, 3)
    check_translation(page, data_dir, "in.png", res)

    # a second image through the file picker, another odd size
    page.set_input_files("#image-file", str(data_dir / "in2.png"))
    res = wait_run(page, 2)
    check_translation(page, data_dir, "in2.png", res)


@pytest.mark.parametrize("name, message", [
    ("bad.onnx", "is not a valid ONNX model file"),
    ("plain.onnx", "not a condgan export"),
    ("missing.onnx", "HTTP 404"),
])
def test_bad_model_shows_error(page, data_dir, name, message):
    page.goto(page.base + f"?model=_data/{name}")
    text = wait_error(page)
    assert message in text
    assert page.evaluate("window.condganResult") is None
    assert page.is_hidden("#conditional") and page.is_hidden("#translation")


def test_translation_in_tiles_matches_python_tiling(page, data_dir):
    import sys
    sys.path.insert(0, str(WEB.parent / "python"))
    import condgan_runtime as cr
    rng = np.random.default_rng(4)
    big = np.clip(rng.normal(128, 40, (150, 200, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(big).save(data_dir / "big.png")
    page.goto(page.base + "?model=_data/p2p.onnx&image=_data/big.png&tile=100&overlap=16")
    res = wait_run(page, 1)
    assert res["tiles"] == 4 and (res["width"], res["height"]) == (200, 150)  # 100 -> 128, the U-Net's multiple
    assert page.evaluate("window.condganTileProgress") == {"done": 4, "total": 4}
    expected = cr.load(data_dir / "p2p.onnx").translate_tiled(big, 100, 16).astype(np.int16)
    out = canvas_rgba(page, "output-canvas").astype(np.int16)
    diff = np.abs(out[..., :3] - expected)
    assert expected.std() > 5 and diff.max() <= 2 and diff.mean() < 0.05, diff.max()


@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("kind", ["cgan", "p2p"])
def test_reduced_precision_exports_run_in_the_page(page, data_dir, precision, kind):
    """onnxruntime-web (WASM) runs fp16 and int8 (QDQ) exports and draws what onnxruntime in Python does."""
    import torch

    from condgan import models
    from condgan.data import DataInfo
    from condgan.export import export_model
    from condgan.models.cgan import CGANConfig
    from condgan.models.pix2pix import Pix2PixConfig
    torch.manual_seed(0)
    if kind == "cgan":
        info = DataInfo(kind="labelled", name="digits", channels=1, height=28, width=28, num_classes=10,
                        class_names=[str(i) for i in range(10)])
        model = contrasty(models.build(CGANConfig(g_width=8, d_width=8, latent_dim=8, embed_dim=4), info).eval())
    else:
        info = DataInfo(kind="paired", name="x", channels=3, height=64, width=64, in_channels=3)
        model = contrasty(models.build(Pix2PixConfig(generator="unet_128", g_width=8, d_width=8), info).eval())
    name = f"{kind}_{precision}.onnx"
    export_model(model, data_dir / name, precision=precision, calibration=4, check=False)
    if kind == "cgan":
        page.goto(page.base + f"?model=_data/{name}&seed=7&n=3&label=2")
        res = wait_run(page, 1)
        z = np.array(page.evaluate("window.condganLastZ"), np.float32).reshape(3, 8)
        y = ort.InferenceSession(str(data_dir / name)).run(None, {"z": z, "label": np.full(3, 2, np.int64)})[0]
        grid = canvas_rgba(page, "grid-canvas")[..., 0].astype(np.int16)
        cols, pad = res["cols"], res["pad"]
        got = np.stack([grid[pad + (i // cols) * (28 + pad):][:28, pad + (i % cols) * (28 + pad):][:, :28]
                        for i in range(3)])
        diff = np.abs(got - to_u8(y[:, 0]))
    else:
        page.goto(page.base + f"?model=_data/{name}&image=_data/in.png")
        res = wait_run(page, 1)
        src = np.asarray(Image.open(data_dir / "in.png").convert("RGB"))
        x = (src.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)[None]
        y = ort.InferenceSession(str(data_dir / name)).run(None, {"image": x})[0]
        diff = np.abs(canvas_rgba(page, "output-canvas")[..., :3].astype(np.int16) - to_u8(y[0]).transpose(1, 2, 0))
    assert res["backend"] == "wasm" and diff.max() <= 3, diff.max()
