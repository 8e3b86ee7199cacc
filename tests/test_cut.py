"""CUT / FastCUT: the PatchNCE loss, its layers and heads, the modes, one step each, identity collapse, one
direction in translate and evaluate, DDP. Train/resume/export/translate are in tests/test_model_contract.py."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from condgan import evaluate
from condgan.data import DataInfo
from condgan.errors import CondganError
from condgan.models.cut import CUT, CUTConfig, IdentityCollapseWarning, encoder_layers, paper_layers, patch_nce
from condgan.nets.resnet import ResnetGenerator
from condgan.step import StepRunner
from condgan.train import main as train
from condgan.train import parse_config

TINY = ["--model", "cut", "--crop-size", "32", "--load-size", "36", "--resnet-blocks", "2", "--g-width", "4",
        "--d-width", "4", "--d-layers", "2", "--sample-pairs", "2", "--num-patches", "16", "--nce-mlp-width", "8",
        "--no-progress", "--workers", "0", "--log-every", "1", "--amp", "off"]


def _model(**kw) -> CUT:
    kw = {"num_patches": 8, **kw}
    cfg = CUTConfig(crop_size=16, load_size=16, resnet_blocks=1, g_width=4, d_width=4, d_layers=2,
                    nce_mlp_width=8, amp="off", **kw)
    cfg.validate()
    return CUT(cfg, DataInfo("unpaired", "t", 3, 16, 16, in_channels=3))


def _batch(n=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, "B": torch.rand(n, 3, 16, 16, generator=g) * 2 - 1}


def test_patch_nce_on_orthonormal_features_equals_the_hand_computed_value():
    p = 8
    q = torch.eye(16)[:p][None]  # P orthonormal unit vectors, the same on both sides
    for t in (0.07, 0.5, 2.0):
        # positive logit 1/t, P - 1 negatives at 0: -log(e^(1/t) / (e^(1/t) + P - 1)) = log(1 + (P - 1) e^(-1/t))
        expected = math.log(1 + (p - 1) * math.exp(-1 / t))
        torch.testing.assert_close(patch_nce(q, q.clone(), t), torch.tensor([expected]), rtol=1e-5, atol=1e-6)
    shuffled = q[:, torch.roll(torch.arange(p), 1)]  # every positive is now orthogonal, one negative equal
    assert patch_nce(q, shuffled, t).item() == pytest.approx(math.log(1 + (p - 2) + math.exp(1 / t)), rel=1e-6)
    x = F.normalize(torch.randn(2, 32, 16), dim=-1)  # random features: matching patches win over shuffled ones
    same, mixed = patch_nce(x, x, t), patch_nce(x, x[:, torch.randperm(32)], t)
    assert same.shape == (2,) and (same < mixed).all()
    k = x.clone().requires_grad_(True)
    patch_nce(x.clone().requires_grad_(True), k, t).sum().backward()
    assert k.grad is None  # the input side is a fixed target


def test_the_papers_layers_are_found_in_every_generator_layout():
    for antialias, expected in ((True, (0, 4, 8, 12, 16)), (False, (0, 4, 7, 10, 14))):
        g = ResnetGenerator(3, 3, 9, 8, antialias=antialias)
        assert paper_layers(g) == expected
        names = [type(g.net[i]).__name__ for i in expected]
        assert names == ["ReflectionPad2d", "Conv2d", "Conv2d", "ResidualBlock", "ResidualBlock"]
        feats = g.encode(torch.randn(1, 3, 32, 32), expected)
        assert [f.shape[1] for f in feats] == [3, 16, 32, 32, 32] and feats[0].shape[-1] == 38
    g = ResnetGenerator(3, 3, 2, 4)
    assert encoder_layers(g, "7, 4,4") == (4, 7)
    with pytest.raises(CondganError, match="reaches past the generator's encoder: its layers 0-11"):
        encoder_layers(g, "12")
    with pytest.raises(CondganError, match="--nce-layers takes comma-separated indices"):
        parse_config(["--model", "cut", "--nce-layers", "0,a"])
    with pytest.raises(CondganError, match="is a U-Net"):
        parse_config(["--model", "cut", "--generator", "unet_256"])


def test_modes_set_their_defaults_and_explicit_flags_win():
    cut, _ = parse_config(["--model", "cut"])
    assert (cut.epochs, cut.decay_epochs_resolved(), cut.nce_weight, cut.nce_idt, cut.flip_equivariance) == \
        (400, 200, 1.0, "on", "off")
    fast, _ = parse_config(["--model", "cut", "--mode", "fastcut"])
    assert (fast.epochs, fast.decay_epochs_resolved(), fast.nce_weight, fast.nce_idt, fast.flip_equivariance) == \
        (200, 50, 10.0, "off", "on")
    mine, _ = parse_config(["--model", "cut", "--mode", "fastcut", "--nce-weight", "2", "--nce-idt", "on",
                            "--epochs", "12", "--decay-epochs", "3", "--flip-equivariance", "off"])
    assert (mine.epochs, mine.decay_epochs_resolved(), mine.nce_weight, mine.nce_idt, mine.flip_equivariance) == \
        (12, 3, 2.0, "on", "off")
    assert parse_config(["--model", "cut", "--mode", "fastcut", "--epochs", "8"])[0].decay_epochs_resolved() == 2
    assert (cut.gan_loss, cut.norm, cut.num_patches, cut.nce_temperature, cut.antialias) == \
        ("lsgan", "instance", 256, 0.07, True)


def test_gradients_reach_the_encoder_and_the_heads_and_not_the_discriminator():
    torch.manual_seed(0)
    model = _model()
    src = _batch()["A"]
    model.nce_loss(src, model.G(src)).sum().backward()
    stem, last = model.G.net[1], model.G.net[-2]
    assert stem.weight.grad.abs().sum() > 0 and last.weight.grad.abs().sum() > 0  # encoder, and via G(src)
    heads = list(model.G_heads.parameters())
    assert len(heads) == 4 * len(model.layers) and all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)
    assert all(p.grad is None for p in model.D.parameters())


@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_one_training_step_updates_generator_heads_and_discriminator(mode):
    torch.manual_seed(0)
    model = _model(mode=mode)
    seen = []
    model.G.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runner = StepRunner(model.cfg, model, "cpu")
    batch = _batch()
    out = {p: runner.run_phase(p, batch) for p in model.phases(0)}
    assert set(out) == {"G", "D"} and ("nce_idt" in out["G"]) == (mode == "cut")
    after = model.state_dict()
    for net in ("G.", "D.", "G_heads."):
        keys = [k for k in before if k.startswith(net) and k.endswith("weight")]
        assert keys and all(not torch.equal(before[k], after[k]) for k in keys), net
    if mode == "cut":  # a generator pass over x, then one over y (the identity term)
        assert len(seen) == 2 and torch.equal(seen[0], batch["A"]) and torch.equal(seen[1], batch["B"])
        return
    for _ in range(7):  # fastcut: the input goes in flipped about half the time
        runner.train_step(batch)
    flips = [torch.equal(x, batch["A"].flip(3)) for x in seen]
    assert all(f or torch.equal(x, batch["A"]) for f, x in zip(flips, seen)) and 0 < sum(flips) < len(flips)


def test_flipped_outputs_are_compared_with_their_features_flipped_back():
    torch.manual_seed(0)
    model = _model(mode="fastcut", nce_layers="0")  # layer 0 (reflection padding) commutes with flips
    src = _batch()["A"]
    losses = []
    for out, flipped in ((src, False), (src.flip(3), True), (src.flip(3), False)):
        torch.manual_seed(1)  # the same patch locations each time
        losses.append(model.nce_loss(src, out.clone(), flipped=flipped))
    torch.testing.assert_close(losses[0], losses[1])  # flipped back: the output matches its input again
    assert (losses[2] > losses[0]).all()  # not flipped back: the patches no longer line up


def _identity(g: ResnetGenerator) -> None:
    """Make g's forward return its input (with the encoder's features of it, when asked for them)."""
    g.forward = lambda x, taps=(): (x, g.encode(x, taps)) if taps else x


def _grads(model) -> dict:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_identity_term_in_its_own_pass_gives_the_one_pass_gradients():
    """x and y through G one after the other (two backward passes) = the mean over one pass of both."""
    torch.manual_seed(0)
    model = _model(mode="cut", num_patches=4096)  # every location: PatchNCE no longer depends on the draw
    batch = _batch(2)
    parts = 0
    for part in model.step("G", batch):
        part["loss"].backward()
        parts += 1
    split = _grads(model)
    model.zero_grad(set_to_none=True)
    real = torch.cat([batch["A"], batch["B"]])
    fake = model.G(real)
    gan = F.mse_loss(model.D(fake[:2]), torch.ones_like(model.D(fake[:2])))  # LSGAN, the default
    (gan + model.nce_loss(real, fake).mean()).backward()
    joint = _grads(model)
    assert parts == 2 and split.keys() == joint.keys() and any(k.startswith("G_heads") for k in split)
    for k in joint:  # float rounding, relative to each tensor's scale (the biases before a norm get ~0)
        assert (split[k] - joint[k]).abs().max() <= 1e-5 * max(joint[k].abs().max(), 1.0), k


def test_batch_norm_keeps_x_and_y_in_one_pass():
    model = _model(mode="cut", norm="batch")
    seen = []
    model.G.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[0]))
    parts = list(model.step("G", _batch(2)))
    assert len(parts) == 1 and seen == [4] and {"nce", "nce_idt", "g_gan"} <= set(parts[0])


def test_keys_from_the_generators_pass_equal_a_second_encoder_pass():
    torch.manual_seed(0)
    model = _model()
    src = _batch(2)["A"]
    fake, keys = model.G(src, taps=model.layers)
    torch.testing.assert_close(fake, model.G(src))
    for a, b in zip(keys, model.G.encode(src, model.layers)):
        torch.testing.assert_close(a, b)
    torch.manual_seed(3)
    given = model.nce_loss(src, fake, keys=keys)
    torch.manual_seed(3)
    torch.testing.assert_close(given, model.nce_loss(src, fake))


def test_a_tapped_activation_is_not_overwritten_by_an_in_place_relu():
    g = ResnetGenerator(3, 3, 1, 4)
    assert isinstance(g.net[3], torch.nn.ReLU) and g.net[3].inplace  # after the stem's norm (index 2)
    x = torch.randn(1, 3, 16, 16)
    norm_out = g.net[2](g.net[1](g.net[0](x)))
    (feat,) = g.encode(x, (2,))
    assert (feat < 0).any() and torch.equal(feat, norm_out)
    _, (feat,) = g(x, taps=(2,))
    assert torch.equal(feat, norm_out)


def test_identity_collapse_warns_once_and_only_on_a_collapsed_generator():
    def steps(model, n):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(n):
                for _ in model.step("G", _batch(seed=i)):  # the loss parts (no backward needed here)
                    pass
                model.after_step("G")
        return [w for w in caught if issubclass(w.category, IdentityCollapseWarning)]

    torch.manual_seed(0)
    healthy = _model(mode="fastcut", collapse_steps=3)
    assert steps(healthy, 6) == []
    collapsed = _model(mode="fastcut", collapse_steps=3)
    _identity(collapsed.G)  # output = input; its encoder (g.net) is untouched
    caught = steps(collapsed, 9)
    assert len(caught) == 1 and "collapsed to the identity" in str(caught[0].message)
    off = _model(mode="fastcut", collapse_steps=0)
    _identity(off.G)
    assert steps(off, 4) == []


def test_one_direction_trains_translates_and_evaluates(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for folder in ("trainA", "trainB", "testA", "testB"):
        (root / folder).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / folder / f"{i}.png")
    run, flags = tmp_path / "run", [f for f in TINY if f not in ("--crop-size", "32", "--load-size", "36")]
    assert train(flags + ["--data", str(root), "--crop-size", "16", "--load-size", "18", "--direction", "BtoA",
                          "--mode", "fastcut", "--max-steps", "2", "--out", str(run)]) == 0
    from condgan import models
    model, cfg, _ = models.load(run)
    assert model.directions() == ("BtoA",) and model.generator("BtoA") is model.G
    with pytest.raises(CondganError, match="translates BtoA only, not AtoB"):
        model.translate(torch.zeros(1, 3, 8, 8), "AtoB")
    assert set(dict(model.named_children())) == {"G", "D", "G_heads"}
    assert "G_heads 0.00M" in capsys.readouterr().out  # counted with the other nets
    assert evaluate.main([str(run), "--json", str(tmp_path / "e.json"), "--no-progress"]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert 0 < res["out_in_l1"] < 2 and "fid_a_to_b" not in res and "checkerboard_ratio_b_to_a" in res
    assert res["l1_b_to_a"] is not None and res["paired_n_b_to_a"] == 3  # same names: scored against truth


def test_the_unpaired_report_prints_the_one_direction_a_model_has():
    res = {"data": "d", "split": "val", "n": 3, "fid_b_to_a": 12.5, "kid_b_to_a": 0.01, "kid_std_b_to_a": 0.001}
    lines = evaluate._report_unpaired(res, None)
    assert lines[-1].startswith("FID   B->A 12.50") and "A->B" not in lines[-1]
    both = evaluate._report_unpaired({**res, "fid_a_to_b": 3.0, "kid_a_to_b": 0.02}, None)[-1]
    assert both == "FID   A->B 3.00   B->A 12.50   KID   A->B 0.02000   B->A 0.01000"


def test_resumed_fastcut_matches_an_uninterrupted_run(tmp_path):
    flags = TINY + ["--mode", "fastcut"]  # flips draw from the RNG, which the checkpoint carries
    assert train(flags + ["--max-steps", "4", "--out", str(tmp_path / "a")]) == 0
    assert train(flags + ["--max-steps", "2", "--out", str(tmp_path / "b")]) == 0
    assert train(["--resume", str(tmp_path / "b"), "--max-steps", "4", "--no-progress"]) == 0
    a, b = (torch.load(tmp_path / r / "checkpoints" / "last.pt", weights_only=True)["model"] for r in "ab")
    assert any(k.startswith("G_heads.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this torch build has no gloo backend")
def test_two_ranks_under_torchrun_end_with_the_same_weights(tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               DUMP_DIR=str(tmp_path))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(Path(__file__).with_name("ddp_worker.py")), *TINY, "--mode", "fastcut",
           "--max-steps", "2", "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert any(k.startswith("G_heads.") for k in r0)
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=k)
