"""ONNX export: every generator kind, parity with PyTorch in onnxruntime, metadata, fp16, options, CLI."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from condgan import export, models
from condgan.data import DataInfo
from condgan.models.cgan import CGANConfig
from condgan.models.cyclegan import CycleGANConfig
from condgan.models.pix2pix import Pix2PixConfig

DIGITS = DataInfo("labelled", "digits", 1, 28, 28, num_classes=10, class_names=[str(i) for i in range(10)])


def tiny_cgan():
    torch.manual_seed(1)
    return models.build(CGANConfig(g_width=8, d_width=8, latent_dim=8, embed_dim=4), DIGITS).eval()


def tiny_pix2pix(depth=4, **kw):
    torch.manual_seed(2)
    cfg = Pix2PixConfig(unet_depth=depth, g_width=4, d_width=4, crop_size=32, load_size=32, **kw)
    return models.build(cfg, DataInfo("paired", "t", 3, 32, 32, in_channels=1)).eval()


def tiny_cyclegan():
    torch.manual_seed(3)
    cfg = CycleGANConfig(resnet_blocks=1, g_width=4, d_width=4, crop_size=32, load_size=32, identity_weight=0)
    return models.build(cfg, DataInfo("unpaired", "t", 3, 32, 32, in_channels=1)).eval()


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _perturb(model):
    """Non-trivial weights and BatchNorm statistics, so parity is tested on more than an init."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=g) * 0.05)
                if "running_var" in name:
                    t.abs_().add_(0.5)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, model in {"cgan": tiny_cgan(), "pix2pix": tiny_pix2pix(), "cyclegan": tiny_cyclegan()}.items():
        model = _perturb(model)
        out[name] = (model, export.export_model(model, root / f"{name}.onnx"))
    return out


@pytest.mark.parametrize("name", ["cgan", "pix2pix", "cyclegan"])
def test_export_reports_parity_at_two_batch_sizes(exported, name):
    _, report = exported[name]
    assert [p["batch"] for p in report["parity"]] == ([1, 3] if name != "cgan" else [1, 5])
    assert all(p["max_abs_diff"] <= 1e-4 and p["finite"] for p in report["parity"])
    onnx.checker.check_model(report["path"])


@pytest.mark.parametrize("name", ["pix2pix", "cyclegan"])
def test_translation_graph_takes_any_size_like_pytorch(exported, name):
    model, report = exported[name]
    session = _session(report["path"])
    g = model.G if name == "pix2pix" else model.G_A
    for shape in [(2, 1, 32, 32), (1, 1, 17, 45), (3, 1, 70, 9)]:
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            expected = g(x).numpy()
        got = session.run(["translated"], {"image": x.numpy()})[0]
        assert got.shape == (shape[0], 3, *shape[2:])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_conditional_graph_matches_pytorch_for_each_label(exported):
    model, report = exported["cgan"]
    session = _session(report["path"])
    z, labels = torch.randn(10, 8), torch.arange(10)
    got = session.run(["image"], {"z": z.numpy(), "label": labels.numpy()})[0]
    np.testing.assert_allclose(got, model.generate(labels, z).numpy(), atol=1e-5, rtol=0)
    assert got.shape == (10, 1, 28, 28) and got.min() >= -1 and got.max() <= 1


def test_graphs_hold_standard_onnx_ops_only(exported):
    for _, report in exported.values():
        proto = onnx.load(report["path"])
        domains = {n.domain for n in proto.graph.node}
        assert domains <= {"", "ai.onnx"}, domains
        assert not [n.op_type for n in proto.graph.node if "condgan" in n.op_type.lower()]


def test_metadata_describes_each_model(exported):
    meta = export.read_metadata(exported["cgan"][1]["path"])
    assert meta["condgan.kind"] == "conditional" and meta["condgan.model"] == "cgan"
    assert (meta["condgan.latent_dim"], meta["condgan.num_classes"]) == ("8", "10")
    assert json.loads(meta["condgan.class_names"]) == [str(i) for i in range(10)]
    assert (meta["condgan.channels"], meta["condgan.height"], meta["condgan.width"]) == ("1", "28", "28")
    assert meta["condgan.label_dtype"] == "int64" and meta["Image.BitmapPixelFormat"] == "Gray8"
    assert meta["Image.NominalPixelRange"] == "Normalized_1_1" and meta["condgan.value_range"] == "-1,1"
    assert meta["condgan.config_digest"] == export.config_digest(exported["cgan"][0].cfg)
    assert meta["condgan.version"] == __import__("condgan").__version__

    meta = export.read_metadata(exported["pix2pix"][1]["path"])
    assert meta["condgan.kind"] == "translation" and meta["condgan.direction"] == "AtoB"
    assert (meta["condgan.in_channels"], meta["condgan.channels"]) == ("1", "3")
    assert meta["Image.BitmapPixelFormat"] == "Rgb8" and meta["condgan.dropout_at_inference"] == "false"
    assert meta["condgan.size_multiple"] == "1" and meta["condgan.precision"] == "fp32"
    assert "condgan.latent_dim" not in meta


def test_io_names_and_dynamic_dims(exported):
    s = _session(exported["pix2pix"][1]["path"])
    assert [(i.name, i.shape) for i in s.get_inputs()] == [("image", ["batch", 1, "height", "width"])]
    assert [(o.name, o.shape) for o in s.get_outputs()] == [("translated", ["batch", 3, "height", "width"])]
    s = _session(exported["cgan"][1]["path"])
    assert [(i.name, i.type) for i in s.get_inputs()] == [("z", "tensor(float)"), ("label", "tensor(int64)")]
    assert s.get_outputs()[0].shape == ["batch", 1, 28, 28]


def test_cyclegan_exports_either_direction(tmp_path):
    model = _perturb(tiny_cyclegan())
    report = export.export_model(model, tmp_path / "b2a.onnx", direction="BtoA")
    meta = report["metadata"]
    assert meta["condgan.direction"] == "BtoA" and (meta["condgan.in_channels"], meta["condgan.channels"]) == ("3", "1")
    x = torch.rand(1, 3, 20, 24) * 2 - 1
    got = _session(report["path"]).run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(got, model.G_B(x).detach().numpy(), atol=1e-5, rtol=0)


def test_int32_labels_and_fp16(tmp_path):
    model = _perturb(tiny_cgan())
    r32 = export.export_model(model, tmp_path / "fp32.onnx")
    report = export.export_model(model, tmp_path / "i32.onnx", label_dtype="int32", fp16=True)
    assert report["metadata"]["condgan.label_dtype"] == "int32" and report["metadata"]["condgan.precision"] == "fp16"
    s = _session(report["path"])
    assert [i.type for i in s.get_inputs()] == ["tensor(float)", "tensor(int32)"]
    assert s.get_outputs()[0].type == "tensor(float)"
    graph = onnx.load(report["path"]).graph
    conv_inputs = {i for n in graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm") for i in n.input[1:]}
    weights = [t for t in graph.initializer if t.name in conv_inputs]  # the layers' weights and biases
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert report["kept_fp32"] == ["BatchNormalization", "Resize"]  # kept in fp32, with Casts around them
    assert report["bytes"] < r32["bytes"]
    worst = max(p["max_abs_diff"] for p in report["parity"])
    assert 0 < worst <= 5e-2 and report["tolerance"] == 5e-2


def test_dropout_at_inference_is_random_and_eval_is_not(tmp_path):
    model = _perturb(tiny_pix2pix(depth=6))  # 6 levels: the first with a dropout block
    assert any(isinstance(m, torch.nn.Dropout) for m in model.G.modules())
    noisy = export.export_model(model, tmp_path / "noisy.onnx", dropout_at_inference=True)
    assert noisy["parity"] == [] and noisy["metadata"]["condgan.dropout_at_inference"] == "true"
    x = (torch.rand(1, 1, 32, 32) * 2 - 1).numpy()
    s = _session(noisy["path"])
    assert not np.array_equal(s.run(None, {"image": x})[0], s.run(None, {"image": x})[0])
    s = _session(export.export_model(model, tmp_path / "eval.onnx")["path"])
    np.testing.assert_array_equal(s.run(None, {"image": x})[0], s.run(None, {"image": x})[0])


def test_parity_failure_is_loud_and_keeps_no_model_at_the_path(tmp_path, monkeypatch):
    monkeypatch.setitem(export.TOLERANCE, "fp32", 0.0)  # any float difference now counts as a mismatch
    model = _perturb(tiny_pix2pix())
    with pytest.raises(export.ExportError, match="differs from PyTorch"):
        export.export_model(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists() and (tmp_path / "m.rejected.onnx").exists()


def test_bad_options_are_one_sentence():
    with pytest.raises(export.CondganError, match="translation"):
        export.export_model(tiny_cgan(), "x.onnx", direction="BtoA")
    with pytest.raises(export.CondganError, match="opset"):
        export.export_model(tiny_cgan(), "x.onnx", opset=13)
    with pytest.raises(export.CondganError, match="translates AtoB only"):
        export.export_model(tiny_pix2pix(), "x.onnx", direction="BtoA")


def test_cli_exports_a_trained_run_next_to_it(tmp_path, tiny_args, capsys):
    from condgan import train
    run = tmp_path / "run"
    assert train.main(tiny_args + ["--max-steps", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    assert export.main([str(run), "--json", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {run / 'cgan.onnx'}" in printed and "max abs diff" in printed
    report = json.loads((tmp_path / "r.json").read_text())
    model, _, _ = models.load(run)
    z, y = torch.randn(4, model.cfg.latent_dim), torch.tensor([0, 3, 7, 9])
    got = _session(run / "cgan.onnx").run(None, {"z": z.numpy(), "label": y.numpy()})[0]
    np.testing.assert_allclose(got, model.generate(y, z).numpy(), atol=1e-5, rtol=0)
    assert report["metadata"]["condgan.config_digest"] == export.config_digest(model.cfg)

    with pytest.raises(SystemExit) as e:
        export.main([str(tmp_path / "nowhere")])
    assert e.value.code == 2 and "neither a checkpoint file nor a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cgan", "cyclegan"])
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_reports_psnr_and_keeps_float32_io(tmp_path, name, precision):
    model = _perturb({"cgan": tiny_cgan, "cyclegan": tiny_cyclegan}[name]())
    report = export.export_model(model, tmp_path / "m.onnx", precision=precision, calibration=8)
    s = _session(report["path"])
    assert all(i.type in ("tensor(float)", "tensor(int64)") for i in s.get_inputs())
    assert s.get_outputs()[0].type == "tensor(float)" and report["metadata"]["condgan.precision"] == precision
    held = report["held_back"]
    assert held["inputs"] == 8 and held["min_psnr"] == export.ep.MIN_PSNR[precision] and held["psnr"] >= held["min_psnr"]
    ops = {n.op_type for n in onnx.load(report["path"]).graph.node}
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops and report["calibration"].startswith("8 ")
    elif name == "cyclegan":
        assert report["kept_fp32"] == ["InstanceNormalization"]
    text = export.format_report(report)
    assert "held-back inputs" in text and "PSNR" in text


def test_low_psnr_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(export.CondganError, match=r"reaches only .* dB PSNR .* below --min-psnr 200") as e:
        export.export_model(_perturb(tiny_cyclegan()), tmp_path / "m.onnx", precision="int8", calibration=4,
                            min_psnr=200)
    assert "\n" not in str(e.value) and not (tmp_path / "m.onnx").exists()
    with pytest.raises(export.CondganError, match="--precision"):
        export.export_model(tiny_cgan(), tmp_path / "x.onnx", precision="int4")


def test_int8_from_a_run_calibrates_on_its_training_images(tmp_path, capsys):
    from condgan import train
    from condgan.models.pix2pix import Pix2Pix
    run = tmp_path / "run"
    assert train.main(["--model", "pix2pix", *Pix2Pix.smoke_flags, "--max-steps", "1", "--no-progress",
                       "--workers", "0", "--out", str(run)]) == 0
    capsys.readouterr()
    assert export.main([str(run), "--precision", "int8", "--calibration", "3", "--min-psnr", "10"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {run / 'pix2pix_AtoB_int8.onnx'}" in printed
    assert "int8 calibration: 3 training images" in printed and "on 1 held-back inputs (training images): PSNR" in printed
    with pytest.raises(SystemExit) as e:
        export.main([str(run), "--fp16", "--precision", "int8"])
    assert e.value.code != 0 and "disagree" in capsys.readouterr().err
