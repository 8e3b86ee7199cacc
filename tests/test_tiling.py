"""Tiled translation (condgan.tiling and the runtime's condgan_runtime.tiling): the same plan on both sides,
exact results for a generator that only looks nearby, and no seam for one that does not."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condgan import tiling
from condgan.models.pix2pix import Pix2Pix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export" / "python"))
from condgan_runtime import images as rt_images  # noqa: E402
from condgan_runtime import tiling as rt_tiling  # noqa: E402

CPU = torch.device("cpu")


def smooth_image(h, w, seed=0):
    """Low-frequency colour waves with a rising contrast: the tiles of one image differ in their statistics."""
    yy, xx = np.mgrid[0:h, 0:w] / 30.0
    phase = np.random.default_rng(seed).uniform(0, 6, 3)
    chans = [np.sin(xx + 0.3 * yy + phase[0]), np.cos(0.7 * xx - yy + phase[1]),
             np.sin(0.5 * (xx + yy) + phase[2]) * xx / 8]
    return ((np.clip(np.stack(chans, -1), -1, 1) + 1) * 127.5).astype(np.uint8)


def whole(net, img):
    with torch.no_grad():
        return net(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1)[0]


def seam_ratio(out: torch.Tensor, rows, cols) -> float:
    """Largest mean step between neighbouring pixel lines inside the tiles' overlap bands, over the largest
    step anywhere else: about 1 without a seam, far above 1 with one."""
    worst = 0.0
    for axis, plan in ((2, cols), (1, rows)):
        steps = out.diff(dim=axis).abs().mean(dim=(0, 3 - axis)).numpy()
        band = np.zeros(len(steps), bool)
        for start, _, before, _, _ in plan:
            if before:
                band[start - 1:start + before] = True
        worst = max(worst, steps[band].max() / steps[~band].max())
    return worst


@pytest.mark.parametrize("length", [1, 7, 64, 65, 100, 511, 512, 513, 1000, 3072, 4096])
@pytest.mark.parametrize("tile,overlap", [(64, 16), (512, 64), (100, 0), (256, 200), (64, 64)])
def test_runtime_and_torch_plan_alike_and_cover_every_pixel(length, tile, overlap):
    size, starts, shared, ramp = rt_tiling.axis_plan(length, tile, overlap)
    ours = tiling.axis_tiles(length, tile, overlap)
    assert [(s, size, *r, ramp) for s, r in zip(starts, shared)] == ours
    total = np.zeros(length)
    for start, n, before, after, r in ours:
        w = tiling.ramp_window(n, before, after, r).numpy()
        np.testing.assert_allclose(w, rt_tiling.window(n, before, after, r), rtol=0, atol=1e-6)
        assert (w >= 0).all() and n == min(length, tile)
        total[start:start + n] += w
    assert (total > 0.999).all() and (total < 1.001).all()  # the ramps of one overlap add up to 1
    if length > tile:
        assert all(b >= min(overlap, tile // 3) for _, _, b, _, _ in ours[1:])


def test_tile_size_rounds_up_to_the_generators_multiple():
    torch.manual_seed(0)
    from condgan.nets.resnet import ResnetGenerator
    from condgan.nets.unet import UNetGenerator
    assert tiling.size_multiple(UNetGenerator(3, 3, depth=5, width=4)) == 32
    assert tiling.size_multiple(ResnetGenerator(3, 3, blocks=1, width=4)) == 4
    assert tiling.size_multiple(torch.nn.Conv2d(3, 3, 1)) == 1
    assert tiling.tile_size(500, 256) == 512 and tiling.tile_size(64, 4) == 64
    assert rt_tiling.round_tile(500, 256) == 512


def test_a_local_generator_gives_the_whole_image_result():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Tanh()).eval()
    img = np.random.default_rng(1).integers(0, 256, (150, 203, 3), dtype=np.uint8)
    expected = whole(net, img)
    with torch.no_grad():
        got = tiling.translate_tiled(net, img, CPU, tile=48, overlap=12, batch=3)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # the runtime's numpy version, with the same net as its "session"
    run = lambda x: net(torch.from_numpy(x)).detach().numpy()  # noqa: E731
    u8 = rt_tiling.translate_tiled(run, img, tile=48, overlap=12, batch=5)
    assert np.abs(u8.astype(int) - rt_images.to_uint8(expected.numpy()).astype(int)).max() <= 1


def test_a_receptive_field_within_the_overlap_is_still_exact():
    torch.manual_seed(0)  # 3x3 then 3x3: each output pixel sees 2 px around it; the ramp spans 16
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 3, padding=1))
    img = smooth_image(96, 130)
    expected = whole(net, img)
    with torch.no_grad():
        got = tiling.translate_tiled(net, img, CPU, tile=40, overlap=16, batch=4)
    # the ramps' outer 2 pixels see the tile's zero padding, at weights below sin²(π/2 · 2.5/16) = 0.06
    assert (got - expected).abs().max() < 0.06 * (expected.abs().max() + 1)
    inner = (got - expected)[:, 2:-2, 2:-2].abs().mean()
    assert inner < 1e-3


@pytest.mark.parametrize("net_kind", ["instance_norm", "wide"])
def test_blended_tiles_show_no_seam_where_hard_cuts_do(net_kind):
    torch.manual_seed(0)
    if net_kind == "instance_norm":  # per-tile statistics: every tile normalises differently
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate"),
                                  torch.nn.InstanceNorm2d(3), torch.nn.Tanh()).eval()
        tile, overlap = 64, 24
    else:  # a 41-pixel receptive field, wider than the overlap, that sees the zero padding at tile edges
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.AvgPool2d(41, 1, 20), torch.nn.Tanh()).eval()
        tile, overlap = 96, 32  # (64, 24 leaves a step 1.7x the interior's: the padding reaches the ramp)
    multiple = tiling.size_multiple(net)
    h, w = 160, 224
    img = smooth_image(h, w)
    rows, cols = tiling.axis_tiles(h, tile, overlap), tiling.axis_tiles(w, tile, overlap)
    with torch.no_grad():
        blended = tiling.translate_tiled(net, img, CPU, tile, overlap, multiple, batch=4)
        hard = torch.zeros_like(blended)  # each tile pasted over the previous ones: a cut at every tile start
        for (y0, th, *_), (x0, tw, *_) in [(r, c) for r in rows for c in cols]:
            hard[:, y0:y0 + th, x0:x0 + tw] = whole(net, np.ascontiguousarray(img[y0:y0 + th, x0:x0 + tw]))
    assert (blended - whole(net, img)).abs().max() > 0.05  # tiling does change this generator's output
    assert seam_ratio(hard, rows, cols) > 3  # the metric sees a cut
    assert seam_ratio(blended, rows, cols) < 1.3  # and no step in the blend above the interior's own


def test_progress_counts_every_tile():
    net = torch.nn.Conv2d(3, 3, 1)
    seen = []
    with torch.no_grad():
        tiling.translate_tiled(net, smooth_image(100, 100), CPU, 32, 8, batch=3, on_batch=seen.append)
    assert sum(seen) == tiling.tile_count(100, 100, 32, 8, 1) == 16 and max(seen) == 3
    calls = []
    rt_tiling.translate_tiled(lambda x: x, smooth_image(100, 100), 32, 8, batch=3,
                              progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (16, 16) and len(calls) == 6


@pytest.fixture(scope="module")
def p2p_run(tmp_path_factory):
    from condgan import train
    out = tmp_path_factory.mktemp("tiling") / "p2p"
    assert train.main(["--model", "pix2pix", *Pix2Pix.smoke_flags, "--max-steps", "1", "--no-progress",
                       "--workers", "0", "--out", str(out)]) == 0
    return out


def test_translate_cli_tiles_large_images(p2p_run, tmp_path, capsys):
    from condgan import models, translate
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(smooth_image(70, 150)).save(src / "big.png")
    Image.fromarray(smooth_image(20, 24)).save(src / "small.png")
    assert translate.main([str(p2p_run), str(src), "--out", str(tmp_path / "out"), "--max-pixels", "2000",
                           "--tile", "40", "--tile-overlap", "8", "--tile-batch", "2"]) == 0
    err = capsys.readouterr().err
    assert "big.png tiles" in err and "tile" in err  # the tqdm bar over tiles
    model, _, _ = models.load(p2p_run)
    expected = tiling.translate_tiled(model.translate, smooth_image(70, 150), CPU, 40, 8, 32, 2)
    got = np.asarray(Image.open(tmp_path / "out" / "big.png"))
    assert got.shape == (70, 150, 3)
    assert np.abs(got.astype(int) - translate.to_uint8(expected).astype(int)).max() <= 1
    assert Image.open(tmp_path / "out" / "small.png").size == (24, 20)
    for bad, needle in ((["--tile", "0"], "--tile"), (["--tile-overlap", "-1"], "--tile-overlap")):
        with pytest.raises(SystemExit) as e:
            translate.main([str(p2p_run), str(src), "--out", str(tmp_path / "o2"), *bad])
        assert e.value.code != 0 and needle in capsys.readouterr().err
