"""Arms of the cGAN default job side by side: each arm is `python -m condgan.train` with its flags on the
default data, then `python -m condgan.evaluate`; one Markdown row per arm.

    python benchmarks/bench_cgan_recipe.py [--out benchmarks/results/cgan_recipe] [--parallel 2]
        [--data digits] [--arms default "diffaug=--diffaug translation" ...]

An arm is NAME=FLAGS (FLAGS split on spaces) or a name from ARMS below. With --parallel 2 two arms train at
once, each on one thread (OMP_NUM_THREADS=1), so both see the same machine; their step rates are comparable
with each other, not with a run that had both cores. Everything is written to OUT/<arm>/ and OUT/table.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_default_job import machine  # noqa: E402

ARMS = {
    "default": "",
    "diffaug-translation": "--diffaug translation",
    "diffaug-all": "--diffaug color,translation,cutout",
    "aux-0.3": "--aux-weight 0.3",
}


def parse_arm(text: str) -> tuple[str, list[str]]:
    if "=" in text:
        name, flags = text.split("=", 1)
        return name, shlex.split(flags)
    if text not in ARMS:
        sys.exit(f"bench_cgan_recipe: unknown arm {text!r}; give NAME=FLAGS or one of {', '.join(ARMS)}")
    return text, shlex.split(ARMS[text])


def run_arm(name: str, flags: list[str], out: Path, data: str, threads: int) -> dict:
    run_dir = out / name
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    log = out / f"{name}.log"
    t0 = time.perf_counter()
    with log.open("w") as f:
        cmd = [sys.executable, "-m", "condgan.train", "--data", data, "--out", str(run_dir), "--no-progress",
               *flags]
        code = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
        if code == 0:
            code = subprocess.run([sys.executable, "-m", "condgan.evaluate", str(run_dir), "--json",
                                   str(run_dir / "evaluate.json"), "--no-progress"], env=env, stdout=f,
                                  stderr=subprocess.STDOUT).returncode
    if code != 0:
        return {"arm": name, "flags": flags, "error": f"exit {code}, see {log}"}
    text = log.read_text()
    m = re.search(r"done: (\d+) steps in (\d+) s \(([\d.]+) steps/s\)", text)
    res = json.loads((run_dir / "evaluate.json").read_text())
    return {"arm": name, "flags": flags, "train_wall_s": round(wall, 1), "steps": int(m.group(1)) if m else 0,
            "loop_s": int(m.group(2)) if m else 0, "accuracy": res["conditional_accuracy"],
            "fid": res["fid_classifier"], "floor": res["fid_classifier_real_floor"],
            "ratio": res["fid_classifier"] / res["fid_classifier_real_floor"],
            "worst_class_accuracy": min(res.get("per_class_accuracy", {"-": res["conditional_accuracy"]}).values())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/cgan_recipe")
    p.add_argument("--data", default="digits")
    p.add_argument("--parallel", type=int, default=1, help="arms trained at once (each on 2/N threads)")
    p.add_argument("--arms", nargs="+", default=list(ARMS))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 2) // args.parallel)
    arms = [parse_arm(a) for a in args.arms]
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda a: run_arm(a[0], a[1], out, args.data, threads), arms))
    lines = [f"machine: {machine()}; {args.parallel} arm(s) at a time, {threads} thread(s) each; data {args.data}",
             "", "| arm | flags | steps | training wall time | conditional accuracy | FID (classifier) | floor "
             "| ratio |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arm']} | `{' '.join(r['flags'])}` | failed: {r['error']} |")
            continue
        lines.append(f"| {r['arm']} | `{' '.join(r['flags']) or '(none)'}` | {r['steps']} | "
                     f"{r['train_wall_s'] / 60:.1f} min | {r['accuracy'] * 100:.2f} % | {r['fid']:.3f} | "
                     f"{r['floor']:.3f} | {r['ratio']:.2f}x |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
