"""condgan.convert: generators trained with the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix)
become condgan runs that compute what the reference computes.

The reference nets below are written in this file from the published architecture (layer order, nesting,
biases, norms, dropout placement), so the state dicts they give have the reference's exact names and shapes.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from condgan import checkpoint as ckpt_io
from condgan import convert, export, models, translate
from condgan.errors import CondganError
from condgan.nets import junyanz


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "instance":
        return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    return nn.Identity()


class RefUnetBlock(nn.Module):
    """One skip-connection level: its own Sequential `model`, the next level inside it."""

    def __init__(self, outer, inner, cin=None, sub=None, outermost=False, innermost=False, norm="batch",
                 dropout=False):
        super().__init__()
        bias = norm == "instance"
        self.outermost = outermost
        down = nn.Conv2d(cin or outer, inner, 4, 2, 1, bias=bias)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), _norm(norm, outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, _norm(norm, inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias), _norm(norm, outer)]
            layers += [nn.Dropout(0.5)] if dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        y = self.model(x)  # the in-place LeakyReLU has already activated x: the skip carries that
        return y if self.outermost else torch.cat([x, y], 1)


class RefUnet(nn.Module):
    def __init__(self, cin, cout, downs, ngf, norm, dropout):
        super().__init__()
        block = RefUnetBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(downs - 5):
            block = RefUnetBlock(ngf * 8, ngf * 8, sub=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = RefUnetBlock(ngf * mult, ngf * mult * 2, sub=block, norm=norm)
        self.model = RefUnetBlock(cout, ngf, cin, block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


class RefResBlock(nn.Module):
    def __init__(self, dim, norm, dropout):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim), nn.ReLU(True)]
        layers += [nn.Dropout(0.5)] if dropout else []
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnet(nn.Module):
    def __init__(self, cin, cout, blocks, ngf, norm, dropout):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7, bias=bias), _norm(norm, ngf), nn.ReLU(True)]
        for m in (1, 2):
            layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1, bias=bias), _norm(norm, ngf * m * 2), nn.ReLU(True)]
        layers += [RefResBlock(ngf * 4, norm, dropout) for _ in range(blocks)]
        for m in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1, bias=bias),
                       _norm(norm, ngf * m // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


NETS = {"unet_128": (RefUnet, 7, 128), "unet_256": (RefUnet, 8, 256),
        "resnet_6blocks": (RefResnet, 6, 32), "resnet_9blocks": (RefResnet, 9, 32)}


def reference(net, norm="batch", dropout=True, ngf=4, cin=3, cout=3, seed=0):
    """A reference net with non-trivial weights and batch-norm statistics, and its image size."""
    cls, n, size = NETS[net]
    torch.manual_seed(seed)
    ref = cls(cin, cout, n, ngf, norm, dropout)
    with torch.no_grad():
        for name, t in ref.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.1)
    return ref.eval(), size


def save(ref, path, prefix="", drop=(), extra=None):
    state = {prefix + k: v for k, v in ref.state_dict().items() if not k.endswith(drop or ("\0",))}
    torch.save({**state, **(extra or {})}, path)
    return path


def run_convert(*argv):
    convert.main([str(a) for a in argv])


def converted_g(run, direction=None):
    model, _, _ = models.load(run)
    return model, model.generator(model.resolve_direction(direction))


CASES = [(net, norm, dropout) for net in NETS for norm in ("batch", "instance") for dropout in (True, False)]


@pytest.mark.parametrize("net,norm,dropout", CASES, ids=lambda v: str(v))
def test_converted_generator_computes_what_the_reference_computes(tmp_path, net, norm, dropout):
    ref, size = reference(net, norm, dropout)
    f = save(ref, tmp_path / "latest_net_G.pth")
    flags = ["--netG", net, "--norm", norm] + ([] if dropout else ["--no-dropout"])
    run_convert(f, *flags, "--out", tmp_path / "run")
    model, g = converted_g(tmp_path / "run")
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        want = ref(x.clone())
        assert torch.allclose(model.translate(x), want, atol=2e-5), "eval mode"
        assert want.std() > 0.05  # not a saturated or constant output
    # the reference's test.py without --eval: train mode, one image at a time, same dropout draws
    run_ref, run_ours = ref.train(), junyanz.reference_test_mode(model)
    for i in range(2):
        torch.manual_seed(10 + i)
        with torch.no_grad():
            want = run_ref(x[i:i + 1].clone())
        torch.manual_seed(10 + i)
        assert torch.allclose(run_ours.translate(x[i:i + 1]), want, atol=2e-5), "reference test mode"
    assert not g.training
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["generator"], cfg["norm"], cfg["dropout"], cfg["g_width"]) == (net, norm, dropout, 4)


def test_settings_are_read_from_the_file_and_a_dataparallel_prefix_is_dropped(tmp_path):
    ref, size = reference("unet_128", "batch", ngf=4, cin=1, cout=3)
    f = save(ref, tmp_path / "g.pth", prefix="module.", drop=("num_batches_tracked",))  # an old, DataParallel file
    run_convert(f, "--out", tmp_path / "run")
    model, g = converted_g(tmp_path / "run")
    assert model.io_channels() == (1, 3) and model.info.height == 256  # the reference's default crop size
    x = torch.rand(1, 1, size, size) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(g(x), ref(x.clone()), atol=2e-5)


def test_instance_norm_statistics_of_old_pytorch_files_are_dropped(tmp_path):
    ref, size = reference("resnet_6blocks", "instance", dropout=False)
    old = {"model.2.running_mean": torch.zeros(4), "model.2.running_var": torch.ones(4)}  # pytorch < 0.4
    run_convert(save(ref, tmp_path / "g.pth", extra=old), "--out", tmp_path / "run")
    _, g = converted_g(tmp_path / "run")
    x = torch.rand(1, 3, size, size) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(g(x), ref(x.clone()), atol=2e-5)


def _error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        run_convert(*argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize("net,norm,dropout,flags,says", [
    ("unet_256", "batch", True, ["--netG", "unet_128"], "--netG unet_128 does not match"),
    ("unet_128", "batch", True, ["--netG", "resnet_9blocks"], "it holds a unet_128 generator; use --netG unet_128"),
    ("unet_256", "batch", True, ["--norm", "instance"], "--norm instance does not match"),
    ("resnet_9blocks", "instance", False, ["--norm", "batch"], "use --norm instance"),
    ("resnet_6blocks", "instance", True, ["--no-dropout"], "its residual blocks have dropout; drop --no-dropout"),
    ("resnet_9blocks", "batch", True, ["--netG", "resnet_6blocks"], "use --netG resnet_9blocks"),
    ("unet_128", "instance", True, ["--ngf", "64"], "--ngf 64 does not match"),
    ("resnet_6blocks", "batch", False, ["--input-nc", "1"], "takes 3-channel images; use --input-nc 3"),
])
def test_a_flag_that_does_not_fit_the_file_is_named_in_one_sentence(tmp_path, capsys, net, norm, dropout, flags,
                                                                     says):
    ref, _ = reference(net, norm, dropout)
    err = _error(capsys, save(ref, tmp_path / "g.pth"), *flags, "--out", tmp_path / "run")
    assert says in err and "missing" not in err.lower()
    assert not (tmp_path / "run").exists()


def test_other_files_are_refused_in_one_sentence(tmp_path, capsys):
    d = nn.Module()  # the reference's PatchGAN: one Sequential `model` of 4x4 convolutions
    d.model = nn.Sequential(nn.Conv2d(6, 4, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(4, 1, 4, 1, 1))
    torch.save(d.state_dict(), tmp_path / "latest_net_D.pth")
    assert "this is a discriminator" in _error(capsys, tmp_path / "latest_net_D.pth", "--out", tmp_path / "r")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    assert "not a readable PyTorch state dict" in _error(capsys, tmp_path / "junk.pth", "--out", tmp_path / "r")
    ref, _ = reference("unet_128", "batch")
    cut = {k: v for k, v in ref.state_dict().items() if not k.startswith("model.model.1.model.3.model.6")}
    torch.save(cut, tmp_path / "cut.pth")
    assert "lacks" in _error(capsys, tmp_path / "cut.pth", "--out", tmp_path / "r")


OPT = """----------------- Options ---------------
                 dataroot: ./datasets/facades                  	[default: None]
                direction: BtoA                          	[default: AtoB]
                    model: pix2pix                       	[default: cycle_gan]
                     netG: {net}                      	[default: resnet_9blocks]
                      ngf: 4                             	[default: 64]
               no_dropout: False                         
                     norm: batch                         	[default: instance]
                crop_size: 128                           	[default: 256]
----------------- End -------------------
"""


def test_settings_come_from_opt_txt_and_are_checked_against_the_file(tmp_path, capsys):
    ref, _ = reference("unet_128", "batch")
    f = save(ref, tmp_path / "latest_net_G.pth")
    (tmp_path / "opt.txt").write_text(OPT.format(net="unet_128"))
    run_convert(f, "--opt", tmp_path / "opt.txt", "--out", tmp_path / "run")
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["direction"], cfg["data"], cfg["generator"], cfg["crop_size"], cfg["dropout"]) == \
        ("BtoA", "facades", "unet_128", 128, True)
    (tmp_path / "bad.txt").write_text(OPT.format(net="unet_256"))
    err = _error(capsys, f, "--opt", tmp_path / "bad.txt", "--out", tmp_path / "run2")
    assert "bad.txt's netG unet_256 does not match" in err


def test_cyclegan_pair_with_its_direction(tmp_path):
    g_a, size = reference("resnet_6blocks", "instance", dropout=False, cin=3, cout=1, seed=1)
    g_b, _ = reference("resnet_6blocks", "instance", dropout=False, cin=1, cout=3, seed=2)
    save(g_a, tmp_path / "latest_net_G_A.pth")
    save(g_b, tmp_path / "latest_net_G_B.pth")
    for direction in ("AtoB", "BtoA"):
        run = tmp_path / direction
        run_convert(tmp_path / "latest_net_G_A.pth", "--model", "cyclegan", "--direction", direction, "--out", run)
        model, _ = converted_g(run)
        # the reference's BtoA run calls trainB its A: its G_A translates condgan's B into A
        ours_a = model.generator("AtoB" if direction == "AtoB" else "BtoA")
        x = torch.rand(1, 3, size, size) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(ours_a(x), g_a(x.clone()), atol=2e-5)
        assert model.resolve_direction(None) == direction
        with pytest.raises(CondganError, match="resumed"):
            ckpt_io.load(run, for_resume=True)
    assert json.loads((tmp_path / "AtoB" / "conversion.json").read_text())["from"] == junyanz.SOURCE


def test_converted_run_translates_and_exports_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDGAN_PROBE", "0")  # translate in fp32 on any CPU
    ref, size = reference("unet_128", "batch", dropout=False)
    run = tmp_path / "run"
    run_convert(save(ref, tmp_path / "g.pth"), "--netG", "unet_128", "--no-dropout", "--out", run)
    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "a.png")
    x = translate.to_tensor(pixels)[None]
    with torch.no_grad():
        want_eval = translate.to_uint8(ref.eval()(x.clone())[0]).astype(int)
        want_test = translate.to_uint8(ref.train()(x.clone())[0]).astype(int)
    for flags, want in (([], want_eval), (["--reference-test-mode"], want_test)):
        out = tmp_path / f"out{len(flags)}"
        translate.main([str(run), str(images), "--out", str(out), "--no-progress", *flags])
        got = np.asarray(Image.open(out / "a.png")).astype(int)
        assert np.abs(got - want).max() <= 1
    assert np.abs(want_eval - want_test).max() > 10  # the two modes do differ for batch norm
    report = export.export_run(run, tmp_path / "g.onnx")
    assert max(p["max_abs_diff"] for p in report["parity"]) <= 1e-4
