"""CycleGAN: ResNet generator, image pool, training step, unpaired data, resume, translate both ways."""
from __future__ import annotations

import dataclasses

import json

import numpy as np
import pytest
import torch
from PIL import Image

from condgan.data import DataInfo
from condgan.models.cyclegan import CycleGAN, CycleGANConfig, ImagePool
from condgan.nets.resnet import ResnetGenerator

TINY = ["--model", "cyclegan", "--crop-size", "32", "--load-size", "36", "--resnet-blocks", "2",
        "--g-width", "4", "--d-width", "4", "--d-layers", "2", "--pool-size", "3", "--sample-pairs", "2",
        "--no-progress", "--workers", "0", "--log-every", "1"]


@pytest.mark.parametrize("upsampling", ["transpose", "resize"])
@pytest.mark.parametrize("cin, cout, h, w, blocks", [(3, 3, 64, 64, 9), (1, 3, 30, 50, 6), (3, 1, 17, 23, 2)])
def test_resnet_generator_shapes(upsampling, cin, cout, h, w, blocks):
    g = ResnetGenerator(cin, cout, blocks=blocks, width=4, upsampling=upsampling)
    assert sum(type(m).__name__ == "ResidualBlock" for m in g.modules()) == blocks
    y = g(torch.randn(2, cin, h, w))
    assert y.shape == (2, cout, h, w) and y.abs().max() <= 1


def test_image_pool_fills_then_swaps_about_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4, 1, 2, 2)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 4  # filling: images come straight back
    returned_stored = 0
    for k in range(400):
        img = torch.full((1, 1, 2, 2), 100.0 + k)
        out = pool.query(img)
        returned_stored += not torch.equal(out, img)
    assert 160 < returned_stored < 240  # p = 1/2 per image
    torch.manual_seed(1)
    a = ImagePool(2, 1, 1, 1)
    torch.manual_seed(1)
    b = ImagePool(2, 1, 1, 1)
    seq = [torch.full((3, 1, 1, 1), float(i)) for i in range(10)]
    torch.manual_seed(5)
    outs_a = [a.query(s) for s in seq]
    torch.manual_seed(5)
    outs_b = [b.query(s) for s in seq]
    assert all(torch.equal(x, y) for x, y in zip(outs_a, outs_b))  # by seed


def _model(identity=0.5):
    cfg = CycleGANConfig(crop_size=16, resnet_blocks=1, g_width=4, d_width=4, d_layers=2, pool_size=2,
                         identity_weight=identity)
    return CycleGAN(cfg, DataInfo("unpaired", "t", 3, 16, 16, in_channels=3))


def _phase_runner(model):
    from condgan.step import StepRunner
    return StepRunner(dataclasses.replace(model.cfg, amp="off"), model, "cpu")  # fp32, as the test expects


def test_one_step_updates_all_four_nets():
    torch.manual_seed(0)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("weight")}
    t = _phase_runner(model)
    batch = {"A": torch.rand(2, 3, 16, 16) * 2 - 1, "B": torch.rand(2, 3, 16, 16) * 2 - 1}
    losses = {p: t.run_phase(p, batch) for p in model.phases(0)}
    assert list(losses) == ["G", "D"] and {"idt_a", "idt_b"} <= set(losses["G"])
    after = model.state_dict()
    for net in ("G_A", "G_B", "D_A", "D_B"):
        keys = [k for k in before if k.startswith(net + ".")]
        assert keys and all(not torch.equal(before[k], after[k]) for k in keys), net
    assert int(model.pool_A.count) == 2 and int(model.pool_B.count) == 2


def test_identity_loss_is_absent_when_its_weight_is_zero():
    torch.manual_seed(0)
    model = _model(identity=0.0)
    batch = {"A": torch.rand(1, 3, 16, 16), "B": torch.rand(1, 3, 16, 16)}
    calls = []
    model.G_A.register_forward_hook(lambda *a: calls.append("G_A"))
    out = model.step("G", batch)
    assert "idt_a" not in out and "idt_b" not in out
    assert calls == ["G_A", "G_A"]  # A->B and the B->A->B cycle, no identity pass


def test_resume_continues_exactly_pools_included(tmp_path):
    from condgan import train
    full, half = tmp_path / "full", tmp_path / "half"
    assert train.main(TINY + ["--epochs", "1", "--max-steps", "6", "--out", str(full)]) == 0
    assert train.main(TINY + ["--epochs", "1", "--max-steps", "3", "--out", str(half)]) == 0
    assert train.main(["--resume", str(half), "--max-steps", "6"]) == 0
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(half / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert int(a["pool_A.count"]) == 3
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_folder_data_survives_bad_files_and_translates_both_ways(tmp_path, capsys):
    from condgan import evaluate, train, translate
    rng = np.random.default_rng(0)
    root = tmp_path / "h2z"
    for side, n in (("A", 5), ("B", 3)):
        for split in ("train", "test"):
            (root / f"{split}{side}").mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                    root / f"{split}{side}" / f"{i}.png")
    # a PNG named .jpg, a duplicate, and an unreadable file
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "trainA" / "x.jpg", format="png")
    (root / "trainA" / "dup.png").write_bytes((root / "trainA" / "0.png").read_bytes())
    (root / "trainB" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    run = tmp_path / "run"
    flags = [f for f in TINY if f not in ("--crop-size", "32", "--load-size", "36")]
    assert train.main(flags + ["--data", str(root), "--crop-size", "16", "--load-size", "18", "--epochs", "1",
                               "--out", str(run)]) == 0
    captured = capsys.readouterr()
    assert "skipping 1 unreadable file(s)" in captured.err and "broken.jpg" in captured.err
    assert "7 A and 3 B training images" in captured.out
    out = tmp_path / "out"
    assert translate.main([str(run), str(root / "testB"), "--direction", "BtoA", "--out", str(out),
                           "--no-progress"]) == 0
    assert Image.open(out / "0.png").size == (24, 20)
    assert evaluate.main([str(run), "--json", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["n"] == 5 and 0 < res["cycle_l1_a"] < 2 and res["fid_a_to_b"] is None
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # CycleGAN keeps no best.pt
        evaluate.main([str(run), "--best"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "has no best checkpoint" in err and "\n" not in err
