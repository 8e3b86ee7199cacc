"""Inception FID and KID: the standard weights file, its one explicit download, features, and the distances.

The network is the TensorFlow FID Inception-v3 (2015-12-05) as torch-fidelity and torchmetrics
ship it; its weights never download by themselves. They are read from, in order:
$CONDGAN_INCEPTION_WEIGHTS, $CONDGAN_CACHE/weights/INCEPTION_FILE (CONDGAN_CACHE defaults to
~/.cache/condgan), torch's hub cache under the same name, and torch's hub cache under
torch-fidelity's own name (where torchmetrics puts it when it may download).
`download_weights()` (`python -m condgan.evaluate RUN --download-weights`) fetches the file.

INCEPTION_FILE is pytorch-fid's name for the file; WEIGHTS_URL is the copy torch-fidelity
publishes and torchmetrics downloads. Both names carry the same torch.hub hash suffix
(6726825d, the start of the sha256).

Images are resized as clean-fid recommends (Parmar et al. 2022): PIL bicubic, which
antialiases when shrinking, on the uint8 images; the result is rounded to uint8 because the
torch-fidelity network takes uint8 (at most half a level from clean-fid's float result).

`fid_kid` works on any feature matrices (Inception's 2048 features or the digit classifier's),
through torchmetrics' FrechetInceptionDistance and KernelInceptionDistance fed precomputed
features, so features are extracted once and both metrics share them.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import pickle
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import __version__
from ..checkpoint import atomic_write
from ..data.download import TIMEOUT_S, _sha256
from ..data.http import BrokenDownload, copy_body
from ..errors import CondganError
from .classifier import cache_dir
from .images import to_uint8_rgb

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
TORCH_FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{TORCH_FIDELITY_FILE}"
# The file's sha256 as several unrelated public projects pin it, all alike (one also pins its size,
# 95,628,359 bytes); its first 8 digits are both file names' torch.hub suffix. torch-fidelity publishes none.
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
TORCH_MAGIC = (b"PK", b"\x80\x02")  # how torch.save's files start: a zip, or the legacy pickle format
INPUT_SIZE = 299
BATCH = 32


def weights_dir() -> Path:
    """Where download_weights puts the file: $CONDGAN_CACHE/weights."""
    return cache_dir() / "weights"


def weights_path() -> Path | None:
    """The local Inception weights file (see the module notes for the order), or None; never downloads."""
    env = os.environ.get("CONDGAN_INCEPTION_WEIGHTS")
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    candidates = [Path(env).expanduser()] if env else []
    candidates += [weights_dir() / INCEPTION_FILE, hub / INCEPTION_FILE, hub / TORCH_FIDELITY_FILE]
    return next((p for p in candidates if p.is_file()), None)


def _torch_fidelity_missing() -> bool:
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return True
    return False


def unavailable_reason() -> str | None:
    """None when Inception FID/KID can run; else one sentence saying what is missing and how to get it."""
    if _torch_fidelity_missing():
        return "Inception FID/KID need torch-fidelity, which is not installed: run `pip install torch-fidelity`"
    if weights_path() is None:
        env = os.environ.get("CONDGAN_INCEPTION_WEIGHTS")
        unset = f" ($CONDGAN_INCEPTION_WEIGHTS={env} is not a file)" if env else ""
        return (f"Inception FID/KID need the weights file {INCEPTION_FILE}{unset}: download it from {WEIGHTS_URL} "
                f"and save it as {weights_dir() / INCEPTION_FILE} (or point $CONDGAN_INCEPTION_WEIGHTS at it), "
                f"or run `python -m condgan.evaluate RUN --download-weights` to fetch it there")
    return None


# ---- download ---------------------------------------------------------------------------------------------
def _stream(url: str, out, progress: bool, by_hand: str) -> tuple[str, bytes]:
    """Copy `url` into the open file `out`; return its sha256 and first bytes."""
    request = urllib.request.Request(url, headers={"User-Agent": f"condgan/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        e.close()
        raise CondganError(f"cannot download {url} (HTTP {e.code} {e.reason}); {by_hand}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        raise CondganError(f"cannot download {url} ({reason}); {by_hand}") from None
    digest, head = hashlib.sha256(), []
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None

        def seen(chunk):
            digest.update(chunk)
            if not head:
                head.append(chunk[:8])
        try:
            done = copy_body(response, out, desc=INCEPTION_FILE, progress=progress, total=total, on_chunk=seen)
        except BrokenDownload as e:
            raise CondganError(f"the download of {url} broke off after {e.done} bytes ({e.cause}); run again, or "
                               f"{by_hand}") from None
    if total is not None and done != total:
        raise CondganError(f"the download of {url} stopped after {done} of {total} bytes; run again, or {by_hand}")
    return digest.hexdigest(), head[0] if head else b""


def download_weights(progress: bool = True, url: str | None = None, sha256: str | None = WEIGHTS_SHA256) -> Path:
    """Fetch the weights into $CONDGAN_CACHE/weights/INCEPTION_FILE and return that path.

    `url` defaults to $CONDGAN_INCEPTION_URL, else WEIGHTS_URL; `sha256` None only
    checks that it is a PyTorch file. The download goes to a temporary file renamed into place once
    verified: a failed or refused download leaves nothing behind. A verified file already there is kept.
    """
    url = url or os.environ.get("CONDGAN_INCEPTION_URL") or WEIGHTS_URL
    expected = sha256.lower() if sha256 else None
    dest = weights_dir() / INCEPTION_FILE
    if expected and dest.is_file() and _sha256(dest) == expected:
        return dest
    by_hand = f"download it by hand and save it as {dest}, or point $CONDGAN_INCEPTION_WEIGHTS at a copy"
    try:
        with atomic_write(dest) as out:  # a CondganError inside deletes the temporary file
            actual, head = _stream(url, out, progress, by_hand)
            if expected and actual != expected:
                raise CondganError(f"the file from {url} has sha256 {actual}, not the expected {expected}, so it "
                                   f"was deleted; {by_hand} after checking where it comes from")
            if not expected and head[:2] not in TORCH_MAGIC:
                raise CondganError(f"the file from {url} is not a PyTorch weights file, so it was deleted; {by_hand}")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise CondganError(f"not enough disk space in {dest.parent} for {INCEPTION_FILE} (about 92 MiB)") from None
        raise CondganError(f"cannot write {dest}: {e.strerror or e}") from None
    return dest


# ---- features ---------------------------------------------------------------------------------------------
def resize_for_inception(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float NCHW -> uint8 [N, 3, 299, 299]: uint8 RGB, then PIL bicubic per image."""
    u8 = to_uint8_rgb(images.cpu()).permute(0, 2, 3, 1).numpy()
    size = (INPUT_SIZE, INPUT_SIZE)
    out = [np.asarray(Image.fromarray(im).resize(size, Image.BICUBIC)) if im.shape[:2] != size else im for im in u8]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


class InceptionFeatures:
    """The 2048 pool features of the FID Inception-v3, from the local weights file."""

    def __init__(self, device="cpu", weights: Path | None = None):
        path = weights if weights is not None else weights_path()
        if _torch_fidelity_missing() or path is None:
            raise CondganError(unavailable_reason())
        path = Path(path)
        if not path.is_file():
            raise CondganError(f"the Inception weights file {path} does not exist")
        # torch-fidelity reads the file with torch.load's unrestricted unpickler; read it with the
        # restricted one first, so a file holding anything but tensors is refused before that
        with open(path, "rb") as f:
            if f.read(2) not in TORCH_MAGIC:
                raise CondganError(f"{path} is not a PyTorch weights file, so not the Inception weights "
                                   f"{INCEPTION_FILE}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise CondganError(f"{path} holds objects other than tensors, so it is not loaded: the Inception "
                               f"weights {INCEPTION_FILE} are tensors only") from None
        except (RuntimeError, EOFError, ValueError, OSError) as e:  # a damaged zip or pickle
            raise CondganError(f"cannot read {path} as PyTorch weights ({type(e).__name__}); it may be "
                               f"truncated") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CondganError(f"{path} is not the Inception weights file {INCEPTION_FILE}: it holds no state dict")
        del state
        from torchmetrics.image.fid import NoTrainInceptionV3
        try:
            net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                     feature_extractor_weights_path=str(path))
        except RuntimeError:  # load_state_dict: missing, unexpected or misshapen tensors
            raise CondganError(f"{path} is not the Inception weights file {INCEPTION_FILE}: its tensors are not "
                               f"those of the FID Inception-v3") from None
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.weights = path

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """Float64 [N, 2048] features on the CPU of [-1, 1] NCHW images (1 channel: grey; more than 3: first 3)."""
        feats = [self.net(resize_for_inception(chunk).to(self.device)).double().cpu()
                 for chunk in images.detach().split(BATCH)]
        return torch.cat(feats) if feats else torch.zeros(0, 2048, dtype=torch.float64)


# ---- distances --------------------------------------------------------------------------------------------
class _Given(nn.Module):
    """Hands precomputed features to torchmetrics unchanged (`num_features` sizes its statistics)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid_kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
            seed: int = 0) -> dict:
    """FID and KID between two feature matrices [N, D] (float64; any D); the same seed gives the same KID.

    KID is the unbiased squared MMD with the kernel (x.y / D + 1)^3, mean and (population) std over
    `subsets` random subsets of min(subset_size, len(real), len(fake)) rows from each side.
    Non-finite features give nan for every value.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance
    real, fake = real.detach().cpu().double(), fake.detach().cpu().double()
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise CondganError(f"FID/KID need two feature matrices of the same width, not {tuple(real.shape)} and "
                           f"{tuple(fake.shape)}")
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise CondganError(f"FID/KID need at least 2 real and 2 generated images, not {len(real)} and {len(fake)}")
    if not (torch.isfinite(real).all() and torch.isfinite(fake).all()):
        nan = float("nan")
        return {"fid": nan, "kid_mean": nan, "kid_std": nan, "kid_subset_size": size}
    given = _Given(real.shape[1])
    fid = FrechetInceptionDistance(feature=given)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(feature=given, subsets=subsets, subset_size=size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws its subsets from torch's global generator
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std),
            "kid_subset_size": size}
