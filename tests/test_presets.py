"""--preset NAME: a model's named defaults, applied before the command-line flags and recorded in the config."""
from __future__ import annotations

import pytest

from condgan import models
from condgan.errors import CondganError
from condgan.train import parse_config


@pytest.mark.parametrize("name", ["pix2pix", "cyclegan"])
def test_small_data_preset_applies_and_flags_win(name):
    preset = models.config_class(name).PRESETS["small-data"]
    cfg, _ = parse_config(["--model", name, "--preset", "small-data"])
    assert cfg.preset == "small-data"
    assert all(getattr(cfg, k) == v for k, v in preset.items())
    cfg, _ = parse_config(["--model", name, "--preset", "small-data", "--diffaug", "translation",
                           "--upsampling", "transpose"])
    assert cfg.diffaug == "translation" and cfg.upsampling == "transpose"
    plain, _ = parse_config(["--model", name])
    assert plain.preset == "" and plain.diffaug == "" and plain.upsampling == "transpose"


def test_unknown_preset_is_one_sentence():
    with pytest.raises(CondganError, match="--preset tiny is not a pix2pix preset \\(known: small-data\\)"):
        parse_config(["--model", "pix2pix", "--preset", "tiny"])
    with pytest.raises(CondganError, match="not a cgan preset \\(known: none\\)"):
        parse_config(["--preset", "small-data"])


def test_a_resumed_run_keeps_its_settings(tmp_path):
    from condgan.train import main as train
    cls = models.model_class("pix2pix")
    run = tmp_path / "run"
    assert train(["--model", "pix2pix", *cls.smoke_flags, "--preset", "small-data", "--max-steps", "1",
                  "--no-progress", "--workers", "0", "--out", str(run)]) == 0
    with pytest.raises(CondganError, match="--preset applies to a new run"):
        parse_config(["--resume", str(run), "--preset", "small-data"])
    cfg, _ = parse_config(["--resume", str(run)])
    assert cfg.preset == "small-data" and cfg.diffaug == "color,translation,cutout"
