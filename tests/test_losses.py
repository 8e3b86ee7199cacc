import pytest
import torch

from condgan import losses
from condgan.nets.dcgan import Discriminator, Generator


def _nets():
    torch.manual_seed(0)
    return Generator(8, 3, 1, 16, 16, base_width=8), Discriminator(3, 1, 16, 16, base_width=8)


def _grads(net):
    return [p.grad for p in net.parameters()]


@pytest.mark.parametrize("kind", losses.KINDS)
def test_d_loss_reaches_only_d(kind):
    G, D = _nets()
    y = torch.tensor([0, 1, 2, 1])
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    fake = G(torch.randn(4, 8), y).detach()
    loss = losses.d_loss(kind, D(real, y), D(fake, y), real_target=0.9 if kind in ("ns", "lsgan") else 1.0)
    if kind == "wgan-gp":
        loss = loss + 10 * losses.gradient_penalty(D, real, fake, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(g is not None and torch.isfinite(g).all() for g in _grads(D))
    assert sum(g.abs().sum() for g in _grads(D)) > 0
    assert all(g is None for g in _grads(G))


@pytest.mark.parametrize("kind", losses.KINDS)
def test_g_loss_reaches_g(kind):
    G, D = _nets()
    D.requires_grad_(False)
    y = torch.tensor([0, 1, 2, 1])
    loss = losses.g_loss(kind, D(G(torch.randn(4, 8), y), y))
    loss.backward()
    assert torch.isfinite(loss)
    grads = _grads(G)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in D.parameters())


def test_label_smoothing_changes_ns_and_lsgan_only_on_real():
    real, fake = torch.randn(5), torch.randn(5)
    for kind in ("ns", "lsgan"):
        assert losses.d_loss(kind, real, fake, 0.9) != losses.d_loss(kind, real, fake, 1.0)
    assert losses.d_loss("lsgan", real, fake, 0.9) - losses.d_loss("lsgan", real, fake, 1.0) == pytest.approx(
        ((real - 0.9) ** 2).mean() - ((real - 1) ** 2).mean(), abs=1e-6)


def test_gradient_penalty_is_zero_for_unit_gradient_critic():
    w = torch.randn(1, 4, 4)
    w = w / w.norm()
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731 - gradient norm exactly 1
    gp = losses.gradient_penalty(critic, torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)


def test_unknown_loss_kind():
    with pytest.raises(ValueError, match="unknown GAN loss"):
        losses.g_loss("nope", torch.zeros(2))
