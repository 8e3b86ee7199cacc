"""Small-data arms on the real facades at a fixed CPU budget: pix2pix (labels -> photo) at two data sizes and
CycleGAN on the same photos with the pairs shuffled apart, each arm scored by `condgan.evaluate` on a held-out
validation split, plus one PNG grid of the same validation inputs across arms.

    python benchmarks/bench_small_data.py [--facades ../shared/data/facades/train] [--cpu-minutes 5]
        [--size 128] [--sizes 100 350] [--models pix2pix cyclegan] [--arms reference diffaug resize both preset]
        [--out bench-runs/small-data]

Reads the 400 real training pairs from ../shared (never the package's data). Images 351-400 by number are
the validation split; training uses the first 100 or all 350 of 1-350. CycleGAN gets the 350 photos and the
350 label maps under shuffled names (no pair is known to training) and is scored against the true pairs of
the validation split (L1/PSNR labels -> photo, label accuracy photo -> labels).

The budget is CPU time, not wall time: each run is stopped (SIGINT, which checkpoints) once its process has
used --cpu-minutes of CPU, read from /proc/PID/stat, so arms get the same compute even when other work
shares the machine. Every row names its command.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_facades_metrics import machine  # noqa: E402

ARMS = {
    "reference": [],
    "diffaug": ["--diffaug", "color,translation,cutout"],
    "resize": ["--upsampling", "nearest"],
    "both": ["--diffaug", "color,translation,cutout", "--upsampling", "nearest"],
    "preset": ["--preset", "small-data"],
}
TICKS = os.sysconf("SC_CLK_TCK")
# the settings every arm runs in, fixed so no arm spends its budget on condgan's first-use speed probe
ENV = dict(os.environ, PYTHONPATH=str(ROOT), CONDGAN_PROBE="0")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime of every thread


def train_for_cpu(cmd: list[str], log: Path, budget_s: float, env: dict | None = None) -> tuple[float, float]:
    """Run a `condgan.train` command until its process has used budget_s CPU seconds, then SIGINT it (the
    Trainer checkpoints at the next batch and exits 130). Returns (CPU seconds used, wall seconds)."""
    t0 = time.time()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env or ENV)
        used = 0.0
        while proc.poll() is None:
            try:
                used = cpu_seconds(proc.pid)
            except OSError:
                break
            if used >= budget_s:
                proc.send_signal(signal.SIGINT)
                proc.wait()
                break
            time.sleep(1.0)
    if proc.returncode not in (0, 130):
        raise SystemExit(f"{shlex.join(cmd)} failed ({proc.returncode}); see {log}")
    return used, time.time() - t0


def evaluate(run: Path, *extra: str) -> dict:
    """`condgan.evaluate RUN [extra]`, its JSON report as a dict (written to RUN/eval.json)."""
    ev = subprocess.run([sys.executable, "-m", "condgan.evaluate", str(run), *extra, "--json", str(run / "eval.json"),
                         "--no-progress"], capture_output=True, text=True, env=ENV)
    if ev.returncode:
        raise SystemExit(f"evaluate {run} failed: {ev.stderr[-800:]}")
    return json.loads((run / "eval.json").read_text())


def facade_files(facades: Path) -> list[Path]:
    files = sorted(facades.glob("*.jpg"), key=lambda p: int(p.stem))
    if len(files) != 400:
        raise SystemExit(f"expected the 400 facades training pairs in {facades}, found {len(files)}")
    return files


def paired_folder(files: list[Path], n_train: int, out: Path) -> Path:
    data = out / f"facades-{n_train}"
    for name, part in (("train", files[:n_train]), ("val", files[350:])):
        (data / name).mkdir(parents=True, exist_ok=True)
        for f in part:
            if not (data / name / f.name).exists():
                os.symlink(f.resolve(), data / name / f.name)
    return data


def unpaired_folder(files: list[Path], out: Path) -> Path:
    """trainA (photos) and trainB (label maps) of 1-350 under independent shuffled names; valA/valB of
    351-400 under matching names, so evaluation knows the true pairs and training knows none."""
    data = out / "facades-unpaired"
    if (data / "valB").is_dir():
        return data
    rng = random.Random(0)
    for side, half in (("A", 0), ("B", 1)):
        order = list(range(350))
        rng.shuffle(order)
        for split, part, names in (("train", files[:350], order), ("val", files[350:], range(50))):
            folder = data / f"{split}{side}"
            folder.mkdir(parents=True, exist_ok=True)
            for f, k in zip(part, names):
                img = Image.open(f).convert("RGB")
                w = img.width // 2
                img.crop((half * w, 0, half * w + w, img.height)).save(folder / f"{k:03d}.png")
    return data


def train_flags(model: str, size: int) -> list[str]:
    common = ["--epochs", "100000", "--ckpt-every", "100", "--no-progress", "--workers", "0",
              "--load-size", str(size + size // 8), "--crop-size", str(size)]
    if model == "pix2pix":
        depth = {256: "unet_256", 128: "unet_128"}.get(size, "unet_128")
        return ["--model", "pix2pix", "--direction", "BtoA", "--generator", depth, "--val-images", "50",
                *common]
    return ["--model", "cyclegan", "--generator", "resnet_6blocks", *common]


def run_arm(model: str, data: Path, arm: str, size: int, budget_s: float, out: Path, reuse: bool = False) -> dict:
    run = out / f"{model}-{data.name}-{arm}"
    if reuse and (run / "row.json").is_file():
        row = json.loads((run / "row.json").read_text())
        if row.get("budget_s") == budget_s:
            return row
    shutil.rmtree(run, ignore_errors=True)
    cmd = [sys.executable, "-m", "condgan.train", *train_flags(model, size), "--data", str(data), *ARMS[arm],
           "--out", str(run)]
    used, wall = train_for_cpu(cmd, out / f"{run.name}.log", budget_s)
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
    res = evaluate(run)
    row = {"model": model, "data": data.name, "arm": arm, "run": str(run), "steps": step, "cpu_s": round(used),
           "wall_s": round(wall), "budget_s": budget_s,
           "command": shlex.join(["python", "-m", "condgan.train", *cmd[3:]]), **res}
    (run / "row.json").write_text(json.dumps(row, indent=2) + "\n")
    print(table([row]).splitlines()[-1], flush=True)
    return row


def grid(rows: list[dict], out: Path, size: int) -> Path:
    """The first four validation pairs (labels -> photo): labels, true photos, then one row per pix2pix arm."""
    import numpy as np
    import torchvision
    from condgan import models

    val = sorted((out / "facades-350" / "val").glob("*.jpg"), key=lambda p: int(p.stem))[:4]
    pairs = [Image.open(p).convert("RGB") for p in val]
    w = pairs[0].width // 2

    def tensor(img):
        return torch.from_numpy(np.asarray(img.resize((size, size)))).permute(2, 0, 1).float() / 127.5 - 1

    labels = torch.stack([tensor(p.crop((w, 0, 2 * w, p.height))) for p in pairs])
    photos = torch.stack([tensor(p.crop((0, 0, w, p.height))) for p in pairs])
    tiles, names = [labels, photos], ["labels (input)", "photos (target)"]
    for r in rows:
        if r["model"] == "pix2pix":
            model, _, _ = models.load(Path(r["run"]))
            tiles.append(model.translate(labels))
            names.append(f"{r['data']} {r['arm']}")
    path = out / "small_data_grid.png"
    torchvision.utils.save_image(torch.cat(tiles) * 0.5 + 0.5, path, nrow=4, padding=2)
    (out / "small_data_grid.txt").write_text("rows, top to bottom: " + "; ".join(names) + "\n")
    return path


def table(rows: list[dict]) -> str:
    def f(r, key, fmt):
        return format(r[key], fmt) if r.get(key) is not None else "-"
    lines = []
    paired = [r for r in rows if r["model"] == "pix2pix"]
    if paired:
        lines += ["| model | data | arm | steps (CPU s) | L1 | PSNR dB | SSIM | FID | KID | checkerboard ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['data']} | {r['arm']} | {r['steps']} ({r['cpu_s']}) | {f(r, 'l1', '.4f')} | "
                  f"{f(r, 'psnr', '.2f')} | {f(r, 'ssim', '.4f')} | {f(r, 'fid', '.1f')} | {f(r, 'kid', '.4f')} | "
                  f"{f(r, 'checkerboard_ratio', '.2f')} |" for r in paired]
    unpaired = [r for r in rows if r["model"] != "pix2pix"]
    if unpaired:  # A = photos, B = label maps; scored against the validation split's true pairs
        lines += ["" if paired else None, "| model | data | arm | steps (CPU s) | labels -> photo L1 | PSNR dB "
                  "| checkerboard | photo -> labels L1 | PSNR dB | checkerboard | cycle L1 A, B |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['data']} | {r['arm']} | {r['steps']} ({r['cpu_s']}) | "
                  f"{f(r, 'l1_b_to_a', '.4f')} | {f(r, 'psnr_b_to_a', '.2f')} | {f(r, 'checkerboard_ratio_b_to_a', '.2f')} | "
                  f"{f(r, 'l1_a_to_b', '.4f')} | {f(r, 'psnr_a_to_b', '.2f')} | {f(r, 'checkerboard_ratio_a_to_b', '.2f')} | "
                  f"{f(r, 'cycle_l1_a', '.3f')}, {f(r, 'cycle_l1_b', '.3f')} |" for r in unpaired]
    return "\n".join(x for x in lines if x is not None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--facades", default=str(ROOT.parent / "shared" / "data" / "facades" / "train"))
    p.add_argument("--cpu-minutes", type=float, default=5.0, help="CPU budget per run (all threads)")
    p.add_argument("--size", type=int, default=128, help="training and evaluation image size")
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 350], help="pix2pix training pairs")
    p.add_argument("--models", nargs="+", default=["pix2pix", "cyclegan"], choices=["pix2pix", "cyclegan"])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--out", default="bench-runs/small-data")
    p.add_argument("--parallel", type=int, default=1, help="arms trained at once")
    p.add_argument("--reuse", action="store_true", help="keep finished runs of the same budget (RUN/row.json)")
    p.add_argument("--runs", nargs="+", default=[], metavar="MODEL:DATA:ARM",
                   help="only these runs, in this order (e.g. pix2pix:100:preset cyclegan:350:reference)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = facade_files(Path(args.facades))
    jobs = [("pix2pix", paired_folder(files, n, out)) for n in args.sizes if "pix2pix" in args.models]
    if "cyclegan" in args.models:
        jobs.append(("cyclegan", unpaired_folder(files, out)))
    # with --parallel N, N arms train at once on 2/N threads each: one thread per run wastes no CPU time on
    # waiting at thread barriers when other work shares the machine
    ENV["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // args.parallel))
    runs = [(model, data, arm) for model, data in jobs for arm in args.arms]
    if args.runs:
        by_name = {f"{m}:{d.name.split('-')[-1]}:{a}": (m, d, a) for m, d, a in runs}
        by_name.update({f"cyclegan:350:{a}": r for (m, _, a), r in zip(runs, runs) if m == "cyclegan"})
        unknown = [r for r in args.runs if r not in by_name]
        if unknown:
            raise SystemExit(f"unknown runs {unknown}; known: {', '.join(by_name)}")
        runs = [by_name[r] for r in args.runs]
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda j: run_arm(*j, args.size, args.cpu_minutes * 60, out, args.reuse), runs))
    (out / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")
    text = (f"machine: {machine()}; {args.cpu_minutes:g} CPU-minutes per run at {args.size}x{args.size}, "
            f"{args.parallel} run(s) at a time on {ENV['OMP_NUM_THREADS']} thread(s) each\n\n"
            + table(rows) + "\n\ncommands:\n" + "\n".join(f"- {r['data']} {r['arm']}: `{r['command']}`" for r in rows))
    if any(r["model"] == "pix2pix" for r in rows):
        text += f"\n\ngrid: {grid(rows, out, args.size)}"
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
