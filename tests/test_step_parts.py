"""StepRunner's loss parts: a model's step() may yield several losses, each backwarded before the next is
computed, for one optimizer step on their summed gradients."""
from __future__ import annotations

import torch
from torch import nn

from condgan.config import TrainConfig
from condgan.models.base import GANModel
from condgan.step import StepRunner


class TwoParts(GANModel):
    """One linear net; phase "G" yields the loss on x, then the loss on y (or returns both at once)."""

    def __init__(self, split: bool):
        super().__init__(TrainConfig(amp="off", channels_last=False), None)
        self.G = nn.Linear(4, 1)
        self.split, self.seen_grad = split, []

    def optimizers(self):
        return {"G": torch.optim.SGD(self.G.parameters(), lr=0.1)}

    def phases(self, batch_index: int):
        return ("G",)

    def step(self, phase, batch):
        if not self.split:
            return {"loss": self.G(batch["x"]).sum() + 2 * self.G(batch["y"]).sum(), "only": torch.tensor(1.0)}
        return self._parts(batch)

    def _parts(self, batch):
        yield {"loss": self.G(batch["x"]).sum(), "x": torch.tensor(1.0)}
        self.seen_grad.append(self.G.weight.grad.clone())  # computed after the first part's backward
        yield {"loss": 2 * self.G(batch["y"]).sum(), "y": torch.tensor(2.0)}


def test_parts_are_backwarded_one_by_one_into_one_optimizer_step():
    batch = {"x": torch.randn(3, 4, generator=torch.Generator().manual_seed(0)),
             "y": torch.randn(5, 4, generator=torch.Generator().manual_seed(1))}
    results = {}
    for split in (True, False):
        torch.manual_seed(0)
        model = TwoParts(split)
        runner = StepRunner(model.cfg, model, "cpu")
        results[split] = (runner.run_phase("G", batch), model.G.weight.detach().clone(), model)
    (parts, w_parts, model), (whole, w_whole, _) = results[True], results[False]
    torch.testing.assert_close(w_parts, w_whole)  # the same single SGD step on the summed gradient
    torch.testing.assert_close(parts["loss"], whole["loss"].detach())
    assert not parts["loss"].requires_grad and {"x", "y"} <= set(parts)
    x_grad = batch["x"].sum(0)  # d(sum G(x))/dW: the first part's gradient alone when the second began
    assert len(model.seen_grad) == 1 and torch.allclose(model.seen_grad[0][0], x_grad)
