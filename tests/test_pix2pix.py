"""pix2pix: nets, paired data, one training step, validation, translate and evaluate."""
from __future__ import annotations

import dataclasses

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condgan import models
from condgan.data import DataInfo
from condgan.data.paired import AlignedFiles, PairedImages, make_transform, source_for_folder
from condgan.errors import DataError
from condgan.models.pix2pix import Pix2Pix, Pix2PixConfig
from condgan.nets.patchgan import PatchDiscriminator, PixelDiscriminator, receptive_field
from condgan.nets.unet import UNetGenerator

TINY = ["--model", "pix2pix", "--procedural-train", "4", "--crop-size", "32", "--load-size", "36",
        "--unet-depth", "5", "--g-width", "4", "--d-width", "4", "--val-images", "2", "--sample-pairs", "2",
        "--no-progress", "--workers", "0", "--log-every", "1"]


# ---- nets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("cin, cout, depth, h, w", [(3, 3, 5, 32, 32), (1, 3, 5, 64, 48), (4, 2, 4, 16, 16),
                                                    (3, 1, 5, 37, 53), (2, 5, 3, 9, 70)])
def test_unet_shapes_any_size_and_channels(cin, cout, depth, h, w):
    g = UNetGenerator(cin, cout, depth=depth, width=4).eval()
    y = g(torch.randn(2, cin, h, w))
    assert y.shape == (2, cout, h, w)
    assert y.abs().max() <= 1 and torch.isfinite(y).all()


def test_unet_dropout_blocks_follow_the_reference_layout():
    for depth, expected in ((8, 3), (7, 2), (5, 0)):
        g = UNetGenerator(3, 3, depth=depth, width=4)
        assert sum(isinstance(m, torch.nn.Dropout) for m in g.modules()) == expected


@pytest.mark.parametrize("layers, h, out", [(3, 256, 30), (3, 64, 6), (1, 64, 30), (2, 70, 15)])
def test_patchgan_output_shapes(layers, h, out):
    d = PatchDiscriminator(6, width=4, layers=layers)
    assert d(torch.randn(2, 6, h, h)).shape == (2, 1, out, out)


def test_pixel_discriminator_scores_every_pixel():
    assert PixelDiscriminator(4, width=4)(torch.randn(2, 4, 19, 23)).shape == (2, 1, 19, 23)


def test_patchgan_receptive_field_is_70():
    """Measured: the input pixels that move one output logit form a 70x70 square."""
    assert receptive_field(3) == 70
    d = PatchDiscriminator(3, width=4, layers=3, norm="none").double()
    x = torch.randn(1, 3, 160, 160, dtype=torch.double, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    seen = x.grad.abs().sum((0, 1)) > 0
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_same_function_as_the_reference_architecture():
    """With the reference's weights, our unet_256 and PatchGAN compute the same outputs."""
    from condgan.bench.reference_pix2pix import copy_weights_into, patchgan, unet_256
    torch.manual_seed(0)
    ref_g, ref_d = unet_256(3, 3, ngf=8), patchgan(6, ndf=8)
    ours_g, ours_d = UNetGenerator(3, 3, 8, 8), PatchDiscriminator(6, 8, 3)
    copy_weights_into(ours_g, ours_d, ref_g, ref_d)
    for net in (ref_g, ref_d, ours_g, ours_d):
        net.train()
    for m in list(ref_g.modules()) + list(ours_g.modules()):  # dropout off so the two can be compared
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x, pair = torch.randn(2, 3, 256, 256), torch.randn(2, 6, 64, 64)
    torch.testing.assert_close(ours_g(x), ref_g(x.clone()), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours_d(pair), ref_d(pair.clone()), rtol=1e-4, atol=1e-5)


# ---- paired data ---------------------------------------------------------------------------------
@pytest.mark.parametrize("preprocess", ["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"])
def test_paired_transforms_keep_a_and_b_aligned(preprocess):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)

    class Same:
        modes = ("RGB", "RGB")

        def __len__(self):
            return 1

        def __call__(self, i):
            return img, img.copy(), "x"

    ds = PairedImages(Same(), make_transform(preprocess, 36, 32, flip=True, train=True))
    seen = set()
    for _ in range(12):  # several random draws, flips included
        item = ds[0]
        assert torch.equal(item["input"], item["target"])
        seen.add(item["input"].sum().item())
    assert preprocess == "none" or len(seen) > 1  # the augmentation really is random


def _aligned_folder(root: Path, n=3, size=24, splits=("train", "val")):
    rng = np.random.default_rng(1)
    for split in splits:
        (root / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, 2 * size, 3), dtype=np.uint8)).save(root / split / f"{i}.png")
    return root


def test_aligned_layout_splits_halves(tmp_path):
    root = _aligned_folder(tmp_path / "d")
    src = source_for_folder(root, "val")
    a, b, name = src(0)
    full = np.asarray(Image.open(root / "val" / "0.png"))
    assert isinstance(src, AlignedFiles) and np.array_equal(a, full[:, :24]) and np.array_equal(b, full[:, 24:])


def test_separate_a_b_layout_and_its_errors(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "ab"
    for side, mode in (("A", "L"), ("B", "RGB")):
        (root / side).mkdir(parents=True)
        for i in range(3):
            shape = (16, 20) if mode == "L" else (16, 20, 3)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(root / side / f"p{i}.png")
    cfg = Pix2PixConfig(data=str(root), crop_size=16, load_size=16, preprocess="none")
    from condgan.data.paired import build
    ds, info = build(cfg, "train")
    assert (info.in_channels, info.channels, len(ds)) == (1, 3, 3)
    assert ds[0]["input"].shape == (1, 16, 20) and ds[0]["target"].shape == (3, 16, 20)
    # size mismatch, named
    Image.fromarray(rng.integers(0, 255, (17, 20, 3), dtype=np.uint8)).save(root / "B" / "p1.png")
    with pytest.raises(DataError, match=r"size mismatch: .*p1\.png is 20x16 but .*p1\.png is 20x17"):
        build(cfg, "train")
    # unmatched pair, named
    (root / "B" / "p1.png").unlink()
    with pytest.raises(DataError, match=r"unmatched pair: .*A/p1\.png"):
        build(cfg, "train")
    # unreadable image, named
    (root / "B" / "p1.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot read image .*B/p1\.png"):
        build(cfg, "train")


def test_missing_folder_and_unknown_name_are_one_sentence(tmp_path):
    from condgan.data.paired import build
    with pytest.raises(DataError, match="neither"):
        build(Pix2PixConfig(data=str(tmp_path)), "train")
    with pytest.raises(DataError, match="unknown paired dataset 'mapz'"):
        build(Pix2PixConfig(data="mapz"), "train")


# ---- training ------------------------------------------------------------------------------------
def _tiny_model():
    cfg = Pix2PixConfig(unet_depth=4, g_width=4, d_width=4, crop_size=32)
    info = DataInfo("paired", "t", 3, 32, 32, in_channels=1)
    return Pix2Pix(cfg, info)


def test_one_training_step_updates_g_and_d():
    from condgan.step import StepRunner
    torch.manual_seed(0)
    model = _tiny_model()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batch = {"input": torch.randn(2, 1, 32, 32), "target": torch.rand(2, 3, 32, 32) * 2 - 1}
    runner = StepRunner(dataclasses.replace(model.cfg, amp="off"), model, "cpu")  # the step, without data
    losses = runner.train_step(batch)
    assert set(losses) == {"D", "G"} and all(torch.isfinite(v).all() for d in losses.values() for v in d.values())
    for name in ("G", "D"):
        changed = [k for k in before if k.startswith(name + ".") and k.endswith("weight")
                   and not torch.equal(before[k], model.state_dict()[k])]
        weights = [k for k in before if k.startswith(name + ".") and k.endswith("weight")]
        assert len(changed) == len(weights), f"{name}: {set(weights) - set(changed)} did not change"


def test_train_cli_keeps_best_checkpoint_and_resumes_exactly(tmp_path, capsys):
    from condgan import train
    full, half = tmp_path / "full", tmp_path / "half"
    assert train.main(TINY + ["--epochs", "2", "--out", str(full)]) == 0
    assert (full / "checkpoints" / "best.pt").is_file() and (full / "samples" / "epoch_0002.png").is_file()
    vals = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines() if "val_l1" in line]
    assert len(vals) == 2 and vals[0]["best"] is True
    assert train.main(TINY + ["--epochs", "2", "--max-steps", "4", "--out", str(half)]) == 0
    assert train.main(["--resume", str(half), "--max-steps", "0"]) == 0
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(half / "checkpoints" / "last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


# ---- using the result ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from condgan import train
    out = tmp_path_factory.mktemp("run") / "p2p"
    assert train.main(TINY + ["--epochs", "1", "--out", str(out)]) == 0
    return out


def test_translate_restores_non_square_sizes_and_writes_html(tiny_run, tmp_path):
    from condgan import translate
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name, (h, w) in {"wide": (37, 101), "tall": (90, 33), "tall2": (90, 33)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    assert translate.main([str(tiny_run), str(folder), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert Image.open(tmp_path / "out" / "wide.png").size == (101, 37)
    assert Image.open(tmp_path / "out" / "tall2.png").size == (33, 90)
    page = (tmp_path / "out" / "index.html").read_text()
    assert page.count("<tr>") == 4 and "html/wide_input.png" in page and "target" not in page


def test_translate_aligned_shows_targets(tiny_run, tmp_path):
    from condgan import translate
    root = _aligned_folder(tmp_path / "d", n=2, size=20, splits=("val",))
    assert translate.main([str(tiny_run), str(root / "val"), "--aligned", "--out", str(tmp_path / "o"),
                           "--no-progress", "--best"]) == 0
    assert Image.open(tmp_path / "o" / "0.png").size == (20, 20)
    assert "html/1_target.png" in (tmp_path / "o" / "index.html").read_text()


def test_translate_bad_input_is_one_sentence(tiny_run, tmp_path, capsys):
    from condgan import translate
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as e:
        translate.main([str(tiny_run), str(tmp_path / "bad.png"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("condgan.translate: error: cannot read image") and "\n" not in err


def test_evaluate_reports_l1_psnr_ssim_and_why_no_fid(tiny_run, tmp_path, capsys):
    from condgan import evaluate
    assert evaluate.main([str(tiny_run), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "SSIM" in out and "FID   not computed: Inception FID/KID need the weights file" in out
    assert "--download-weights" in out and "checkerboard ratio" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["n"] == 100 and 0 < res["l1"] < 2 and res["l1_input_copy"] > 0 and res["fid"] is None


def test_load_rebuilds_the_run(tiny_run):
    model, cfg, info = models.load(tiny_run)
    assert cfg.model == "pix2pix" and info.kind == "paired" and info.in_channels == 3


def test_pix2pix_takes_the_resnet_generator():
    cfg = Pix2PixConfig(generator="resnet_6blocks", g_width=4, d_width=4, crop_size=32)
    model = Pix2Pix(cfg, DataInfo("paired", "t", 3, 32, 32, in_channels=1))
    assert type(model.G).__name__ == "ResnetGenerator"
    assert model.translate(torch.randn(1, 1, 40, 24)).shape == (1, 3, 40, 24)
