"""A plain eager fp32 PyTorch pix2pix (unet_256 + 3-layer PatchGAN + L1), written from the paper's description.

Used only as the side-by-side baseline in the benchmarks: nn.Sequential blocks,
separate activation modules, contiguous NCHW tensors, no fused ops, the usual
D-then-G step. Its skip connections carry the leaky-ReLU'd input (what the
widely used implementation computes, because its activation runs in place on
the tensor that is also concatenated), so the two implementations compute the
same function.
"""
from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, outer, inner, cin=None, sub=None, outermost=False, innermost=False, dropout=False):
        super().__init__()
        cin = outer if cin is None else cin
        self.outermost = outermost
        down = nn.Conv2d(cin, inner, 4, 2, 1, bias=False)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


def unet_256(cin=3, cout=3, ngf=64):
    b = _Block(ngf * 8, ngf * 8, innermost=True)
    for _ in range(3):
        b = _Block(ngf * 8, ngf * 8, sub=b, dropout=True)
    b = _Block(ngf * 4, ngf * 8, sub=b)
    b = _Block(ngf * 2, ngf * 4, sub=b)
    b = _Block(ngf, ngf * 2, sub=b)
    return _Block(cout, ngf, cin=cin, sub=b, outermost=True)


def patchgan(cin=6, ndf=64, n_layers=3):
    layers = [nn.Conv2d(cin, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=False),
                   nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
    return nn.Sequential(*layers)


def init_normal(net, std=0.02):
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net


class ReferencePix2Pix:
    """G, D, their Adam optimizers (2e-4, betas 0.5/0.999) and one training step."""

    def __init__(self, cin=3, cout=3, l1_weight=100.0):
        self.G, self.D = init_normal(unet_256(cin, cout)), init_normal(patchgan(cin + cout))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.bce, self.l1, self.l1_weight = nn.BCEWithLogitsLoss(), nn.L1Loss(), l1_weight

    def _gan(self, pred, real):
        return self.bce(pred, torch.full_like(pred, 1.0 if real else 0.0))

    def step(self, a, b):
        fake = self.G(a)
        for p in self.D.parameters():
            p.requires_grad_(True)
        self.opt_d.zero_grad()
        loss_d = 0.5 * (self._gan(self.D(torch.cat([a, fake.detach()], 1)), False)
                        + self._gan(self.D(torch.cat([a, b], 1)), True))
        loss_d.backward()
        self.opt_d.step()
        for p in self.D.parameters():
            p.requires_grad_(False)
        self.opt_g.zero_grad()
        loss_g = self._gan(self.D(torch.cat([a, fake], 1)), True) + self.l1_weight * self.l1(fake, b)
        loss_g.backward()
        self.opt_g.step()
        return loss_d.detach(), loss_g.detach()


def _weighted(net):
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d))]


@torch.no_grad()
def copy_weights_into(ours_g, ours_d, ref_g, ref_d):
    """Load the reference nets' weights into condgan's UNetGenerator and PatchDiscriminator (same order)."""
    d = ours_g.depth
    order = [ours_g.down[0]]
    for i in range(1, d - 1):
        order += [ours_g.down[i], ours_g.down_norm[i]]
    order.append(ours_g.down[d - 1])
    for i in range(d - 1, 0, -1):
        order += [ours_g.up[i], ours_g.up_norm[i]]
    order.append(ours_g.up[0])
    for mine, theirs in zip(order, _weighted(ref_g), strict=True):
        mine.load_state_dict(theirs.state_dict())
    ref_layers = _weighted(ref_d)
    mine_layers = [m for m in ours_d.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    first, act = ref_layers[0], ours_d.net[1]
    mine_layers[0].weight.copy_(first.weight)
    act.bias.copy_(first.bias)  # the first conv's bias lives in the fused activation
    for mine, theirs in zip(mine_layers[1:], ref_layers[1:], strict=True):
        mine.load_state_dict(theirs.state_dict())
