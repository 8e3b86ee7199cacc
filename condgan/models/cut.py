"""CUT and FastCUT (Park et al., ECCV 2020): one-way unpaired translation by patchwise contrastive learning.

One ResNet generator G (source -> target domain, `--direction`), one 70x70 PatchGAN D with the LSGAN loss,
and PatchNCE instead of CycleGAN's second generator and cycle loss: a patch of the output G(x) should be
recognisable as coming from the patch of the input x at the same place, among the other patches of x.

PatchNCE. The features of x and of G(x) are taken from G's own encoder at `--nce-layers`, indices into
`ResnetGenerator.net` (the activation after that Sequential entry, as in the paper's code). The paper's
five layers (0, 4, 8, 12, 16 of its anti-aliased ResNet generator) are the padded input, the outputs of the
two downsampling convolutions, and the outputs of the first and the middle (5th of 9) residual blocks.
`--nce-layers ''` (the default) finds those five in condgan's generator, whatever its options:

    condgan ResnetGenerator.net                      resnet_9blocks   with --antialias (the CUT default)
    0  ReflectionPad2d(3): the input                 0                0
       7x7 conv, norm, ReLU                          1-3              1-3
    first downsampling conv (stride 2 / stride 1)    4                4   (+ norm, ReLU, blur-pool: 5-7)
    second downsampling conv                         7                8   (+ norm, ReLU, blur-pool: 9-11)
    first residual block                             10               12
    middle residual block (blocks // 2 after it)     14               16  <- the paper's 0,4,8,12,16

At each layer `--num-patches` random locations per image are drawn, the same for x and G(x); a two-layer MLP
per layer (Linear, ReLU, Linear, `--nce-mlp-width` units; `G_heads`, trained with G by G's optimizer) maps
each feature to a unit vector. For the output patch q_i and the input patches k_j of the same image the loss
is the cross-entropy of the logits [q_i.k_i, q_i.k_j (j != i)] / `--nce-temperature` with the positive at
index 0; the input side is a fixed target (no gradient), as in the paper, read from G's own pass over x
(`ResnetGenerator.forward(x, taps=...)`), so the encoder runs once more per step (on G(x)), not twice
(except when flip equivariance sent x in flipped).

Modes (`--mode`): cut adds the identity term, PatchNCE(y, G(y)) on target-domain images y, averaged with
PatchNCE(x, G(x)), NCE weight 1, 400 epochs (the last 200 decaying); y goes through G in a pass and a backward
of its own (a loss part of the G phase), the gradients of one pass over x and y together at half its peak
memory (with --norm batch they share one pass and its batch statistics); fastcut drops it, weighs NCE 10,
flips the input batch horizontally half the time and flips the output's features back before comparing them
(flip equivariance), 200 epochs (the last 50 decaying). `--nce-weight`, `--nce-idt`, `--flip-equivariance`,
`--epochs` and `--decay-epochs` given explicitly win over the mode. FastCUT can collapse to the identity on
some data: when mean |G(x) - x| stays below `--collapse-threshold` for `--collapse-steps` consecutive steps,
training warns once (the value is logged every step as out_in_l1).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import losses
from ..config import opt
from ..data.info import UNPAIRED
from ..errors import CondganError
from ..nets.resnet import UPSAMPLING, UPSAMPLING_ALIASES, ResidualBlock, ResnetGenerator
from ..nets.unet import NORMS
from .translation import (GAN_LOSSES, GENERATORS, TranslationConfig, TranslationModel, as_rgb,
                          build_discriminator, build_generator)

#: what each --mode sets unless the flag is given: epochs, the fraction of them that decays, NCE weight,
#: identity PatchNCE, flip equivariance (the paper's CUT and FastCUT options)
MODES = {"cut": {"epochs": 400, "decay_divisor": 2, "nce_weight": 1.0, "nce_idt": "on", "flip_equivariance": "off"},
         "fastcut": {"epochs": 200, "decay_divisor": 4, "nce_weight": 10.0, "nce_idt": "off",
                     "flip_equivariance": "on"}}
SWITCH = ["mode", "on", "off"]
COLLAPSE_CHECK_EVERY = 25  # steps between looks at the identity-collapse counter (one device sync each)


class IdentityCollapseWarning(UserWarning):
    """The generator's output has stayed (almost) equal to its input for many steps."""


@dataclass
class CUTConfig(TranslationConfig):
    model: str = opt("cut", "model to train (see the registry in condgan.models)")
    data: str = opt("procedural-maps", "unpaired data: procedural-maps (generated offline), an official archive "
                    "(horse2zebra, ...) or a folder with trainA/ and trainB/")
    mode: str = opt("cut", "preset: cut (identity PatchNCE on target images, NCE weight 1, 400 epochs) or "
                    "fastcut (no identity term, NCE weight 10, flip equivariance, 200 epochs)",
                    choices=list(MODES))
    epochs: int = opt(0, "passes over the training data (0: from --mode, 400 for cut, 200 for fastcut)",
                      resumable=True)
    decay_epochs: int = opt(-1, "final epochs over which the rate decays linearly to 0 (-1: from --mode, the "
                            "second half of --epochs for cut, the last quarter for fastcut)")
    generator: str = opt("resnet_9blocks", "generator architecture (a ResNet: PatchNCE reads its encoder)",
                         choices=list(GENERATORS))
    antialias: bool = opt(True, "anti-aliased downsampling in the generator (stride-1 conv, then a 3x3 blur "
                          "with stride 2), as in CUT")
    upsampling: str = opt("bilinear", "generator decoder: transposed convolutions, or 2x nearest or bilinear "
                          "upsampling + 3x3 conv (bilinear: the closest to CUT's anti-aliased upsampling)",
                          choices=[*UPSAMPLING, *UPSAMPLING_ALIASES])
    norm: str = opt("instance", "normalisation in all nets", choices=list(NORMS))
    dropout: bool = opt(False, "dropout 0.5 in the generator")
    gan_loss: str = opt("lsgan", "adversarial loss", choices=list(GAN_LOSSES))
    gan_weight: float = opt(1.0, "weight of the generator's adversarial loss", at_least=0, at_most=1e6)
    nce_weight: float = opt(0.0, "weight of PatchNCE (0: from --mode, 1 for cut, 10 for fastcut)", at_least=0,
                            at_most=1e6)
    nce_idt: str = opt("mode", "identity PatchNCE on target-domain images (mode: on for cut, off for fastcut)",
                       choices=SWITCH)
    flip_equivariance: str = opt("mode", "flip the input horizontally half the time and its output's features "
                                 "back (mode: on for fastcut, off for cut)", choices=SWITCH)
    nce_layers: str = opt("", "comma-separated indices into the generator's net Sequential whose outputs "
                          "PatchNCE compares ('': the input, both downsampling convs, the first and middle "
                          "residual block: 0,4,8,12,16 with --antialias and 9 blocks)")
    num_patches: int = opt(256, "random locations per image and layer, shared by input and output",
                           above=0, at_most=65536)
    nce_temperature: float = opt(0.07, "temperature of the PatchNCE logits", above=0, at_most=100)
    nce_mlp_width: int = opt(256, "units of the two-layer MLP head per PatchNCE layer", above=0, at_most=8192)
    collapse_steps: int = opt(200, "warn once when mean |output - input| stays below --collapse-threshold for "
                              "this many consecutive steps (0: never)", resumable=True, at_least=0)
    collapse_threshold: float = opt(0.02, "identity-collapse threshold on mean |output - input| (images in "
                                    "[-1, 1])", resumable=True, at_least=0, at_most=2)
    sample_pairs: int = opt(3, "test images in the per-epoch sample grid")

    def __post_init__(self):
        """Fill what --mode decides and the flags left open (0, -1 or 'mode'); explicit values stay."""
        preset = MODES.get(self.mode)
        if preset is None:
            return  # validate() names the bad --mode
        if self.epochs == 0:
            self.epochs = preset["epochs"]
        if self.nce_weight == 0:
            self.nce_weight = preset["nce_weight"]
        for name in ("nce_idt", "flip_equivariance"):
            if getattr(self, name) == "mode":
                setattr(self, name, preset[name])

    def decay_epochs_resolved(self) -> int:
        if self.decay_epochs == -1 and self.mode in MODES:
            return self.epochs // MODES[self.mode]["decay_divisor"]
        return super().decay_epochs_resolved()

    def validate(self) -> None:
        if self.mode not in MODES:
            raise CondganError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.generator in GENERATORS and GENERATORS[self.generator][0] != "resnet":
            raise CondganError(f"CUT's PatchNCE reads the ResNet generator's encoder; --generator {self.generator} "
                               f"is a U-Net (use resnet_9blocks or resnet_6blocks)")
        super().validate()
        parse_layers(self.nce_layers)


def parse_layers(text: str) -> tuple[int, ...]:
    """'0,4,8' -> (0, 4, 8), sorted without repeats; '' -> () (the paper's five, found per generator)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise CondganError(f"--nce-layers takes comma-separated indices into the generator's layers, e.g. "
                           f"0,4,8,12,16, got {text!r}")
    return tuple(sorted({int(p) for p in parts}))


def paper_layers(g: ResnetGenerator) -> tuple[int, ...]:
    """The input, both downsampling convs, the first and the middle residual block, as `net` indices."""
    blocks = [i for i, m in enumerate(g.net) if isinstance(m, ResidualBlock)]
    downs = [i for i, m in enumerate(g.net[:blocks[0]]) if isinstance(m, nn.Conv2d)][1:]  # after the 7x7 stem
    return tuple(sorted({0, *downs, blocks[0], blocks[len(blocks) // 2]}))


def encoder_layers(g: ResnetGenerator, text: str) -> tuple[int, ...]:
    """--nce-layers resolved for `g`, refusing indices past its last residual block (the decoder)."""
    layers = parse_layers(text) or paper_layers(g)
    last = max(i for i, m in enumerate(g.net) if isinstance(m, ResidualBlock))
    if layers[-1] > last:
        raise CondganError(f"--nce-layers {text} reaches past the generator's encoder: its layers 0-{last} end "
                           f"with the last residual block (the default is {','.join(map(str, paper_layers(g)))})")
    return layers


def feature_channels(g: ResnetGenerator, layers, in_channels: int) -> list[int]:
    """Channels of the activation after each of `layers` (convolutions set them; other layers keep them)."""
    out, c = [], in_channels
    for i, m in enumerate(g.net[:max(layers) + 1]):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            c = m.out_channels
        if i in layers:
            out.append(c)
    return out


def sample_locations(feat: torch.Tensor, n: int) -> torch.Tensor:
    """[B, P] distinct random positions in the H*W grid of each image (all of them when n >= H*W)."""
    b, hw = feat.shape[0], feat.shape[2] * feat.shape[3]
    return torch.rand(b, hw, device=feat.device).argsort(1)[:, :min(n, hw)]


def pick(feat: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] features at positions ids [B, P] -> [B, P, C]."""
    flat = feat.flatten(2)
    return flat.gather(2, ids[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)


def patch_nce(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """PatchNCE per image: q, k [B, P, D] unit vectors (output and input patches); returns [B].

    Patch i of q is to pick patch i of k among the P patches of the same image: cross-entropy over the
    logits [q_i.k_i, q_i.k_j for j != i] / temperature with the positive at index 0. k is a fixed target.
    """
    q, k = q.float(), k.detach().float()
    logits = torch.bmm(q, k.transpose(1, 2)) / temperature  # [B, P, P]: positives on the diagonal
    b, p, _ = logits.shape
    same = torch.eye(p, dtype=torch.bool, device=logits.device)
    logits = torch.cat([logits.diagonal(dim1=1, dim2=2)[..., None], logits.masked_fill(same, float("-inf"))], 2)
    target = torch.zeros(b * p, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.flatten(0, 1), target, reduction="none").view(b, p).mean(1)


class PatchHeads(nn.Module):
    """One MLP (Linear, ReLU, Linear) per PatchNCE layer, each patch feature mapped to a unit vector."""

    def __init__(self, channels, width: int = 256):
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, width), nn.ReLU(True), nn.Linear(width, width))
                                  for c in channels)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, queries, keys, ids):
        """Per layer: (q [B, P, D] from the output's features, k [B, P, D] from the input's, no gradient)."""
        out = []
        for mlp, fq, fk, i in zip(self.mlps, queries, keys, ids):
            q = F.normalize(mlp(pick(fq, i)), dim=-1, eps=1e-7)
            with torch.no_grad():
                k = F.normalize(mlp(pick(fk, i)), dim=-1, eps=1e-7)
            out.append((q, k))
        return out


def _plain(net: nn.Module) -> nn.Module:
    """The net itself while DDP wraps it (PatchNCE runs its encoder, which the DDP wrapper does not offer)."""
    return net.module if isinstance(net, DistributedDataParallel) else net


class CUT(TranslationModel):
    config_class = CUTConfig
    data_kind = UNPAIRED
    smoke_flags = ("--crop-size", "32", "--load-size", "36", "--resnet-blocks", "2", "--g-width", "4",
                   "--d-width", "4", "--d-layers", "2", "--sample-pairs", "2", "--num-patches", "16",
                   "--nce-mlp-width", "8")
    channels_last_on_cpu = False  # CycleGAN's nets, where it measured 0.83-0.89x per step on CPU
    step_phase = "G"

    def __init__(self, cfg: CUTConfig, info):
        super().__init__(cfg, info)
        cin, cout = self.io_channels()
        if cfg.nce_idt == "on" and cin != cout:
            raise CondganError(f"identity PatchNCE feeds target images to the generator, which needs the same "
                               f"channel count in both domains (source {cin}, target {cout}); use --nce-idt off")
        self.G, self.D = build_generator(cfg, cin, cout), build_discriminator(cfg, cout)
        self.layers = encoder_layers(self.G, cfg.nce_layers)
        self.G_heads = PatchHeads(feature_channels(self.G, self.layers, cin), cfg.nce_mlp_width)
        self.register_buffer("_streak", torch.zeros((), dtype=torch.long), persistent=False)
        self._fake = self._gap = None
        self._g_steps, self._warned = 0, False

    def optimizers(self):
        return {"G": self.adam([*self.G.parameters(), *self.G_heads.parameters()]), "D": self.adam(self.D.parameters())}

    def phases(self, batch_index: int):
        return ("G", "D")

    def discriminators(self):
        return {"D": self.D}

    def _domains(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(source, target) images of the batch for the run's --direction."""
        return (batch["A"], batch["B"]) if self.cfg.direction == "AtoB" else (batch["B"], batch["A"])

    def nce_loss(self, src: torch.Tensor, out: torch.Tensor, flipped: bool = False, keys=None) -> torch.Tensor:
        """PatchNCE per image [B] between inputs `src` and the generator's outputs `out`, averaged over the
        layers; `flipped`: `out` came from horizontally flipped inputs (its features are flipped back);
        `keys`: the encoder's features of `src` when the caller has them (from G's own pass over src)."""
        g = _plain(self.G)
        if keys is None:
            with torch.no_grad():
                keys = g.encode(src, self.layers)
        keys = [k.detach() for k in keys]
        queries = g.encode(out, self.layers)
        if flipped:
            queries = [f.flip(3) for f in queries]
        ids = [sample_locations(f, self.cfg.num_patches) for f in keys]
        pairs = self.G_heads(queries, keys, ids)
        return torch.stack([patch_nce(q, k, self.cfg.nce_temperature) for q, k in pairs]).mean(0)

    def _translate_and_compare(self, real: torch.Tensor, flipped: bool):
        """G(real) (of real flipped horizontally when `flipped`) and PatchNCE(real, G(real)) per image. G's
        pass over the unflipped input also yields the input's features, so the encoder runs once more
        (on the output), not twice."""
        if flipped:
            fake = self.G(real.flip(3))
            return fake, self.nce_loss(real, fake, flipped=True)
        fake, keys = self.G(real, taps=self.layers)
        return fake, self.nce_loss(real, fake, keys=keys)

    def _generator_parts(self, src: torch.Tensor, tgt: torch.Tensor):
        """The G phase as loss parts (StepRunner backwards each before the next is computed).

        Part 1: the adversarial loss on G(x) and PatchNCE(x, G(x)). With the identity term, part 2 is
        PatchNCE(y, G(y)); each NCE term weighs half, as the mean over x and y of one pass would. With a
        per-image norm (instance, none) the two passes give that one pass's gradients at half its peak
        memory; --norm batch keeps x and y in one pass, whose batch statistics they share.
        """
        c = self.cfg
        n, idt = src.shape[0], c.nce_idt == "on"
        together = idt and c.norm == "batch"
        real = torch.cat([src, tgt]) if together else src
        flipped = c.flip_equivariance == "on" and bool(torch.rand(()) < 0.5)
        fake, nce = self._translate_and_compare(real, flipped)
        gan = losses.g_loss(GAN_LOSSES[c.gan_loss], self.D(fake[:n]))
        nce_x, half = nce[:n].mean(), 0.5 if idt else 1.0
        nce_sum = nce.mean() if together else half * nce_x
        out = {"loss": c.gan_weight * gan + c.nce_weight * nce_sum, "g_gan": gan.detach(), "nce": nce_x.detach()}
        if together:
            out["nce_idt"] = nce[n:].mean().detach()
        if src.shape[1] == fake.shape[1]:
            shown = fake[:n].flip(3) if flipped else fake[:n]
            self._gap = (shown.detach().float() - src.float()).abs().mean()
            out["out_in_l1"] = self._gap
        self._fake = fake[:n].detach()
        del fake, nce, gan
        yield out
        if idt and not together:
            nce_y = self._translate_and_compare(tgt, flipped)[1].mean()
            yield {"loss": c.nce_weight * 0.5 * nce_y, "nce_idt": nce_y.detach()}

    def step(self, phase: str, batch: dict):
        c = self.cfg
        src, tgt = self._domains(batch)
        if phase == "G":
            self.set_requires_grad(self.D, False)
            return self._generator_parts(src, tgt)
        if phase == "D":
            fake, self._fake = self._fake, None
            self.set_requires_grad(self.D, True)
            d = 0.5 * losses.d_loss(GAN_LOSSES[c.gan_loss], self.D(tgt), self.D(fake))
            return {"loss": d, "d": d.detach()}
        raise ValueError(f"unknown phase {phase!r}")

    def after_step(self, phase: str) -> None:
        if phase != "G" or self._gap is None or not self.cfg.collapse_steps:
            return
        gap, self._gap = self._gap, None
        self._streak = (self._streak + 1) * (gap < self.cfg.collapse_threshold)  # on the device: no sync here
        self._g_steps += 1
        if self._warned or self._g_steps % min(COLLAPSE_CHECK_EVERY, self.cfg.collapse_steps):
            return
        streak = int(self._streak)
        if streak >= self.cfg.collapse_steps:
            self._warned = True
            warnings.warn(f"the {self.cfg.mode} generator's output has stayed within {self.cfg.collapse_threshold} "
                          f"of its input (mean |output - input|, logged as out_in_l1) for {streak} consecutive "
                          f"steps: it may have collapsed to the identity, a known FastCUT failure on some data; "
                          f"try --mode cut (its identity term steadies training), another --seed or a larger "
                          f"--gan-weight", IdentityCollapseWarning, stacklevel=2)

    def io_channels(self, direction: str | None = None) -> tuple[int, int]:
        self.resolve_direction(direction)
        ca, cb = self.info.in_channels, self.info.channels
        return (ca, cb) if self.cfg.direction == "AtoB" else (cb, ca)

    def generator(self, direction: str | None = None):
        return self.G

    def evaluation_extras(self, batches) -> dict:
        """Mean |G(x) - x| over the evaluation inputs: near 0 means the generator collapsed to the identity."""
        cin, cout = self.io_channels()
        if cin != cout:
            return {}
        total, n = 0.0, 0
        for b in batches:
            src = self._domains(b)[0].to(self.device)
            total += (self.translate(src) - src).abs().flatten(1).mean(1).sum().item()
            n += src.shape[0]
        return {"out_in_l1": total / n} if n else {}

    def sample_grid(self, fixed=None):
        """Rows: source | its translation | a target-domain image | what the generator makes of it."""
        if fixed is None:
            raise CondganError("CUT sample grids need test images")
        src, tgt = (t.to(self.device) for t in self._domains(fixed))
        cols = [src, self.translate(src), tgt]
        if src.shape[1] == tgt.shape[1]:
            cols.append(self.translate(tgt))
        return torch.stack([as_rgb(t.float()) for t in cols], 1).flatten(0, 1), len(cols)
