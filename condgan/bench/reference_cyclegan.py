"""A plain eager fp32 PyTorch CycleGAN (resnet_9blocks + 70x70 PatchGAN, LSGAN, cycle + identity, pools).

Written from the paper's description for the side-by-side benchmark only:
nn.Sequential blocks, separate activation modules, default (for-loop) Adam,
contiguous NCHW tensors, G step then D step.
"""
from __future__ import annotations

import itertools
import random

import torch
from torch import nn


def _block(c):
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
                         nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))


class _Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.block = _block(c)

    def forward(self, x):
        return x + self.block(x)


def resnet_generator(cin=3, cout=3, ngf=64, blocks=9):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for i in range(2):
        c = ngf * 2 ** i
        layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
    layers += [_Res(ngf * 4) for _ in range(blocks)]
    for i in range(2):
        c = ngf * 2 ** (2 - i)
        layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c // 2),
                   nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patchgan(cin=3, ndf=64, n_layers=3):
    layers = [nn.Conv2d(cin, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1),
                   nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
    return nn.Sequential(*layers)


class Pool:
    def __init__(self, size=50):
        self.size, self.images = size, []

    def query(self, images):
        out = []
        for img in images:
            img = img[None]
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif random.random() > 0.5:
                k = random.randrange(self.size)
                out.append(self.images[k].clone())
                self.images[k] = img
            else:
                out.append(img)
        return torch.cat(out)


class ReferenceCycleGAN:
    def __init__(self, blocks=9, lambda_cycle=10.0, lambda_idt=0.5):
        self.G_A, self.G_B = resnet_generator(blocks=blocks), resnet_generator(blocks=blocks)
        self.D_A, self.D_B = patchgan(), patchgan()
        for net in (self.G_A, self.G_B, self.D_A, self.D_B):
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                    nn.init.zeros_(m.bias)
        self.opt_g = torch.optim.Adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr=2e-4,
                                      betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=2e-4,
                                      betas=(0.5, 0.999))
        self.pool_a, self.pool_b = Pool(), Pool()
        self.lc, self.li = lambda_cycle, lambda_idt
        self.mse, self.l1 = nn.MSELoss(), nn.L1Loss()

    def _gan(self, pred, real):
        return self.mse(pred, torch.full_like(pred, 1.0 if real else 0.0))

    def _freeze_d(self, flag):
        for p in itertools.chain(self.D_A.parameters(), self.D_B.parameters()):
            p.requires_grad_(flag)

    def step(self, a, b):
        fake_b, fake_a = self.G_A(a), self.G_B(b)
        rec_a, rec_b = self.G_B(fake_b), self.G_A(fake_a)
        self._freeze_d(False)
        self.opt_g.zero_grad()
        idt = self.l1(self.G_A(b), b) * self.lc * self.li + self.l1(self.G_B(a), a) * self.lc * self.li
        loss_g = (self._gan(self.D_A(fake_b), True) + self._gan(self.D_B(fake_a), True)
                  + self.l1(rec_a, a) * self.lc + self.l1(rec_b, b) * self.lc + idt)
        loss_g.backward()
        self.opt_g.step()
        self._freeze_d(True)
        self.opt_d.zero_grad()
        fb, fa = self.pool_a.query(fake_b.detach()), self.pool_b.query(fake_a.detach())
        loss_d = 0.5 * (self._gan(self.D_A(b), True) + self._gan(self.D_A(fb), False))
        loss_d = loss_d + 0.5 * (self._gan(self.D_B(a), True) + self._gan(self.D_B(fa), False))
        loss_d.backward()
        self.opt_d.step()
        return loss_g.detach(), loss_d.detach()
