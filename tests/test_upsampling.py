"""Generator upsampling (transpose | nearest | bilinear, "resize" = nearest) and the ResNet's anti-aliased
downsampling: shapes, the fused ops on the hot path, old checkpoints, the fixed blur, ONNX parity."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from ops_helpers import REF_ONLY
from torch import nn

from condgan import config, export, models, ops
from condgan.data import DataInfo
from condgan.errors import CondganError
from condgan.models.cyclegan import CycleGANConfig
from condgan.models.pix2pix import Pix2PixConfig
from condgan.models.translation import build_generator
from condgan.nets.layers import BlurDownsample2x
from condgan.nets.resnet import ResnetGenerator
from condgan.nets.unet import UNetGenerator
from condgan.ops import _loader

MODES = ["transpose", "nearest", "bilinear", "resize"]


def unet(mode, **kw):
    return UNetGenerator(1, 3, depth=4, width=4, upsampling=mode, **kw)


def resnet(mode, antialias=False, blocks=1):
    return ResnetGenerator(1, 3, blocks=blocks, width=4, upsampling=mode, antialias=antialias)


def _perturb(net: nn.Module, seed: int = 7) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=g) * 0.05)
                if "running_var" in name:
                    t.abs_().add_(0.5)
    return net.eval()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("make", [unet, resnet, lambda m: resnet(m, antialias=True)], ids=["unet", "resnet", "resnet_aa"])
@pytest.mark.parametrize("h, w", [(32, 32), (17, 45), (9, 6)])
def test_shapes_at_square_and_odd_sizes(make, mode, h, w):
    y = make(mode)(torch.randn(2, 1, h, w))
    assert y.shape == (2, 3, h, w) and y.abs().max() <= 1


def test_unknown_upsampling_is_refused():
    with pytest.raises(ValueError, match="unknown upsampling"):
        unet("cubic")
    with pytest.raises(ValueError, match="unknown upsampling"):
        resnet("cubic")


def _counting(monkeypatch):
    calls = {"fused": 0, "plain": 0}
    fused, plain = ops.upsample2x_bias_leaky_relu, ops.upsample2x

    def count_fused(x, bias=None, negative_slope=0.2, gain=1.0, mode="nearest", impl="auto"):
        assert negative_slope == 0.0 and gain == 1.0 and bias is None  # exactly ReLU
        calls["fused"] += 1
        return fused(x, bias, negative_slope, gain, mode, impl)

    def count_plain(x, mode="nearest", impl="auto"):
        calls["plain"] += 1
        return plain(x, mode, impl)

    monkeypatch.setattr(ops, "upsample2x_bias_leaky_relu", count_fused)
    monkeypatch.setattr(ops, "upsample2x", count_plain)
    return calls


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_decoders_upsample_through_condgan_ops(monkeypatch, mode):
    calls = _counting(monkeypatch)
    unet(mode)(torch.randn(1, 1, 16, 16))
    assert calls == {"fused": 4, "plain": 0}  # every U-Net level: ReLU + upsample in one op
    calls.update(fused=0, plain=0)
    resnet(mode)(torch.randn(1, 1, 16, 16))
    assert calls == {"fused": 1, "plain": 1}  # the first follows a residual sum, the second a ReLU
    calls.update(fused=0, plain=0)
    unet("transpose")(torch.randn(1, 1, 16, 16))
    assert calls == {"fused": 0, "plain": 0}


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_native_kernels_run_and_match_the_reference(monkeypatch, mode):
    if REF_ONLY:
        pytest.skip("CONDGAN_OPS=ref set explicitly: native kernels not wanted")
    state = _loader.state()
    if not state.loaded:
        pytest.skip(f"the native extension is not loaded ({state.origin})")
    for make in (unet, resnet):
        torch.manual_seed(0)
        net = _perturb(make(mode)).train()
        x = torch.randn(2, 1, 20, 12)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            y = net(x)
            y.square().sum().backward()
        names = {e.key for e in prof.key_averages()}
        assert "condgan::upsample2x_bias_leaky_relu" in names, sorted(n for n in names if "condgan" in n)
        grads = [p.grad.clone() for p in net.parameters()]
        net.zero_grad()
        monkeypatch.setenv("CONDGAN_OPS", "ref")
        y_ref = net(x)
        y_ref.square().sum().backward()
        monkeypatch.delenv("CONDGAN_OPS")
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
        for g, p in zip(grads, net.parameters()):
            torch.testing.assert_close(g, p.grad, atol=1e-4, rtol=1e-4)


def test_resize_is_nearest_with_the_old_layout():
    # the layout "resize" had before nearest/bilinear existed: convs at these indices (1 residual block)
    old_keys = {f"net.{i}.{p}" for i in (1, 4, 7, 12, 16, 20) for p in ("weight", "bias")}
    old_keys |= {f"net.10.block.{i}.{p}" for i in (1, 5) for p in ("weight", "bias")}
    torch.manual_seed(0)
    saved = _perturb(resnet("resize")).state_dict()
    assert set(saved) == old_keys
    for make in (resnet, unet):
        torch.manual_seed(0)
        saved = _perturb(make("resize")).state_dict()
        loaded = make("nearest").eval()
        loaded.load_state_dict(saved)  # strict: same keys and shapes
        reference = make("resize").eval()
        reference.load_state_dict(saved)
        x = torch.randn(1, 1, 24, 20)
        torch.testing.assert_close(loaded(x), reference(x), atol=0, rtol=0)


def test_config_accepts_resize_and_builds_nearest():
    cfg = config.from_dict(Pix2PixConfig, {"upsampling": "resize", "generator": "resnet_6blocks"}, "old.json")
    g = build_generator(cfg, 1, 3)
    assert {m.mode for m in g.modules() if type(m).__name__ == "Upsample2x"} == {"nearest"}
    g = build_generator(Pix2PixConfig(upsampling="bilinear", unet_depth=3, g_width=4), 1, 3)
    assert isinstance(g, UNetGenerator) and g.upsampling == "bilinear"
    parser = config.build_parser(Pix2PixConfig, "t")
    assert parser.parse_args(["--upsampling", "nearest", "--antialias", "--generator", "resnet_9blocks"]).antialias
    with pytest.raises(CondganError, match="--upsampling must be one of"):
        config.from_dict(Pix2PixConfig, {"upsampling": "cubic"}, "x.json")
    with pytest.raises(CondganError, match="ResNet generators only"):
        Pix2PixConfig(antialias=True, generator="unet_256").validate()


def test_blur_is_fixed_and_removes_a_checkerboard():
    g = resnet("transpose", antialias=True)
    blurs = [m for m in g.modules() if isinstance(m, BlurDownsample2x)]
    assert len(blurs) == 2
    params = {id(p) for p in g.parameters()}
    assert all(id(b.kernel) not in params and not b.kernel.requires_grad for b in blurs)
    assert any(b.kernel is t for b in blurs for t in g.buffers())
    assert not any("kernel" in k for k in g.state_dict())  # constructed, never saved or trained
    assert sum(p.numel() for p in g.parameters()) == sum(p.numel() for p in resnet("transpose").parameters())
    torch.testing.assert_close(blurs[0].kernel[0, 0].sum(), torch.tensor(1.0))
    blur = BlurDownsample2x(2)
    checker = ((torch.arange(8)[:, None] + torch.arange(10)).remainder(2) * 2 - 1).float().expand(1, 2, 8, 10)
    out = blur(checker)
    assert out.shape == (1, 2, 4, 5) and out.abs().max() < 1e-6
    flat = torch.full((1, 2, 6, 6), 0.5)
    torch.testing.assert_close(blur(flat), torch.full((1, 2, 3, 3), 0.5))


def test_antialiased_encoder_features_shift_less():
    def encoder(g):
        first_block = next(i for i, m in enumerate(g.net) if type(m).__name__ == "ResidualBlock")
        return g.net[:first_block]

    x = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    shifted = torch.roll(x, 1, -1)
    change = {}
    for aa in (False, True):
        torch.manual_seed(100)
        with torch.no_grad():
            e = encoder(ResnetGenerator(1, 3, 1, 16, antialias=aa).eval())
            f, fs = e(x)[..., 2:-2, 2:-2], e(shifted)[..., 2:-2, 2:-2]
        change[aa] = ((f - fs).norm() / f.norm()).item()
    assert change[True] < 0.5 * change[False], change  # measured: about 0.29 against 1.16


class _All(nn.Module):
    """Every upsampling mode of both generators in one graph: one export instead of six."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.nets = nn.ModuleList([_perturb(unet("nearest")), _perturb(unet("bilinear")),
                                   _perturb(resnet("nearest")), _perturb(resnet("bilinear", antialias=True)),
                                   _perturb(resnet("transpose", antialias=True))])

    def forward(self, image):
        return torch.cat([n(image) for n in self.nets], 1)


def test_onnx_graph_of_every_mode_matches_pytorch_at_any_size(tmp_path):
    # The TorchScript exporter: seconds for all five nets, where the dynamo exporter that
    # condgan.export uses takes ~10 s per net on 2 cores (the pipeline test below runs one).
    model = _All().eval().requires_grad_(False)
    path = tmp_path / "all.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 1, 32, 32),), str(path), dynamo=False, opset_version=18,
                          input_names=["image"], dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}})
    proto = onnx.load(str(path))
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    groups = [a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert {8, 16} <= set(groups)  # the blurs: plain depthwise convolutions
    assert "Resize" in {n.op_type for n in proto.graph.node}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 32, 32), (2, 1, 27, 37), (1, 1, 9, 50)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(shape[2])) * 2 - 1
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == expected.shape == (shape[0], 15, *shape[2:])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_export_pipeline_with_bilinear_and_antialias(tmp_path):
    torch.manual_seed(3)
    cfg = CycleGANConfig(resnet_blocks=1, g_width=4, d_width=4, crop_size=32, load_size=32, identity_weight=0,
                         upsampling="bilinear", antialias=True)
    model = models.build(cfg, DataInfo("unpaired", "t", 3, 32, 32, in_channels=1)).eval()
    _perturb(model.G_A)
    report = export.export_model(model, tmp_path / "g.onnx")  # raises if onnxruntime differs from PyTorch
    assert [p["batch"] for p in report["parity"]] == [1, 3]
    assert all(p["max_abs_diff"] <= 1e-4 and p["finite"] for p in report["parity"])
