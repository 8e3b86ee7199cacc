"""Adversarial losses on raw discriminator logits, plus the gradient penalty.

`d_loss(kind, real, fake)` and `g_loss(kind, fake)` cover:
  ns     non-saturating GAN (Goodfellow et al.): D minimises BCE, G maximises log D(G(z))
  lsgan  least squares (Mao et al.): targets 1 for real, 0 for fake
  hinge  (Lim & Ye; Miyato et al.)
  wgan   Wasserstein critic (Arjovsky et al.); use with gradient_penalty (WGAN-GP, Gulrajani et al.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("ns", "lsgan", "hinge", "wgan-gp")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """Discriminator loss. `real_target` < 1 gives one-sided label smoothing (ns, lsgan)."""
    real, fake = real.float(), fake.float()
    if kind == "ns":
        return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_target))
                + F.softplus(fake).mean())
    if kind == "lsgan":
        return (real - real_target).square().mean() + fake.square().mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(KINDS)}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return (fake - 1.0).square().mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(KINDS)}")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, *cond) -> torch.Tensor:
    """E[(||grad_x D(x_hat)|| - 1)^2] on random interpolates of real and fake images.

    Differentiates through D twice (create_graph), so every op in D needs a correct
    second-order gradient.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x_hat, *cond)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()
