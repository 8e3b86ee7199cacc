import pytest
import torch

from condgan.nets.dcgan import Discriminator, Generator, resolution_plan


@pytest.mark.parametrize("c, h, w", [(1, 28, 28), (3, 32, 32), (3, 48, 64), (1, 20, 16), (2, 7, 9)])
def test_generator_shapes_and_range(c, h, w):
    g = Generator(16, 5, c, h, w, base_width=8, embed_dim=4)
    x = g(torch.randn(3, 16) * 10, torch.tensor([0, 2, 4]))
    assert x.shape == (3, c, h, w)
    assert x.abs().max() <= 1.0 and torch.isfinite(x).all()


@pytest.mark.parametrize("cond", ["projection", "concat"])
@pytest.mark.parametrize("sn", [False, True])
def test_discriminator_shapes(cond, sn):
    d = Discriminator(5, 3, 48, 64, base_width=8, cond=cond, spectral_norm=sn)
    out = d(torch.randn(4, 3, 48, 64), torch.tensor([0, 1, 2, 4]))
    assert out.shape == (4,) and torch.isfinite(out).all()


def test_resolution_plan():
    assert resolution_plan(28, 28) == (7, 7, 2)
    assert resolution_plan(64, 64) == (4, 4, 4)
    assert resolution_plan(48, 64) == (6, 8, 3)
    assert resolution_plan(7, 9) == (7, 9, 0)


def test_generator_conditioning_changes_output():
    torch.manual_seed(0)
    g = Generator(16, 10, 1, 28, 28, base_width=8)
    z = torch.randn(1, 16).repeat(10, 1)
    x = g(z, torch.arange(10))  # training mode: batch norm rescales the tiny initial activations
    # same noise, different labels -> every pair of images differs clearly
    diffs = (x[:, None] - x[None]).abs().flatten(2).amax(-1)
    assert (diffs + torch.eye(10)).min() > 0.01 * x.abs().max()


@pytest.mark.parametrize("cond", ["projection", "concat"])
def test_discriminator_conditioning_changes_output(cond):
    torch.manual_seed(0)
    d = Discriminator(10, 1, 28, 28, base_width=8, cond=cond)
    x = torch.randn(1, 1, 28, 28).repeat(10, 1, 1, 1)
    out = d(x, torch.arange(10))
    assert out.unique().numel() == 10
