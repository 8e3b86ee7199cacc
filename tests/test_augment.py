"""DiffAugment (condgan.augment): shapes, ranges, fresh draws per image and per call, gradients, channel
groups, and that every registered model's discriminators get it, in the D and the G steps, only when asked."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from condgan import augment, models
from condgan.data.tensors import collate
from condgan.errors import CondganError
from condgan.step import StepRunner
from condgan.train import main as train

ALL = ("color", "translation", "cutout")


def test_policy_parsing():
    assert augment.parse_policy("") == () and augment.parse_policy("none") == ()
    assert augment.parse_policy("cutout, color") == ("color", "cutout")  # the paper's order
    assert augment.parse_policy("color,translation,cutout") == ALL
    with pytest.raises(CondganError, match="subset of color, translation, cutout, got blur"):
        augment.parse_policy("color,blur")
    with pytest.raises(CondganError, match="twice"):
        augment.parse_policy("color,color")


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), ALL])
def test_shapes_and_layout_are_kept(policy):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 12)
    y = augment.augment(x, policy)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    cl = augment.augment(x.contiguous(memory_format=torch.channels_last), policy)
    assert cl.is_contiguous(memory_format=torch.channels_last)


def test_color_strengths_are_the_papers():
    # a flat image: saturation and contrast act about its own mean, so only brightness moves it
    torch.manual_seed(1)
    x = torch.full((2000, 3, 4, 4), 0.25)
    shift = augment.augment(x, ("color",)) - x
    per_image = shift.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-6)
    b = per_image[:, 0]
    assert b.min() >= -0.5 - 1e-6 and b.max() <= 0.5 + 1e-6 and b.min() < -0.45 and b.max() > 0.45
    # contrast: a two-valued grey image's spread scales by U(0.5, 1.5) (saturation cannot act on grey)
    g = torch.zeros(2000, 3, 2, 2)
    g[:, :, 0] = 1.0
    out = augment.augment(g, ("color",))
    spread = out.amax((1, 2, 3)) - out.amin((1, 2, 3))
    assert spread.min() >= 0.5 - 1e-5 and spread.max() <= 1.5 + 1e-5


def test_translation_moves_by_at_most_an_eighth_and_fills_zeros():
    torch.manual_seed(2)
    x = torch.arange(16 * 16, dtype=torch.float32).reshape(1, 1, 16, 16).repeat(500, 1, 1, 1) + 1
    y = augment.augment(x, ("translation",))
    values = set(x[0].flatten().tolist()) | {0.0}
    assert set(y.flatten().tolist()) <= values  # every pixel is an input pixel or zero fill
    zero_rows = (y == 0).all(3).sum(2).flatten()
    assert zero_rows.max() <= 2 and zero_rows.max() > 0  # 16 / 8 = 2 rows at most
    assert (y != x).flatten(1).any(1).float().mean() > 0.5  # most images moved


def test_cutout_zeroes_at_most_a_quarter():
    torch.manual_seed(3)
    x = torch.ones(500, 2, 16, 16)
    y = augment.augment(x, ("cutout",))
    zeroed = (y == 0).all(1).flatten(1).float().mean(1)
    assert zeroed.max() <= 0.25 + 1e-6 and zeroed.min() >= 1 / 16  # 8x8 square, at least a quarter inside
    assert torch.equal(y[:, 0], y[:, 1])  # the same square through every channel


def test_draws_are_independent_per_image_and_per_call():
    torch.manual_seed(4)
    x = torch.randn(1, 3, 16, 16).repeat(8, 1, 1, 1)
    a, b = augment.augment(x, ALL), augment.augment(x, ALL)
    assert not torch.equal(a, b)
    assert len({tuple(img.flatten()[:64].tolist()) for img in a}) == 8


def test_gradients_flow_through_every_transform():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)

    def fixed_draw(t):  # the same draw on every call, so gradcheck's finite differences see one function
        torch.manual_seed(5)
        return augment.augment(t, ALL)

    assert torch.autograd.gradcheck(fixed_draw, (x,))
    fixed_draw(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_channel_groups_keep_stacked_images_aligned():
    torch.manual_seed(6)
    img = torch.randn(16, 3, 16, 16)
    pair = torch.cat([img, img], 1)  # pix2pix's D sees input | output stacked
    out = augment.augment(pair, ALL, groups=(3, 3))
    torch.testing.assert_close(out[:, :3], out[:, 3:])
    # colour statistics are per image: a grey input beside a coloured output keeps its own channel mean
    grey = torch.full((16, 1, 8, 8), 0.3)
    colour = torch.randn(16, 3, 8, 8)
    out = augment.augment(torch.cat([grey, colour], 1), ("color",), groups=(1, 3))
    assert torch.allclose(out[:, :1], out[:, :1].flatten(1)[:, :1, None, None].expand(-1, 1, 8, 8), atol=1e-6)
    with pytest.raises(ValueError, match="add up"):
        augment.augment(pair, ALL, groups=(3, 2))


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3)
        self.seen = []

    def forward(self, x, *rest):
        self.seen.append(x.detach().clone())
        return self.conv(x)


def test_the_hook_augments_training_calls_only():
    class Model:
        cfg = type("C", (), {"model": "toy"})()

        def __init__(self):
            self.D = Recorder()

        def discriminators(self):
            return {"D": self.D}

        def discriminator_channel_groups(self, name):
            return None

    m = Model()
    assert augment.install(m, ()) == []  # off: nothing attached
    handles = augment.install(m, ALL)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    m.D(x, "label passes through")
    m.D(x)
    assert not torch.equal(m.D.seen[0], m.D.seen[1]) and not torch.equal(m.D.seen[0], x.detach())
    m.D.eval()
    m.D(x)
    assert torch.equal(m.D.seen[2], x.detach())  # evaluation sees the image itself
    for h in handles:
        h.remove()
    m.discriminators = lambda: {}
    with pytest.raises(CondganError, match="declares none"):
        augment.install(m, ALL)


def _runner(name: str, tmp_path, *flags):
    cls = models.model_class(name)
    from condgan import data
    from condgan.config import build_parser
    args = build_parser(cls.config_class, "t").parse_args([*cls.smoke_flags, "--data-root", str(tmp_path),
                                                           *flags])
    cfg = cls.config_class(**vars(args))
    dataset, info = data.load(cls.data_kind, cls.data_options(cfg), "train")
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, collate_fn=collate)))
    return StepRunner.build(cfg, info, "cpu"), batch


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_discriminator_input_is_augmented_in_both_steps(name, tmp_path):
    runner, batch = _runner(name, tmp_path, "--diffaug", "color,translation,cutout", "--amp", "off")
    judges = runner.model.discriminators()
    assert judges and len(runner.augmentations) == len(judges)
    seen = {n: [] for n in judges}
    for n, net in judges.items():  # record what each discriminator is given, after the augmentation hook
        net.register_forward_pre_hook(lambda mod, args, n=n: seen[n].append(args[0].detach().clone()))
    g_params = [p for n, p in runner.model.named_parameters() if not n.startswith(tuple(judges))]
    runner.train_step(runner.to_device(batch))
    for n, inputs in seen.items():
        assert len(inputs) >= 3, n  # real and fake in the D step, fake in the G step
        # cutout zeroes whole squares through every channel: the mark of the augmentation on each input
        assert all((x == 0).all(1).any() for x in inputs), n
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g_params)


def test_off_by_default(tmp_path):
    for name in sorted(models.REGISTRY):
        assert models.config_class(name)().diffaug == ""
    runner, _ = _runner("pix2pix", tmp_path)
    assert runner.augmentations == []


def test_bad_policy_is_one_sentence(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        train(["--diffaug", "colour", "--out", str(tmp_path / "r"), "--no-progress"])
    assert exit_.value.code == 2
    assert "--diffaug takes a comma-separated subset" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
