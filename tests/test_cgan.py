"""The cGAN model's phases: which nets each loss reaches, with and without the auxiliary classifier."""
import pytest
import torch

from condgan import models
from condgan.data import DataInfo
from condgan.models.cgan import CGANConfig


def _model(**kw):
    torch.manual_seed(0)
    cfg = CGANConfig(g_width=8, d_width=8, latent_dim=8, embed_dim=4, **kw)
    return models.build(cfg, DataInfo("labelled", "t", 1, 16, 16, 3, ["a", "b", "c"]))


def _batch():
    return {"image": torch.rand(6, 1, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 0, 1, 2])}


def _has_grad(net):
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("aux", [0.0, 1.0])
def test_phases_reach_the_right_nets(aux):
    m, batch = _model(aux_weight=aux), _batch()
    out = m.step("D", batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and _has_grad(m.D) and not _has_grad(m.G)
    assert ("d_cls" in out) == (aux > 0)
    m.zero_grad(set_to_none=True)
    out = m.step("G", batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and _has_grad(m.G) and not _has_grad(m.D)
    assert ("g_cls" in out) == (aux > 0)


def test_aux_head_learns_from_real_images_only():
    m, batch = _model(aux_weight=1.0), _batch()
    out = m.step("D", batch)
    # the class loss is the cross-entropy of the head on the real batch
    _, logits = m.D(batch["image"], batch["label"], with_classes=True)
    expected = torch.nn.functional.cross_entropy(logits, batch["label"])
    assert torch.allclose(out["d_cls"], expected.detach(), atol=1e-6)
    with pytest.raises(ValueError, match="aux_classifier"):
        _model(aux_weight=0.0).D(batch["image"], batch["label"], with_classes=True)
