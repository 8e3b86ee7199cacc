"""CUT and FastCUT vs CycleGAN at equal wall-clock: train each for the same minutes, score against true pairs.

    PYTHONPATH=. python benchmarks/bench_cut_quality.py --minutes 30 --out /tmp/cut_quality \
        [--models cyclegan cut fastcut] [--flags --crop-size 64 --load-size 72 --resnet-blocks 6 --g-width 32 --d-width 32]

Each model trains on `--data procedural-maps` (aerial views A and maps B of *different* cities: no pairs)
with its own preset plus the shared --flags, one after the other, for --minutes of wall-clock each from
its launch (`--epochs` is large; the run is stopped with SIGINT, which saves its checkpoint). Then `condgan.evaluate`
scores the A->B translations of held-out cities against their true maps: a folder of --pairs procedural
cities rendered both ways, written once, whose testA/ and testB/ files share names (L1 and PSNR against the
truth; FID/KID too where the Inception weights are installed). The table gives steps done, L1, PSNR and
the FID where there is one. Long: the lead runs it; tests only run it for seconds.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_FLAGS = ["--crop-size", "64", "--load-size", "72", "--resnet-blocks", "6", "--g-width", "32",
                 "--d-width", "32"]
PRESETS = {"cyclegan": ["--model", "cyclegan"], "cut": ["--model", "cut", "--mode", "cut"],
           "fastcut": ["--model", "cut", "--mode", "fastcut"]}


def write_pairs(root: Path, n: int, size: int = 256) -> Path:
    """testA/ (aerial) and testB/ (map) of the same n held-out cities, files named alike."""
    from condgan.data.procedural_maps import ProceduralMaps
    if (root / "testB" / f"{n - 1:05d}.png").exists():
        return root
    maps = ProceduralMaps(n, size, 99)  # a base seed no training split uses
    for side in "AB":
        (root / f"test{side}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        item = maps[i]
        for side in "AB":
            Image.fromarray(np.asarray(item[side])).save(root / f"test{side}" / f"{item['name']}.png")
    return root


def train_for(model: str, run: Path, seconds: float, flags: list[str]) -> dict:
    cmd = [sys.executable, "-m", "condgan.train", *PRESETS[model], "--data", "procedural-maps", "--epochs", "100000",
           "--no-progress", "--out", str(run), *flags]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # the Trainer saves last.pt and exits
        proc.wait(timeout=600)
    log = proc.stdout.read()
    metrics = run / "metrics.jsonl"
    if not metrics.exists() or not (run / "checkpoints" / "last.pt").exists():
        raise SystemExit(f"{model} wrote no checkpoint in {seconds:.0f} s (give it more --minutes):\n{log[-2000:]}")
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line]
    return {"seconds": time.time() - t0, "steps": max(steps, default=0), "log_tail": log[-400:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--out", default="/tmp/cut_quality")
    p.add_argument("--models", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--pairs", type=int, default=100, help="held-out cities scored against their true maps")
    p.add_argument("--flags", nargs=argparse.REMAINDER, default=DEFAULT_FLAGS,
                   help="training flags shared by every model (last on the line)")
    args = p.parse_args()
    out = Path(args.out)
    pairs = write_pairs(out / "pairs", args.pairs)
    rows = {}
    for m in args.models:
        run = out / m
        info = train_for(m, run, args.minutes * 60, args.flags)
        subprocess.run([sys.executable, "-m", "condgan.evaluate", str(run), "--data", str(pairs), "--split", "test",
                        "--json", str(run / "eval_pairs.json"), "--no-progress"], check=True)
        res = json.loads((run / "eval_pairs.json").read_text())
        rows[m] = {**info, "l1": res.get("l1_a_to_b"), "psnr": res.get("psnr_a_to_b"), "fid": res.get("fid_a_to_b")}
        print(f"{m}: {info['steps']} steps in {info['seconds']:.0f} s, L1 {rows[m]['l1']}, PSNR {rows[m]['psnr']}",
              flush=True)
    print(f"\n{args.minutes:g} min of training each, flags {' '.join(args.flags)}; A->B against {args.pairs} true maps")
    print("| model | steps | L1 | PSNR dB | FID |\n|---|---|---|---|---|")
    for m, r in rows.items():
        fid = f"{r['fid']:.2f}" if r["fid"] is not None else "n/a"
        print(f"| {m} | {r['steps']} | {r['l1']:.4f} | {r['psnr']:.2f} | {fid} |")
    (out / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
