"""Inception FID/KID: where the weights come from, their download, the features, and the two distances.

The real weights are never fetched: a randomly initialised Inception-v3 in the real file's layout
(torchvision's Inception3 with 1008 classes and no auxiliary head: the keys torch-fidelity loads)
stands in for them. FID and KID are checked against scipy / numpy written here.
"""
from __future__ import annotations

import functools
import hashlib
import io
import socket
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from condgan.errors import CondganError
from condgan.metrics import inception
from condgan.metrics.inception import INCEPTION_FILE, WEIGHTS_URL, InceptionFeatures, fid_kid


def one_sentence(message: str) -> bool:
    return "\n" not in message and ". " not in message.rstrip(".")


@pytest.fixture(autouse=True)
def no_hub_cache(monkeypatch, tmp_path):
    """torch's hub cache (the last place weights_path looks) lives in the test's folder too."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("CONDGAN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("CONDGAN_INCEPTION_URL", raising=False)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A random Inception-v3 saved as a plain state dict in the layout of the real weights file."""
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    for m in net.modules():  # He init keeps activations near unit scale through the (identity) batch norms
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("weights") / INCEPTION_FILE
    torch.save(net.state_dict(), path)
    return path


# ---- where the weights are --------------------------------------------------------------------------------
def test_weights_path_looks_in_order_and_never_downloads(monkeypatch, tmp_path):
    assert inception.weights_path() is None
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    places = [hub / inception.TORCH_FIDELITY_FILE, hub / INCEPTION_FILE, inception.weights_dir() / INCEPTION_FILE]
    for place in places:  # each later place takes precedence over the earlier ones
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_bytes(b"x")
        assert inception.weights_path() == place
    own = tmp_path / "mine.pth"
    own.write_bytes(b"x")
    monkeypatch.setenv("CONDGAN_INCEPTION_WEIGHTS", str(own))
    assert inception.weights_path() == own
    monkeypatch.setenv("CONDGAN_INCEPTION_WEIGHTS", str(tmp_path / "absent.pth"))  # falls through
    assert inception.weights_path() == places[-1]


def test_missing_weights_give_one_clear_sentence():
    reason = inception.unavailable_reason()
    assert reason is not None and one_sentence(reason)
    for part in (INCEPTION_FILE, WEIGHTS_URL, str(inception.weights_dir() / INCEPTION_FILE),
                 "$CONDGAN_INCEPTION_WEIGHTS", "python -m condgan.evaluate RUN --download-weights"):
        assert part in reason
    with pytest.raises(CondganError) as e:
        InceptionFeatures()
    assert str(e.value) == reason


def test_missing_torch_fidelity_is_named(monkeypatch, random_weights):
    monkeypatch.setenv("CONDGAN_INCEPTION_WEIGHTS", str(random_weights))
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # makes `import torch_fidelity` fail
    reason = inception.unavailable_reason()
    assert one_sentence(reason) and "pip install torch-fidelity" in reason
    with pytest.raises(CondganError, match="torch-fidelity"):
        InceptionFeatures()


class NotATensor:
    pass


@pytest.mark.parametrize("content, message", [
    (b"not a torch file", "is not a PyTorch weights file"),
    (b"PK\x03\x04 truncated", "cannot read .* as PyTorch weights"),
    ({"w": torch.zeros(2)}, "is not the Inception weights file"),  # a state dict, but not Inception's
    ({"w": NotATensor()}, "holds objects other than tensors"),  # refused by the restricted loader
])
def test_a_file_that_is_not_the_weights_is_refused_in_one_sentence(monkeypatch, tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    monkeypatch.setenv("CONDGAN_INCEPTION_WEIGHTS", str(path))
    with pytest.raises(CondganError, match=message) as e:
        InceptionFeatures()
    assert one_sentence(str(e.value))


# ---- features ---------------------------------------------------------------------------------------------
def test_resize_for_inception_is_pil_bicubic_on_uint8_rgb():
    g = torch.Generator().manual_seed(1)
    grey = torch.rand(2, 1, 40, 30, generator=g) * 2 - 1
    out = inception.resize_for_inception(grey)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 299, 299)
    u8 = ((grey[0, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    rgb = Image.fromarray(np.stack([u8] * 3, -1)).resize((299, 299), Image.BICUBIC)
    assert np.array_equal(out[0].permute(1, 2, 0).numpy(), np.asarray(rgb))
    four = torch.rand(1, 4, 299, 299, generator=g) * 2 - 1  # already 299: unchanged, first 3 channels
    assert torch.equal(inception.resize_for_inception(four)[0],
                       ((four[0, :3] + 1) * 127.5).round().to(torch.uint8))
    ends = torch.zeros(1, 1, 299, 299)
    ends[0, 0, 0, :3] = torch.tensor([-1.0, 0.0, 1.0])
    assert inception.resize_for_inception(ends)[0, :, 0, :3].tolist() == [[0, 128, 255]] * 3  # 127.5 rounds to even


def test_random_inception_loads_through_weights_path_and_matches_torch_fidelity(monkeypatch, random_weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    monkeypatch.setenv("CONDGAN_INCEPTION_WEIGHTS", str(random_weights))
    assert inception.weights_path() == random_weights and inception.unavailable_reason() is None
    net = InceptionFeatures()
    assert net.weights == random_weights
    g = torch.Generator().manual_seed(2)
    images = torch.nn.functional.interpolate(torch.rand(2, 1, 6, 6, generator=g), size=(48, 48),
                                             mode="bilinear") * 2 - 1  # smooth grey images
    feats = net.extract(images)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float64 and feats.device.type == "cpu"
    assert torch.isfinite(feats).all() and not torch.allclose(feats[0], feats[1])
    # torch-fidelity's own network on the same weights, fed the PIL-resized uint8 images built here
    ref_net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                          feature_extractor_weights_path=str(random_weights))
    u8 = ((images[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    resized = np.stack([np.asarray(Image.fromarray(np.stack([im] * 3, -1)).resize((299, 299), Image.BICUBIC))
                        for im in u8])
    with torch.no_grad():
        ref = ref_net(torch.from_numpy(resized).permute(0, 3, 1, 2).contiguous())[0].double()
    torch.testing.assert_close(feats, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


# ---- FID and KID ------------------------------------------------------------------------------------------
def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + rng.normal(size=d)


def fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def gaussian_same_law(x: np.ndarray, seed: int) -> np.ndarray:
    """A fresh sample from the Gaussian fitted to x."""
    return np.random.default_rng(seed).multivariate_normal(x.mean(0), np.cov(x, rowvar=False), size=len(x))


def mmd_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel (x.y / d + 1)^3."""
    m, d = len(x), x.shape[1]
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
    off = m * (m - 1)
    return float((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())


@pytest.mark.parametrize("d", [16, 128])
def test_fid_and_kid_agree_with_scipy_and_numpy(d):
    real = gaussian(400, d, seed=1)
    for fake in (gaussian(400, d, seed=2), 1.3 * gaussian(400, d, seed=3) + 0.4):
        r = fid_kid(torch.from_numpy(real), torch.from_numpy(fake), subsets=3, subset_size=400)
        assert r["fid"] == pytest.approx(fid_scipy(real, fake), rel=1e-6)
        # subsets of all 400 rows are permutations of everything: each gives the full-set estimate
        assert r["kid_subset_size"] == 400
        assert r["kid_mean"] == pytest.approx(mmd_numpy(real, fake), rel=1e-9)
        assert abs(r["kid_std"]) < 1e-9 * abs(r["kid_mean"])


def test_fid_of_known_shifts_and_of_a_set_against_itself():
    x = gaussian(300, 32, seed=4)
    t = torch.from_numpy(x)
    same = fid_kid(t, t, subsets=5, subset_size=300)
    assert abs(same["fid"]) < 1e-3
    delta = np.linspace(-1, 1, 32)
    # a constant shift keeps the covariance: FID is exactly |delta|^2
    assert fid_kid(t, t + torch.from_numpy(delta), subsets=2)["fid"] == pytest.approx((delta ** 2).sum(), rel=1e-6)
    # scaling by s: (1 - s)^2 (|mean|^2 + trace of the covariance)
    s, mean, cov = 1.5, x.mean(0), np.cov(x, rowvar=False)
    assert fid_kid(t, s * t, subsets=2)["fid"] == pytest.approx((1 - s) ** 2 * ((mean ** 2).sum() + np.trace(cov)),
                                                               rel=1e-6)
    # KID of a set against itself: the unbiased estimate pairs each row with itself across the two sides,
    # which puts it slightly below 0; against a second sample of the same law it is ~0
    assert same["kid_mean"] == pytest.approx(mmd_numpy(x, x), rel=1e-9)
    shifted = fid_kid(t, t + 0.5, subsets=20, subset_size=100)["kid_mean"]
    twin = fid_kid(t, torch.from_numpy(gaussian_same_law(x, seed=5)), subsets=20, subset_size=100)["kid_mean"]
    assert abs(twin) < 0.05 * shifted and abs(same["kid_mean"]) < 0.2 * shifted


def test_kid_random_subsets_are_seeded_and_match_numpy_on_the_same_subsets():
    real, fake = gaussian(120, 8, seed=6), gaussian(90, 8, seed=7) + 0.3
    state = torch.get_rng_state()
    r = fid_kid(torch.from_numpy(real), torch.from_numpy(fake), subsets=7, subset_size=50, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left as it was
    assert r == fid_kid(torch.from_numpy(real), torch.from_numpy(fake), subsets=7, subset_size=50, seed=3)
    assert r["kid_mean"] != fid_kid(torch.from_numpy(real), torch.from_numpy(fake), subsets=7, subset_size=50,
                                    seed=4)["kid_mean"]
    # the same subsets drawn here (torchmetrics draws a real then a fake permutation per subset)
    gen = torch.Generator().manual_seed(3)
    values = []
    for _ in range(7):
        i, j = torch.randperm(120, generator=gen)[:50], torch.randperm(90, generator=gen)[:50]
        values.append(mmd_numpy(real[i.numpy()], fake[j.numpy()]))
    assert r["kid_mean"] == pytest.approx(np.mean(values), rel=1e-9)
    assert r["kid_std"] == pytest.approx(np.std(values), rel=1e-6)
    assert r["kid_subset_size"] == 50


def test_fid_kid_sizes_and_bad_inputs():
    a = torch.from_numpy(gaussian(5, 40, seed=8))  # fewer rows than features, as per-class statistics are
    r = fid_kid(a, a + 1.0, subsets=3)
    assert r["kid_subset_size"] == 5 and np.isfinite(r["fid"]) and r["fid"] == pytest.approx(40.0, rel=1e-6)
    with pytest.raises(CondganError, match="at least 2"):
        fid_kid(a[:1], a)
    with pytest.raises(CondganError, match="same width"):
        fid_kid(a, a[:, :3])
    bad = a.clone()
    bad[0, 0] = float("nan")
    assert all(np.isnan(v) for k, v in fid_kid(a, bad).items() if k != "kid_subset_size")


# ---- download ---------------------------------------------------------------------------------------------
class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/short"):  # declares more than it sends
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"PK" + b"\0" * 10)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    buf = io.BytesIO()
    torch.save({"w": torch.arange(10.0)}, buf)
    (root / "weights.pth").write_bytes(buf.getvalue())
    (root / "page.html").write_bytes(b"<html>not weights</html>")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, buf.getvalue()
    httpd.shutdown()
    httpd.server_close()


def leftovers():
    folder = inception.weights_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_the_sha256_and_lands_where_weights_path_looks(server):
    base, data = server
    digest = hashlib.sha256(data).hexdigest()
    path = inception.download_weights(progress=False, url=f"{base}/weights.pth", sha256=digest.upper())
    assert path == inception.weights_dir() / INCEPTION_FILE and path.read_bytes() == data
    assert inception.weights_path() == path and leftovers() == [INCEPTION_FILE]
    # a verified file already there is kept without asking the server again
    assert inception.download_weights(progress=False, url=f"{base}/gone.pth", sha256=digest) == path


def test_download_url_comes_from_the_environment(server, monkeypatch):
    base, data = server
    monkeypatch.setenv("CONDGAN_INCEPTION_URL", f"{base}/weights.pth")
    path = inception.download_weights(progress=False, sha256=hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data


def test_download_with_the_wrong_sha256_is_refused_and_deleted(server):
    base, _ = server
    with pytest.raises(CondganError, match="sha256") as e:
        inception.download_weights(progress=False, url=f"{base}/weights.pth", sha256="0" * 64)
    assert one_sentence(str(e.value)) and "deleted" in str(e.value)
    assert leftovers() == [] and inception.weights_path() is None


@pytest.mark.parametrize("name, message", [
    ("missing.pth", "HTTP 404"),
    ("page.html", "not a PyTorch weights file"),  # no digest given: the format is checked
    ("short", "stopped after|broke off"),
])
def test_download_failures_leave_nothing_behind(server, name, message):
    base, _ = server
    with pytest.raises(CondganError, match=message) as e:
        inception.download_weights(progress=False, url=f"{base}/{name}", sha256=None)
    assert one_sentence(str(e.value)) and leftovers() == []


def test_unreachable_server_gives_one_sentence_naming_url_and_destination():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{INCEPTION_FILE}"
    with pytest.raises(CondganError) as e:
        inception.download_weights(progress=False, url=url)
    message = str(e.value)
    assert one_sentence(message) and url in message
    assert str(inception.weights_dir() / INCEPTION_FILE) in message and leftovers() == []
