"""torchrun with two gloo ranks on the CPU: same weights on every rank, same result as one process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from condgan import models
from condgan.trainer import EpochBatches

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("ddp_worker.py")
# no randomness in the step (no dropout, no crops or flips), per-image norm, fp32 on every CPU (--amp auto
# picks bf16 on CPUs with AMX): the global batch alone decides
PIX2PIX = ["--model", "pix2pix", "--amp", "off", "--procedural-train", "8", "--crop-size", "32", "--load-size", "32",
           "--preprocess", "none", "--no-flip", "--no-dropout", "--norm", "instance", "--unet-depth", "5",
           "--g-width", "4", "--d-width", "4", "--val-images", "2", "--sample-pairs", "2", "--no-progress",
           "--workers", "0", "--log-every", "1"]
CGAN = ["--model", "cgan", "--g-width", "8", "--d-width", "8", "--latent-dim", "8", "--embed-dim", "4",
        "--samples-per-class", "1", "--no-progress", "--workers", "0", "--log-every", "1"]

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="this torch build has no gloo backend")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(threads: int = 1, **extra) -> dict:
    # one thread per rank, so that sums add up in one order; loopback only
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads), GLOO_SOCKET_IFNAME="lo", **extra)


def _torchrun(args: list[str], dump: Path | None = None, ok: bool = True, **env) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(WORKER), *args]
    proc = subprocess.run(cmd, env=_env(DUMP_DIR=str(dump or ""), **env), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _single(args: list[str], threads: int = 1) -> dict:
    proc = subprocess.run([sys.executable, "-m", "condgan.train", *args], env=_env(threads), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _model(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def _divergence(a, b) -> tuple[float, float]:
    """Mean and max |difference| of two models' weights (the biases excepted, see below)."""
    total = count = worst = 0.0
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in sa.items():
        if v.is_floating_point() and not k.endswith(".bias"):
            d = (sb[k].float() - v.float()).abs()
            total, count, worst = total + d.sum().item(), count + d.numel(), max(worst, d.max().item())
    return total / count, worst


def _assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def test_batches_are_split_between_ranks_in_the_single_process_order():
    one = list(EpochBatches(10, 4, seed=3))
    shares = [list(EpochBatches(10, 2, seed=3, rank=r, world=2)) for r in range(2)]
    assert len(one) == len(shares[0]) == len(shares[1]) == 2
    for b, batch in enumerate(one):
        assert shares[0][b] + shares[1][b] == batch


def test_two_ranks_agree_and_match_one_process_with_the_same_global_batch(tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    proc = _torchrun(PIX2PIX + ["--batch-size", "1", "--epochs", "2", "--out", str(tmp_path / "ddp")], dump)
    assert "x 2 ranks (global batch 2)" in proc.stdout
    assert proc.stdout.count("done:") == 1 and proc.stdout.count("epoch 2/2") == 1  # rank 0 alone prints
    _single(PIX2PIX + ["--batch-size", "2", "--epochs", "2", "--out", str(tmp_path / "one")])

    rank0, rank1 = (torch.load(dump / f"rank{r}.pt", weights_only=True) for r in range(2))
    _assert_close(rank0, rank1, atol=0)  # DDP keeps the ranks bit-identical
    _assert_close(_model(tmp_path / "ddp"), rank0, atol=0)

    # DDP adds the gradients in another order than one process does, so they agree only to float rounding,
    # which eight Adam steps of a GAN amplify (on an AVX-512 BF16 EPYC to a mean of 1e-5 and a max of 2e-4
    # per weight). The yardstick is the same one-process run on two threads instead of one: nothing but
    # the order of the sums changes there either. The biases in front of an InstanceNorm are cancelled
    # by it: their true gradient is zero, and Adam turns the rounding noise they get instead into steps of
    # size lr, so they are compared by what the nets compute, not by value.
    _single(PIX2PIX + ["--batch-size", "2", "--epochs", "2", "--out", str(tmp_path / "one-2threads")], threads=2)
    (ddp, cfg, _), (one, _, _) = models.load(tmp_path / "ddp"), models.load(tmp_path / "one")
    order = models.load(tmp_path / "one-2threads")[0]
    assert cfg.batch_size == 1
    (ddp_mean, ddp_max), (noise_mean, noise_max) = _divergence(ddp, one), _divergence(order, one)
    assert ddp_mean <= 3 * noise_mean + 1e-6 and ddp_max <= 3 * noise_max + 2e-5, (ddp_mean, ddp_max, noise_mean,
                                                                                      noise_max)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        y_ddp, y_one, y_order = ddp.G.eval()(x), one.G.eval()(x), order.G.eval()(x)
        d_ddp, d_one = ddp.D.eval()(torch.cat([x, y_ddp], 1)), one.D.eval()(torch.cat([x, y_ddp], 1))
        d_order = order.D.eval()(torch.cat([x, y_ddp], 1))
    assert (y_ddp - x).abs().mean() > 0.05  # the nets do compute something
    y_noise, d_noise = (y_order - y_one).abs().max().item(), (d_order - d_one).abs().max().item()
    torch.testing.assert_close(y_ddp, y_one, rtol=0, atol=3 * y_noise + 1e-4)
    torch.testing.assert_close(d_ddp, d_one, rtol=0, atol=3 * d_noise + 1e-4)

    # rank 0 alone wrote the run's files, once each
    metrics = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == len((tmp_path / "one" / "metrics.jsonl").read_text().splitlines())
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_ranks_that_disagree_on_the_config_stop_with_one_sentence(tmp_path):
    proc = _torchrun(PIX2PIX + ["--batch-size", "1", "--max-steps", "1", "--out", str(tmp_path / "run")], ok=False,
                     CONDGAN_TEST_RANK1_ARGS="--lr 0.001")
    assert proc.returncode != 0
    assert "ranks disagree on the training config: rank(s) 1 differ from rank 0" in proc.stderr
    assert "Traceback" not in proc.stderr.split("ranks disagree")[0][-300:]


def test_two_ranks_resume_exactly(tmp_path):
    # the cGAN draws noise on every rank: an exact resume needs each rank's own random state back
    base = CGAN + ["--batch-size", "4", "--ckpt-every", "2"]
    _torchrun(base + ["--max-steps", "6", "--out", str(tmp_path / "straight")])
    _torchrun(base + ["--max-steps", "3", "--out", str(tmp_path / "split")])
    saved = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] == 3 and len(saved["rng_ranks"]) == 2
    _torchrun(["--resume", str(tmp_path / "split"), "--max-steps", "6"])
    _assert_close(_model(tmp_path / "split"), _model(tmp_path / "straight"), atol=0)
