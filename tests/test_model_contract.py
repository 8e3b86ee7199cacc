"""Every registered model, held to the model contract by one test: train tiny, resume bit-exactly, export to
ONNX with parity, and sample or translate through the CLI. A newly registered model is tested here with no
new test code; its `smoke_flags` say how to make it tiny.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from condgan import export, models, sample, translate
from condgan.errors import CondganError
from condgan.models.base import GANModel
from condgan.train import main as train

COMMON = ["--no-progress", "--workers", "0", "--log-every", "1", "--amp", "off"]


def _train(name: str, out, *flags) -> None:
    cls = models.model_class(name)
    assert train(["--model", name, *cls.smoke_flags, *COMMON, "--out", str(out), *flags]) == 0


def _weights(run) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_registered_model_keeps_the_contract(name, tmp_path):
    cls = models.model_class(name)  # the registry checks the contract on lookup
    # straight, and stopped then resumed: the same weights to the bit, random augmentation draws included
    aug = ("--diffaug", "color,translation,cutout")
    _train(name, tmp_path / "straight", "--max-steps", "4", *aug)
    _train(name, tmp_path / "resumed", "--max-steps", "2", *aug)
    assert train(["--resume", str(tmp_path / "resumed"), "--max-steps", "4", "--no-progress"]) == 0
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    run = tmp_path / "straight"
    model, cfg, info = models.load(run)
    assert isinstance(model, cls) and cfg.model == name and model.data_kind == info.kind
    # every generator the model offers exports with onnxruntime matching PyTorch
    directions = model.directions() or (None,)
    for direction in directions:
        spec = model.generator_spec(direction)
        assert spec.task == cls.task
        if spec.task == models.SAMPLE:
            assert spec.out_channels == info.channels and spec.latent_dim > 0 and spec.num_classes > 0
        else:
            assert (spec.in_channels, spec.out_channels) == model.io_channels(direction) and spec.direction
        report = export.export_run(run, tmp_path / f"g_{direction}.onnx", direction=direction)
        assert report["parity"] and all(p["max_abs_diff"] <= report["tolerance"] for p in report["parity"])
    # and the trained model does its job through its command
    if cls.task == models.SAMPLE:
        assert sample.main([str(run), "--grid", "--n", "2", "--out", str(tmp_path / "grid.png")]) == 0
        assert Image.open(tmp_path / "grid.png").size[0] > 0
        return
    for direction in directions:
        cin, cout = model.io_channels(direction)
        src = tmp_path / f"in_{direction}"
        src.mkdir()
        pixels = np.random.default_rng(0).integers(0, 256, (info.height, info.width, cin), dtype=np.uint8)
        if cin in (1, 3):
            Image.fromarray(pixels[:, :, 0] if cin == 1 else pixels).save(src / "x.png")
        else:
            np.save(src / "x.npy", pixels)
        out = tmp_path / f"out_{direction}"
        assert translate.main([str(run), str(src), "--out", str(out), "--direction", direction,
                               "--no-progress"]) == 0
        produced = sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".npy"))
        assert produced and produced[0].startswith("x.")


class Incomplete(GANModel):
    """A model that forgot most of the contract."""

    data_kind = "pictures"

    def optimizers(self):
        return {}


def test_an_incomplete_model_is_refused_in_one_sentence(capsys):
    models.register("toy", Incomplete)
    try:
        with pytest.raises(CondganError) as e:
            models.model_class("toy")
        text = str(e.value)
        for needle in ("does not fulfil the model contract", "config_class", "'pictures'", "step()",
                       "sample_grid()", "generator()", "smoke_flags", "docs/adding-a-model.md"):
            assert needle in text, (needle, text)
        assert "optimizers()" not in text  # it did implement that one
        with pytest.raises(SystemExit) as exit_:
            train(["--model", "toy", "--max-steps", "1"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "does not fulfil the model contract" in err and "Traceback" not in err
    finally:
        models.unregister("toy")


def test_registering_a_class_by_path_and_the_unknown_name():
    with pytest.raises(CondganError, match="unknown model 'nope'; available: cgan, cut, cyclegan, pix2pix"):
        models.model_class("nope")
    models.register("pix2pix-again", "condgan.models.pix2pix:Pix2Pix")
    try:
        with pytest.raises(CondganError, match="--model default is 'pix2pix', not 'pix2pix-again'"):
            models.model_class("pix2pix-again")
    finally:
        models.unregister("pix2pix-again")
