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


@pytest.mark.parametrize("warmup", [10.0, 100.0])
def test_ema_warmup_follows_its_closed_form(warmup):
    from torch.optim.swa_utils import AveragedModel

    from condgan.models.cgan import ema_with_warmup
    net = torch.nn.Linear(1, 1, bias=False)
    ema = AveragedModel(net, multi_avg_fn=ema_with_warmup(0.999, warmup), use_buffers=True)
    expected = None
    for step, value in enumerate([1.0, 5.0, -2.0, 3.0, 0.5]):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update_parameters(net)
        if expected is None:  # the first update copies the weights
            expected = value
        else:
            d = min(0.999, (1 + step) / (warmup + step))  # n = step: the copy counts as one
            expected = d * expected + (1 - d) * value
    assert ema.module.weight.item() == pytest.approx(expected, rel=1e-6)


def test_ema_warmup_reaches_the_model():
    cfg = CGANConfig(ema_warmup=50.0, g_width=8, d_width=8, latent_dim=8, embed_dim=4)
    model = models.build(cfg, DataInfo("labelled", "digits", 1, 28, 28, num_classes=10))
    net = torch.nn.Linear(1, 1, bias=False)
    avg = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=model.ema.multi_avg_fn)
    for v in (0.0, 1.0):
        with torch.no_grad():
            net.weight.fill_(v)
        avg.update_parameters(net)
    assert avg.module.weight.item() == pytest.approx(1 - 2 / 51)  # n = 1: decay (1 + 1) / (50 + 1)
