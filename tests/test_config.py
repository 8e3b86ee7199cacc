import json

import pytest

from condgan.errors import CondganError
from condgan.models.cgan import CGANConfig
from condgan.train import main, parse_config


def test_every_field_is_a_flag_and_presets_apply():
    cfg, resume = parse_config([])
    assert resume is None
    assert cfg.model == "cgan" and cfg.data == "digits"
    assert cfg == CGANConfig()  # the preset is the subclass defaults
    cfg, _ = parse_config(["--latent-dim", "12", "--loss", "lsgan", "--no-progress", "--spectral-norm"])
    assert (cfg.latent_dim, cfg.loss, cfg.progress, cfg.spectral_norm) == (12, "lsgan", False, True)


@pytest.mark.parametrize("argv, fragment", [
    (["--no-such-flag"], "unrecognized arguments"),
    (["--loss", "fancy"], "invalid choice"),
    (["--batch-size", "two"], "invalid int value"),
])
def test_bad_flags_exit_2_with_one_line(argv, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, fragment", [
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--model", "nope"], "unknown model 'nope'"),
    (["--epochs", "2", "--decay-epochs", "3"], "cannot exceed"),
])
def test_invalid_values_are_rejected(argv, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert fragment in capsys.readouterr().err


def test_config_file_reloads_and_flags_override(tmp_path):
    saved = CGANConfig(latent_dim=7, lr=1e-3).to_dict()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    cfg, _ = parse_config(["--config", str(path), "--lr", "5e-4"])
    assert cfg.latent_dim == 7 and cfg.lr == 5e-4


def test_config_file_with_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": "cgan", "warp_drive": 9}))
    with pytest.raises(CondganError, match="warp_drive"):
        parse_config(["--config", str(path)])
