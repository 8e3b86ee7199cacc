"""CUT and FastCUT vs CycleGAN on the same compute, on unpaired data with a known answer.

    python benchmarks/bench_cut_quality.py [--cpu-minutes 10] [--parallel 2] [--datasets maps facades]
        [--models cyclegan cut fastcut cut-plain] [--size 64] [--out bench-runs/cut-quality] [--reuse]
        [--flags --resnet-blocks 6 --g-width 32 --d-width 32]

Two unpaired datasets whose true pairs are known to the scorer but not to training:

- maps: `--data procedural-maps` (aerial views A and maps B of *different* procedural cities), scored A -> B
  on a folder of --pairs held-out cities rendered both ways (L1/PSNR against the true maps).
- facades: the 400 shared real facades pairs (read from ../shared, never the package's data), 1-350 as
  photos (A) and label maps (B) under independently shuffled names, 351-400 as the validation pairs;
  labels -> photo scored by L1/PSNR, photo -> labels by per-pixel label accuracy.

Budget: every run gets the same --cpu-minutes of its own process's CPU time (read from /proc, then SIGINT,
which checkpoints); with --parallel 2 two runs train at once on one thread each, so on an idle 2-core
machine a CPU-minute is a wall-clock minute. CycleGAN learns both directions in one run; CUT learns one,
so on facades it gets one run per direction, each with the same budget as CycleGAN's one run: the compute
a user spends to get the one translation they want. FID/KID are added where the Inception weights are
installed. Each row's command is in RUN/row.json and in OUT/table.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_small_data import ENV, evaluate, facade_files, train_for_cpu, unpaired_folder  # noqa: E402
from bench_facades_metrics import machine  # noqa: E402

DEFAULT_FLAGS = ["--resnet-blocks", "6", "--g-width", "32", "--d-width", "32"]
MODELS = {"cyclegan": ["--model", "cyclegan"], "cut": ["--model", "cut", "--mode", "cut"],
          "fastcut": ["--model", "cut", "--mode", "fastcut"],
          # CUT without the anti-aliased sampling and with transposed-convolution upsampling: CycleGAN's generator layout (as in bench_cut.py)
          "cut-plain": ["--model", "cut", "--mode", "cut", "--no-antialias", "--upsampling", "transpose"]}


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


def jobs(datasets: list[str], models: list[str]) -> list[tuple[str, str, str | None]]:
    """(dataset, model, direction) for every run; direction None: the model's default (CycleGAN: both)."""
    out = []
    for d in datasets:
        for m in models:
            if m != "cyclegan" and d == "facades":
                out += [(d, m, "BtoA"), (d, m, "AtoB")]  # labels -> photo, photo -> labels
            else:
                out.append((d, m, None))
    return out


def run_one(job, args, out: Path, data: dict) -> dict:
    dataset, model, direction = job
    name = f"{dataset}-{model}" + (f"-{direction}" if direction else "")
    run = out / name
    budget = args.cpu_minutes * 60
    if args.reuse and (run / "row.json").is_file():
        row = json.loads((run / "row.json").read_text())
        if row.get("budget_s") == budget:
            return row
    size = args.size
    cmd = [sys.executable, "-m", "condgan.train", *MODELS[model], "--data", str(data[dataset]), "--epochs", "100000",
           "--ckpt-every", "200", "--no-progress", "--workers", "0", "--load-size", str(size + size // 8),
           "--crop-size", str(size), *(["--direction", direction] if direction else []), *args.flags,
           "--out", str(run)]
    used, wall = train_for_cpu(cmd, out / f"{name}.log", budget)
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
    extra = ["--data", str(data["maps-pairs"]), "--split", "test"] if dataset == "maps" else []
    res = evaluate(run, *extra)
    row = {"dataset": dataset, "model": model, "direction": direction, "run": str(run), "steps": step,
           "cpu_s": round(used), "wall_s": round(wall), "budget_s": budget,
           "command": shlex.join(["python", "-m", "condgan.train", *cmd[3:]]), **res}
    (run / "row.json").write_text(json.dumps(row, indent=2) + "\n")
    print(f"{name}: {step} steps in {used:.0f} CPU s", flush=True)
    return row


def grid(rows: list[dict], out: Path, size: int) -> Path | None:
    """Four validation facades, labels -> photo: the label maps, each model's photos, the true photos."""
    import torchvision
    from condgan import models

    runs = [r for r in rows if r["dataset"] == "facades" and r["direction"] in (None, "BtoA")]
    if not runs:
        return None
    val = out / "facades-unpaired"
    names = sorted(p.name for p in (val / "valB").iterdir())[:4]

    def load(folder):
        return torch.stack([torch.from_numpy(np.asarray(Image.open(val / folder / n).convert("RGB")
                                                        .resize((size, size), Image.BICUBIC))).permute(2, 0, 1)
                            for n in names]).float() / 127.5 - 1

    labels, photos = load("valB"), load("valA")
    tiles, captions = [labels], ["label maps (input)"]
    for r in runs:
        model, _, _ = models.load(Path(r["run"]))
        with torch.no_grad():
            tiles.append(model.translate(labels, "BtoA").float())
        captions.append(r["model"])
    tiles.append(photos)
    captions.append("true photos")
    path = out / "cut_quality_grid.png"
    torchvision.utils.save_image(torch.cat(tiles).clamp(-1, 1) * 0.5 + 0.5, path, nrow=4, padding=2)
    (out / "cut_quality_grid.txt").write_text("rows, top to bottom: " + "; ".join(captions) + "\n")
    return path


def table(rows: list[dict]) -> str:
    def f(r, key, fmt, scale=1.0):
        v = r.get(key) if r else None
        return format(v * scale, fmt) if v is not None else "-"

    lines = []
    maps = [r for r in rows if r["dataset"] == "maps"]
    if maps:
        lines += ["| maps (aerial -> map) | steps | L1 | PSNR dB | FID | checkerboard |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['steps']} | {f(r, 'l1_a_to_b', '.4f')} | {f(r, 'psnr_a_to_b', '.2f')} | "
                  f"{f(r, 'fid_a_to_b', '.1f')} | {f(r, 'checkerboard_ratio_a_to_b', '.2f')} |" for r in maps]
    fac = [r for r in rows if r["dataset"] == "facades"]
    if fac:
        lines += ["", "| facades, shuffled | steps (labels -> photo run, photo -> labels run) | labels -> photo L1 | "
                  "PSNR dB | FID | photo -> labels label accuracy | L1 |", "|---|---|---|---|---|---|---|"]
        for m in dict.fromkeys(r["model"] for r in fac):
            mine = [r for r in fac if r["model"] == m]
            b2a = next((r for r in mine if r["direction"] in (None, "BtoA")), None)
            a2b = next((r for r in mine if r["direction"] in (None, "AtoB")), None)
            steps = " + ".join(dict.fromkeys(str(r["steps"]) for r in (b2a, a2b) if r))
            lines.append(f"| {m} | {steps} | {f(b2a, 'l1_b_to_a', '.4f')} | {f(b2a, 'psnr_b_to_a', '.2f')} | "
                         f"{f(b2a, 'fid_b_to_a', '.1f')} | {f(a2b, 'label_accuracy_a_to_b', '.2f', 100)} % | "
                         f"{f(a2b, 'l1_a_to_b', '.4f')} |")
    return "\n".join(lines).strip("\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-minutes", type=float, default=10.0, help="CPU budget per run (all its threads)")
    p.add_argument("--parallel", type=int, default=2, help="runs trained at once, one thread each when 2")
    p.add_argument("--datasets", nargs="+", default=["maps", "facades"], choices=["maps", "facades"])
    p.add_argument("--models", nargs="+", default=["cyclegan", "cut", "fastcut"], choices=list(MODELS))
    p.add_argument("--size", type=int, default=64, help="training and evaluation image size")
    p.add_argument("--pairs", type=int, default=100, help="held-out procedural cities scored against true maps")
    p.add_argument("--facades", default=str(ROOT.parent / "shared" / "data" / "facades" / "train"))
    p.add_argument("--out", default="bench-runs/cut-quality")
    p.add_argument("--reuse", action="store_true", help="keep finished runs of the same budget (RUN/row.json)")
    p.add_argument("--flags", nargs=argparse.REMAINDER, default=DEFAULT_FLAGS,
                   help="training flags shared by every run (last on the line)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"maps": "procedural-maps"}
    if "maps" in args.datasets:
        data["maps-pairs"] = write_pairs(out / "maps-pairs", args.pairs)
    if "facades" in args.datasets:
        data["facades"] = unpaired_folder(facade_files(Path(args.facades)), out)
    ENV["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // args.parallel))
    todo = jobs(args.datasets, args.models)
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda j: run_one(j, args, out, data), todo))
    (out / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")
    text = (f"machine: {machine()}; {args.cpu_minutes:g} CPU-minutes per run at {args.size}x{args.size}, "
            f"{args.parallel} run(s) at a time on {ENV['OMP_NUM_THREADS']} thread(s) each; shared flags "
            f"`{' '.join(args.flags)}`\n\n" + table(rows) + "\n\ncommands:\n"
            + "\n".join(f"- {Path(r['run']).name}: `{r['command']}`" for r in rows))
    if "facades" in args.datasets:
        text += f"\n\ngrid (labels -> photo on four validation facades): {grid(rows, out, args.size)}"
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
