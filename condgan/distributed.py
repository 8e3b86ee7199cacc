"""Training on several processes: torchrun's environment, DistributedDataParallel for GAN phases, rank-0 duties.

    torchrun --nproc_per_node=N -m condgan.train ...

Each process (rank) trains the same model on its own share of every global
batch; DistributedDataParallel averages the gradients, so all ranks hold the
same weights after every optimizer step. `--batch-size` is per rank: the
global batch is batch_size x world size.

GAN phases need care with DDP: a discriminator is also called in the
generator's phase, with its parameters frozen, and its gradients must not be
waited for there. The nets are therefore wrapped in `PhaseDDP`, which goes
through DDP's gradient synchronisation only while the net has trainable
parameters, and the wrappers are put in place only while the model runs a
phase (`DDPNets.installed`), so everything else (checkpoints, EMA, samples,
export) sees the plain nets with unchanged state-dict keys.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import CondganError


def requested() -> bool:
    """True when launched by torchrun (or another launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_from_env() -> int:
    """This process's rank as the launcher set it (0 when not launched by one); valid before init and after."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's index on its machine (0 when not launched by torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


_device_name: str | None = None  # the device init() chose for this rank
_control = None  # a gloo group for small control messages, so they never wait on a GPU stream


def init(device_name: str) -> str:
    """Join the process group torchrun describes (once); returns the device this rank should use."""
    global _device_name, _control
    if not requested():
        return device_name
    if active():
        return _device_name or device_name
    local = local_rank()
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local)
        device_name = f"cuda:{local}"
    elif device_name == "auto":
        device_name = "cpu"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    _control = dist.new_group(backend="gloo") if use_cuda else None
    _device_name = device_name
    return device_name


def shutdown() -> None:
    global _device_name, _control
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _device_name = _control = None


def barrier() -> None:
    if active():
        dist.barrier(group=_control)


def broadcast(obj):
    """Rank 0's value of `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def gather(obj) -> list:
    """Every rank's `obj`, on every rank, in rank order."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj, group=_control)
    return out


def check_same_config(cfg) -> None:
    """Fail on every rank, in one sentence, when the ranks were started with different settings."""
    if not active():
        return
    settings = {k: v for k, v in cfg.to_dict().items() if k not in ("device",)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    digests = gather(digest)
    odd = [r for r, d in enumerate(digests) if d != digests[0]]
    if odd:
        raise CondganError(f"ranks disagree on the training config: rank(s) {', '.join(map(str, odd))} differ "
                           f"from rank 0; start every rank with the same flags")


def mean_over_ranks(sums: dict) -> dict:
    """Logged loss sums averaged over ranks (one all-reduce, at log time only)."""
    if not active() or not sums:
        return sums
    keys = sorted(sums)
    flat = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64).reshape(()).cpu() for k in keys])
    dist.all_reduce(flat, group=_control)
    flat = flat / world_size()
    return {k: flat[i] for i, k in enumerate(keys)}


def agree_on_stop(signum: int | None) -> int | None:
    """The stop signal any rank has received (checked on every rank between batches), or None."""
    if not active():
        return signum
    flag = torch.tensor([signum or 0], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=_control)  # on the CPU: no wait on the GPU's queue
    return int(flag.item()) or None


# buffers are synced from rank 0 once, at wrapping, but not before every forward (newer torch spells it
# forward_sync_buffers and deprecates the older broadcast_buffers)
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
                   else {"broadcast_buffers": False})


# a weight with one input channel has two valid channels-last layouts; DDP warns when the gradient picks
# the other one, costing one copy of a tiny tensor
warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")


class PhaseDDP(DistributedDataParallel):
    """DDP that synchronises gradients only while the wrapped net has trainable parameters.

    In a generator phase the discriminator's parameters are frozen
    (requires_grad False); calling it through DDP then would leave DDP waiting
    for gradients that never come, so the call goes straight to the net.
    """

    def forward(self, *args, **kwargs):
        if not self._trainable():
            return self.module(*args, **kwargs)
        return super().forward(*args, **kwargs)

    def _trainable(self) -> bool:
        return any(p.requires_grad for p in self.module.parameters())


class DDPNets:
    """One PhaseDDP per trainable top-level net of a model, swapped in while a phase runs."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model = model
        ids = [device.index] if device.type == "cuda" else None
        # buffers (BatchNorm statistics) are not broadcast: with SyncBatchNorm (CUDA) they agree anyway,
        # and on CPU each rank keeps statistics of its own share of the batch, as plain BatchNorm would
        self.wrapped = {name: PhaseDDP(net, device_ids=ids, gradient_as_bucket_view=True, **_NO_BUFFER_SYNC)
                        for name, net in model.named_children()
                        if any(p.requires_grad for p in net.parameters())}

    @contextlib.contextmanager
    def installed(self):
        plain = {name: getattr(self.model, name) for name in self.wrapped}
        try:
            for name, ddp in self.wrapped.items():
                setattr(self.model, name, ddp)
            yield
        finally:
            for name, net in plain.items():
                setattr(self.model, name, net)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers that share statistics across ranks (CUDA only: torch's SyncBatchNorm needs a GPU)."""
    if device.type != "cuda":
        return model
    for name, net in list(model.named_children()):
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(net))
    return model
