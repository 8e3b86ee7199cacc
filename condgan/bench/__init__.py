"""Training and inference throughput: condgan vs a plain eager fp32 reference, side by side in one run.

    python -m condgan.bench pix2pix [--batch-sizes 1 8] [--rounds 3] [--size 256] [--device auto]
    python -m condgan.bench cyclegan
    python -m condgan.bench cgan            (ours only: there is no reference architecture to compare)

pix2pix: unet_256 + 70x70 PatchGAN, vanilla GAN + 100 x L1. CycleGAN: two
resnet_9blocks generators and two 70x70 PatchGANs (instance norm), LSGAN,
cycle 10 + identity 5, pools of 50. Adam (2e-4, 0.5/0.999) on both sides. The
references (condgan/bench/reference_*.py) are written the plain way:
nn.Sequential blocks, separate activation modules, NCHW, fp32. Before timing,
the reference's weights are copied into ours and one generator forward is
compared, so both compute the same model.

Each timing runs in its own fresh process (neither inherits the other's
allocator state), implementations alternating within each round so drifting
load hits all alike. Training = one full step (every phase, optimizer steps
included); inference = one generator forward in eval mode under
torch.inference_mode. Reported: median images/s over rounds and the ratio to
the reference. The AMP variant is `--amp auto`'s choice on CUDA (bf16, fp16 without it) and bf16 on
the CPU; "condgan, auto" is what a user's `--amp auto --channels-last` training gets on the CPU: the
setting condgan.probe measures fastest for this model, size and batch (its choice is printed). Both are
in the default set on CUDA (AMP) and on CPUs with bf16 instructions (AMX, AVX-512 BF16) for the models
validated in bf16 there (pix2pix, CycleGAN, the cGAN; the cGAN's sampling is not probed). The
roofline column: every row's FLOP/s (FLOPs per image of the step or forward, counted by
torch.utils.flop_counter, times images/s) and its share of the machine's dense rate in the dtype the
row ran in (fp32; bf16, or fp16, for AMP; the probe's choice for auto): the faster of a square matmul
(2048x2048) and a 3x3 convolution (256 channels, 64x64, batch 8, channels-last), each timed
best-of-3 at the start of the run. Both count: on some CPUs the matmul library's fp32 path runs at
under half the convolution library's rate (BENCHMARKS.md), so a matmul-only roofline would put real
convolutions above 100 %.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from .. import models
from ..checkpoint import atomic_write
from ..cli import Parser, command, positive, writable_file
from ..data import DataInfo
from ..device import DTYPE_NAMES, Setting, pick_device
from ..errors import CondganError
from ..models.base import SAMPLE
from ..step import StepRunner

REFERENCE = "reference (eager fp32)"
AMP = "condgan, AMP"  # bf16 (fp16 on GPUs without bf16); channels-last on GPUs and where the model takes it on CPU
AUTO = "condgan, auto"  # --amp auto --channels-last: the probe's measured choice on CPU, the fixed rule on GPUs
VARIANTS = {REFERENCE: "ref", "condgan": "ours", AMP: "ours-amp", AUTO: "ours-auto"}


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (condgan.probe's test: AMX or AVX-512 BF16 flags)."""
    from .. import probe
    return probe.Machine.here().has_bf16()


def _references():
    from .reference_cyclegan import ReferenceCycleGAN
    from .reference_pix2pix import ReferencePix2Pix
    return {"pix2pix": ReferencePix2Pix, "cyclegan": ReferenceCycleGAN}


class Ours:
    """Our model and the training step the Trainer runs (condgan.step.StepRunner), without data loading."""

    def __init__(self, name: str, size: int, device: torch.device, channels_last: bool, amp: str,
                 setting: Setting | None = None):
        """`setting`: run in exactly this precision and layout (default: the fixed rule for the flags)."""
        cfg = models.config_class(name)(**({"crop_size": size} if name != "cgan" else {}),
                                        channels_last=channels_last, amp=amp)
        kind = models.data_kind(name)
        info = (DataInfo(kind, "bench", 3, size, size, in_channels=3) if kind != "labelled"
                else DataInfo(kind, "bench", 1, 28, 28, num_classes=10))
        # the Trainer's own step, without data loading
        self.runner = StepRunner(cfg, models.build(cfg, info), device, setting)
        self.name, self.cfg, self.model = name, cfg, self.runner.model
        self.keys = {"paired": ("input", "target"), "unpaired": ("A", "B"), "labelled": ("image", "label")}[kind]

    @classmethod
    def probed(cls, name: str, size: int, device: torch.device, a, b, mode: str = "train") -> Ours:
        """Ours in the setting a user's `--amp auto --channels-last` run gets: condgan.probe's measured
        choice on CPU (training: the step on this batch; inference: generator forwards), the rule on GPUs."""
        from .. import probe
        from ..step import probe_timer, train_key
        ours = cls(name, size, device, channels_last=True, amp="auto")
        model, cfg = ours.model, ours.cfg
        if mode == "train":
            batch = ours.batch(a, b)
            key = train_key(name, model, [size, size], a.shape[0])
            setting = probe.decide("auto", True, device, type(model), key, probe_timer(cfg, model, device, batch))
        elif model.task == SAMPLE:  # sampling is not probed (condgan.sample runs the fixed rule)
            return ours
        else:
            setting = probe.for_translation(model, "auto", model.resolve_direction(None), (size, size), a.shape[0])
        ours.runner = StepRunner(cfg, model, device, setting)
        return ours

    def batch(self, a, b):
        if self.keys[1] == "label":
            return {"image": a[:, :1, :28, :28].contiguous(), "label": torch.arange(a.shape[0], device=a.device) % 10}
        layout = self.runner.layout
        return {self.keys[0]: a.contiguous(memory_format=layout), self.keys[1]: b.contiguous(memory_format=layout)}

    def step(self, batch):
        self.runner.train_step(batch)

    def infer(self, batch):
        with torch.inference_mode(), self.runner.autocast():
            if self.keys[1] == "label":
                return self.model.generate(batch["label"])
            return self.model.translate(batch[self.keys[0]])


@torch.no_grad()
def check_same_model(name: str, device: torch.device, size: int) -> float:
    """Copy the reference's weights into ours; max |difference| of one generator forward (eval mode)."""
    from .reference_pix2pix import copy_weights_into
    torch.manual_seed(0)
    ref, ours = _references()[name](), Ours(name, size, device, False, "off")
    if name == "pix2pix":
        copy_weights_into(ours.model.G, ours.model.D, ref.G, ref.D)
        pairs = [(ours.model.G, ref.G)]
    else:  # same parameter order; our PatchGAN's first bias sits in its fused activation
        pairs = [(getattr(ours.model, k), getattr(ref, k)) for k in ("G_A", "G_B", "D_A", "D_B")]
        for mine, theirs in pairs:
            for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
                p.copy_(q)
    g_ours, g_ref = pairs[0]
    x = torch.randn(1, 3, size, size, device=device)
    g_ref.to(device).eval()
    g_ours.eval()
    return (g_ref(x.clone()) - g_ours(x)).abs().max().item()


def reference_on(name: str, device: torch.device):
    ref = _references()[name]()
    for k in ("G", "D", "G_A", "G_B", "D_A", "D_B"):
        if hasattr(ref, k):
            getattr(ref, k).to(device)
    return ref


def step_flops(name: str, size: int, device: torch.device) -> dict[str, float]:
    """FLOPs per image of one training step and of one generator forward (convolutions and matmuls, as
    torch.utils.flop_counter counts them): on the reference where there is one, else on ours (2 images)."""
    from torch.utils.flop_counter import FlopCounterMode

    def count(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()
    n = 1 if name in _references() else 2
    a, b = torch.randn(2, n, 3, max(size, 28), max(size, 28), device=device)
    if name in _references():
        ref = reference_on(name, device)
        g = ref.G if hasattr(ref, "G") else ref.G_A
        train = count(lambda: ref.step(a, b))
        with torch.no_grad():
            return {"train": train, "infer": count(lambda: g.eval()(a))}
    ours = Ours(name, size, device, False, "off")
    batch = ours.batch(a, b)
    return {"train": count(lambda: ours.step(batch)) / n, "infer": count(lambda: ours.infer(batch)) / n}


def timed(fn, n: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def matmul_rate(device: torch.device, dtype=torch.float32, n: int = 2048, reps: int = 3) -> float:
    """FLOP/s of a dense n x n matmul in `dtype`, best of `reps` after one warm-up."""
    x = torch.randn(n, n, device=device, dtype=dtype)
    x @ x
    return 2 * n ** 3 / min(timed(lambda: x @ x, 1, device) for _ in range(reps))


def conv_rate(device: torch.device, dtype=torch.float32, n: int = 2048, reps: int = 3) -> float:
    """FLOP/s of a dense 3x3 convolution in `dtype` (channels-last, batch 8; 256 channels at 64x64 for
    n = 2048, scaled down with n), best of `reps` after one warm-up."""
    c, side = max(16, min(256, n // 8)), max(8, min(64, n // 32))
    x = torch.randn(8, c, side, side, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    conv = lambda: torch.nn.functional.conv2d(x, w, padding=1)  # noqa: E731
    conv()
    return 2 * 8 * c * c * 9 * side * side / min(timed(conv, 1, device) for _ in range(reps))


def variant_dtype(variant: str, device: torch.device) -> str:
    """The dtype a variant's convolutions run in (what its roofline is measured in); for AUTO on the CPU
    the probe's choice is only known afterwards, and bf16's rate is measured too where it may pick it."""
    if variant != AMP and (variant != AUTO or device.type == "cpu"):
        return "fp32"
    return "bf16" if device.type == "cpu" or torch.cuda.is_bf16_supported() else "fp16"


def worker(args) -> None:
    """One implementation, one batch size, one mode: warm up, time, print seconds per call as JSON."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    a = torch.randn(args.worker_batch, 3, args.size, args.size, device=device)
    b = torch.rand(args.worker_batch, 3, args.size, args.size, device=device) * 2 - 1
    if args.worker == "ref":
        ref = reference_on(args.model, device)
        if args.mode == "train":
            fn = lambda: ref.step(a, b)  # noqa: E731
        else:
            g = ref.G if hasattr(ref, "G") else ref.G_A
            g.eval()

            def fn():
                with torch.inference_mode():
                    g(a)
    elif args.worker == "ours-auto":
        ours = Ours.probed(args.model, args.size, device, a, b, args.mode)
        batch = ours.batch(a, b)
    else:
        amp = args.worker == "ours-amp"
        cl = amp and (device.type != "cpu" or models.model_class(args.model).channels_last_on_cpu)
        precision = ("bf16" if device.type == "cpu" else "auto") if amp else "off"
        ours = Ours(args.model, args.size, device, channels_last=cl, amp=precision)
        batch = ours.batch(a, b)
    if args.worker != "ref":
        fn = (lambda: ours.step(batch)) if args.mode == "train" else (lambda: ours.infer(batch))  # noqa: E731
        setting = ours.runner.setting
    else:
        setting = Setting()
    for _ in range(2):
        fn()
    print(json.dumps({"s_per_call": timed(fn, args.steps, device), "setting": setting.name,
                      "dtype": DTYPE_NAMES[setting.dtype]}))


def run_worker(variant: str, mode: str, bs: int, steps: int, args) -> dict:
    """{"s_per_call", "setting" (e.g. "bf16 NCHW"), "dtype"} of one worker process."""
    cmd = [sys.executable, "-m", "condgan.bench", args.model, "--worker", VARIANTS[variant], "--mode", mode,
           "--worker-batch", str(bs), "--steps", str(steps), "--size", str(args.size), "--device", args.device]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CondganError(f"the {variant} {mode} worker failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@command
def main(argv=None):
    p = Parser(prog="condgan.bench", description=__doc__.splitlines()[0])
    p.add_argument("model", choices=["pix2pix", "cyclegan", "cgan"])
    p.add_argument("--batch-sizes", type=int, nargs="+", help="default: 1 on CPU, 1 and 8 on GPUs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=0, help="timed calls per round (default: 3 at batch 1, 1 above; "
                                                         "10x that for inference and on GPUs)")
    p.add_argument("--size", type=int, default=256, help="image size of the translation models")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, ...")
    p.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                   help="default: the reference and condgan (fp32); on CUDA also condgan with AMP, on CPUs with "
                   "bf16 instructions also AMP and auto (the probe's choice)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--matmul-size", type=int, default=2048,
                   help="side of the square matmul timed for the roofline (the convolution scales with it)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="train", help=argparse.SUPPRESS)
    p.add_argument("--worker-batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    if args.worker:
        return worker(args)
    json_out = writable_file(args.json, "--json") if args.json else None
    positive("--rounds", args.rounds, 1000)
    positive("--size", args.size, 4096)
    positive("--matmul-size", args.matmul_size, 16384)
    for bs in args.batch_sizes or []:
        positive("--batch-sizes", bs, 4096)
    if args.steps < 0:
        raise CondganError(f"--steps must be zero (automatic) or positive, got {args.steps}")
    device = pick_device(args.device)
    args.device = str(device)
    if args.model == "cgan":
        args.size = 28  # the digits' size
    gpu = device.type == "cuda"
    has_ref = args.model != "cgan"
    if has_ref and args.size % 256 and args.model == "pix2pix":
        p.error("the unet_256 reference needs --size to be a multiple of 256")
    bf16_cpu = device.type == "cpu" and models.model_class(args.model).bf16_on_cpu and cpu_has_bf16()
    variants = args.variants or ([REFERENCE] if has_ref else []) + ["condgan"] + (
        [AMP] if gpu else [AMP, AUTO] if bf16_cpu else [])
    if not has_ref:
        variants = [v for v in variants if v != REFERENCE]
    batch_sizes = args.batch_sizes or ([1, 8] if gpu else [1])
    print(f"condgan.bench {args.model}: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores visible, {torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if gpu else ""), flush=True)
    if has_ref:
        diff = check_same_model(args.model, device, args.size)
        print(f"same model: max |G_ours - G_reference| = {diff:.2e} on one {args.size}x{args.size} image", flush=True)
        if diff > 1e-3:
            raise CondganError("our model and the reference disagree; the comparison would be unfair")
    flops = step_flops(args.model, args.size, device)
    # the roofline: measured first, before the workers, in every dtype a variant may run in
    dtypes = dict.fromkeys(variant_dtype(v, device) for v in variants)
    if AUTO in variants and device.type == "cpu" and cpu_has_bf16():
        dtypes["bf16"] = None
    matmul, conv = {}, {}
    for dtype in dtypes:
        torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        matmul[dtype] = matmul_rate(device, torch_dtype, args.matmul_size)
        conv[dtype] = conv_rate(device, torch_dtype, args.matmul_size)
    rates = {d: max(matmul[d], conv[d]) for d in dtypes}
    print(f"roofline, best of 3: matmul {args.matmul_size}x{args.matmul_size} / 3x3 convolution: "
          + ", ".join(f"{d} {matmul[d] / 1e9:.0f} / {conv[d] / 1e9:.0f} GFLOP/s" for d in dtypes)
          + "; the faster of the two is the limit", flush=True)
    rows = []
    for mode in args.modes:
        for bs in batch_sizes:
            n = args.steps or (3 if bs == 1 else 1) * (10 if mode == "infer" or gpu else 1)
            runs = {v: [] for v in variants}
            for r in range(args.rounds):
                for v in variants:
                    runs[v].append(run_worker(v, mode, bs, n, args))
                print(f"{mode} batch {bs} round {r + 1}/{args.rounds}: "
                      + ", ".join(f"{v} {bs / t[-1]['s_per_call']:.2f} img/s" for v, t in runs.items()), flush=True)
            base = statistics.median(t["s_per_call"] for t in runs[REFERENCE]) if REFERENCE in runs else None
            for v, rs in runs.items():
                t = statistics.median(x["s_per_call"] for x in rs)
                settings = dict.fromkeys(x["setting"] for x in rs)
                rows.append({"mode": mode, "batch": bs, "implementation": v, "images_per_s": bs / t,
                             "vs_reference": base / t if base else None, "setting": " / ".join(settings),
                             "dtype": rs[-1]["dtype"]})
    print("\n| mode | batch | implementation | setting | images/s | vs reference | GFLOP/s | share of roofline |"
          "\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['vs_reference']:.2f}x" if r["vs_reference"] else "-"
        r["flop_per_s"] = r["images_per_s"] * flops[r["mode"]]
        r["share_of_roofline"] = r["flop_per_s"] / rates[r["dtype"]]
        print(f"| {r['mode']} | {r['batch']} | {r['implementation']} | {r['setting']} | {r['images_per_s']:.2f} | "
              f"{ratio} | {r['flop_per_s'] / 1e9:.1f} | {r['share_of_roofline']:.0%} |")
    where = "the reference" if has_ref else "ours"
    print(f"\none training step: {flops['train'] / 1e9:.2f} GFLOP per image, one generator forward "
          f"{flops['infer'] / 1e9:.2f} (counted on {where}); share = GFLOP/s / the roofline in the "
          "dtype the row's convolutions ran in")
    if args.json:
        with atomic_write(json_out) as f:
            f.write(json.dumps({"model": args.model, "device": str(device), "rows": rows, "step_flops": flops,
                                "matmul_rate": matmul, "conv_rate": conv, "roofline": rates}, indent=2).encode())
    return 0
