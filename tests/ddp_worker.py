"""Run by tests/test_distributed.py under torchrun: `python -m condgan.train` on one rank, plus test hooks.

After training each rank writes the weights it holds to DUMP_DIR/rank<R>.pt, so the test can check that
the ranks agree. CONDGAN_TEST_RANK1_ARGS adds flags on rank 1 only (to start ranks that disagree).
"""
import os
import sys

import torch

from condgan import train
from condgan.trainer import Trainer

rank = int(os.environ["RANK"])
dump_dir = os.environ.get("DUMP_DIR")
fit = Trainer.fit


def fit_and_dump(self, resume=None):
    summary = fit(self, resume)
    if dump_dir:
        torch.save(self.model.state_dict(), os.path.join(dump_dir, f"rank{rank}.pt"))
    return summary


Trainer.fit = fit_and_dump
argv = sys.argv[1:]
if rank == 1:
    argv += os.environ.get("CONDGAN_TEST_RANK1_ARGS", "").split()
train.main(argv)
