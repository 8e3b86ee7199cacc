"""Quality reports: per kind, side by side, during training with best.pt by --select-by, and the run page."""
from __future__ import annotations

import json

import pytest

from condgan import evaluate, quality
from condgan.train import main as train

PIX = ["--model", "pix2pix", "--procedural-train", "4", "--crop-size", "32", "--load-size", "36", "--unet-depth", "5",
       "--g-width", "4", "--d-width", "4", "--val-images", "2", "--sample-pairs", "2", "--no-progress", "--workers",
       "0", "--log-every", "1", "--amp", "off"]


@pytest.fixture(scope="module")
def pix_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    for name, steps in (("a", "2"), ("b", "4")):
        assert train([*PIX, "--out", str(root / name), "--max-steps", steps, "--epochs", "2"]) == 0
    return root


def test_better_knows_the_direction_of_each_metric():
    assert quality.better("psnr", 30.0, 20.0) and not quality.better("psnr", 10.0, 20.0)
    assert quality.better("l1", 0.1, 0.2) and not quality.better("fid", 50.0, 40.0)
    assert quality.better("kid", 1.0, None)


def test_table_puts_runs_side_by_side():
    text = quality.table(["r1", "r2"], [{"l1": 0.5, "psnr": 20.0, "note": "x"}, {"l1": 0.25, "psnr": None}])
    lines = text.splitlines()
    assert lines[0] == "| metric | r1 | r2 |"
    assert "| l1 | 0.5 | 0.25 |" in lines and "| psnr (higher is better) | 20 | - |" in lines
    assert not any("note" in line for line in lines)  # text entries are not metrics


def test_paired_report_and_two_runs_compared(pix_runs, capsys, tmp_path):
    out = tmp_path / "both.json"
    assert evaluate.main([str(pix_runs / "a"), str(pix_runs / "b"), "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "| metric | a | b |" in text and "| checkerboard_ratio |" in text and "| ssim (higher is better) |" in text
    res = json.loads(out.read_text())["runs"]
    for r in res.values():
        assert r["n"] == 100 and 0 < r["l1"] < 2 and r["checkerboard_ratio"] > 0 and r["fid"] is None
        assert "inception" in r["inception_note"].lower() or "weights" in r["inception_note"].lower()
    page = (pix_runs / "a" / "evaluation.html").read_text()
    assert "<th>a</th><th>b</th>" in page and "checkerboard_ratio" in page and "samples/" in page


def test_select_by_needs_eval_every_and_a_known_metric(tmp_path, capsys):
    for flags, fragment in ((["--select-by", "psnr"], "needs --eval-every"),
                            (["--select-by", "accuracy", "--eval-every", "1"], "not a metric of pix2pix runs"),
                            (["--select-by", "fid", "--eval-every", "1"], "Inception")):
        with pytest.raises(SystemExit) as e:
            train([*PIX, "--out", str(tmp_path / "r"), "--max-steps", "1", *flags])
        err = capsys.readouterr().err
        assert e.value.code == 2 and fragment in err, err


def test_training_evaluates_every_n_epochs_and_keeps_best_by_psnr(tmp_path):
    import torch
    run = tmp_path / "r"
    assert train([*PIX, "--out", str(run), "--epochs", "3", "--eval-every", "1", "--eval-images", "4",
                  "--select-by", "psnr"]) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in lines if "psnr" in x]
    assert [x["epoch"] for x in evals] == [1, 2, 3] and all("checkerboard_ratio" in x for x in evals)
    best = max(evals, key=lambda x: x["psnr"])
    saved = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert saved["best"][0] == pytest.approx(best["psnr"]) and saved["step"] == best["step"]
    assert [x["best"] for x in evals] == [x["psnr"] == max(e["psnr"] for e in evals[:i + 1])
                                          for i, x in enumerate(evals)]


def _unpaired_folder(root, same_names: bool):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i in range(5):
            a = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
            for side, img, name in (("A", a, f"{i}.png"), ("B", 255 - a, f"{i if same_names else 'b%d' % i}.png")):
                (root / f"{split}{side}").mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / f"{split}{side}" / name)
    return root


@pytest.mark.parametrize("same_names", [True, False])
def test_unpaired_report_scores_true_pairs_when_names_match(tmp_path, same_names):
    data = _unpaired_folder(tmp_path / "data", same_names)
    run = tmp_path / "run"
    assert train(["--model", "cyclegan", "--data", str(data), "--crop-size", "16", "--load-size", "16",
                  "--resnet-blocks", "1", "--g-width", "4", "--d-width", "4", "--d-layers", "1", "--pool-size", "0",
                  "--sample-pairs", "2", "--no-progress", "--workers", "0", "--max-steps", "1", "--out", str(run)]) == 0
    assert evaluate.main([str(run), "--split", "test", "--json", str(tmp_path / "e.json"), "--no-progress"]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["n"] == 5 and res["cycle_l1_a"] > 0 and res["checkerboard_ratio_a_to_b"] > 0
    if same_names:
        assert res["paired_n_a_to_b"] == res["paired_n_b_to_a"] == 5 and 0 < res["l1_a_to_b"] < 2
        assert res["psnr_b_to_a"] > 0
    else:
        assert res["paired_n_a_to_b"] == 0 and res["l1_a_to_b"] is None


def test_paired_report_on_a_known_model_without_weights():
    import torch

    class Halve:
        device = torch.device("cpu")

        def translate(self, x):
            return x * 0.5

    g = torch.Generator().manual_seed(9)
    loader = [{"input": torch.rand(2, 3, 16, 16, generator=g) * 2 - 1,
               "target": torch.rand(2, 3, 16, 16, generator=g) * 2 - 1} for _ in range(2)]
    res = quality.report_paired(Halve(), loader, progress=False)
    want = sum((b["input"] * 0.5 - b["target"]).abs().mean(dim=(1, 2, 3)).sum().item() for b in loader) / 4
    assert res["n"] == 4 and res["l1"] == pytest.approx(want) and res["l1_input_copy"] > 0
    assert res["fid"] is None and res["kid"] is None and "weights" in res["inception_note"]


def test_unpaired_report_scores_label_accuracy_where_the_true_targets_are_label_maps():
    import torch

    palette = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])
    g = torch.Generator().manual_seed(3)
    blocks = torch.randint(0, 4, (4, 4, 4), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    labels = palette[blocks].permute(0, 3, 1, 2)  # flat 4x4-pixel regions of 4 classes: label maps (B)
    photos = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1  # (A)

    class Known:  # photo -> labels gets 3 of 4 rows right; labels -> photo is noise
        device = torch.device("cpu")

        def directions(self):
            return ("AtoB", "BtoA")

        def translate(self, x, direction):
            if direction == "BtoA":
                return torch.zeros_like(x)
            out = labels[: x.shape[0]].clone()
            out[:, :, :4] = palette[0][:, None, None]  # the first quarter of rows painted one class
            return out

        def evaluation_extras(self, loader):
            return {}

    loader = [{"A": photos, "B": labels, "paired": torch.ones(4, dtype=torch.bool)}]
    res = quality.report_unpaired(Known(), loader, progress=False)
    painted_right = (labels[:, :, :4] == palette[0][:, None, None]).all(1).float().mean().item()
    assert res["label_accuracy_a_to_b"] == pytest.approx(0.75 + 0.25 * painted_right, abs=1e-6)
    assert res["label_accuracy_b_to_a"] is None  # photos are no label maps
