"""condgan-run: generate, translate and inspect with exported condgan generators (onnxruntime, no PyTorch)."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, images, tiling
from .errors import CondganRuntimeError, UsageError
from .model import Generator, Translator, load

PROG = "condgan-run"


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line on stderr, exit 2) instead of printing the usage block."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return n


def _open(args, want: type) -> Generator | Translator:
    model = load(args.model, args.provider, args.threads)
    if not isinstance(model, want):
        other = "translate" if want is Generator else "generate"
        raise UsageError(f"{args.model} is a {model.kind} model ({model.model_name}), so use "
                         f"{PROG} {other}, not {args.command}")
    return model


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "class"


def cmd_generate(args) -> int:
    g = _open(args, Generator)
    if args.label.strip().lower() == "all":
        wanted = list(range(g.num_classes))
    else:
        wanted = [g.label_index(v) for v in args.label.split(",") if v.strip()]
        if not wanted:
            raise UsageError("--label is empty; give a class index, a class name, a comma-separated list or 'all'")
    labels = [i for i in wanted for _ in range(args.n)]
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    t0 = time.perf_counter()
    pixels = g.generate(labels, seed=seed, batch_size=args.batch_size)
    seconds = time.perf_counter() - t0
    nrow = args.nrow or (args.n if len(wanted) > 1 else min(args.n, 8))
    out = images.save(images.grid(pixels, nrow), images.output_path(Path(args.out), g.channels))
    if args.label.strip().lower() == "all" and len(wanted) > 1:
        which = f"all {len(wanted)} classes"
    else:
        names = [f"{i} ({g.class_name(i)})" if g.class_name(i) != str(i) else str(i) for i in wanted]
        which = f"class{'es' * (len(wanted) > 1)} {', '.join(names)}"
    per_row = max(1, min(nrow, len(labels)))
    rows = -(-len(labels) // per_row)
    print(f"wrote {out}: {len(labels)} sample{'s' * (len(labels) > 1)} of {which} ({g.width}x{g.height} each, "
          f"{per_row} per row, {rows} row{'s' * (rows > 1)}), seed {seed}, {seconds:.2f} s")
    if args.each:
        folder = Path(args.each)
        for k, (label, im) in enumerate(zip(labels, pixels)):
            images.save(im, images.output_path(folder / f"{k:04d}_{_safe(g.class_name(label))}.png", g.channels))
        print(f"wrote {len(labels)} single samples to {folder}")
    return 0


def _targets(args, t: Translator) -> list[tuple[Path, Path]]:
    src, out = Path(args.input), Path(args.out)
    if not src.exists():
        raise CondganRuntimeError(f"input {src} does not exist")
    if src.is_dir():
        files, skipped = images.list_inputs(src)
        if not files:
            raise CondganRuntimeError(f"no images (.png, .jpg, ... or .npy) in folder {src}")
        if skipped:
            print(f"skipping {len(skipped)} file(s) that are not images: "
                  + ", ".join(p.name for p in skipped[:5]) + (", ..." if len(skipped) > 5 else ""))
    else:
        files = [src]
    if not src.is_dir() and out.suffix.lower() in images.INPUT_EXTS:
        pairs = [(src, images.output_path(out, t.channels))]  # one file in, --out names the file to write
    else:
        pairs = [(f, images.output_path(out / f"{f.stem}.png", t.channels)) for f in files]
    seen: dict[Path, Path] = {}
    for f, o in pairs:
        if o in seen:
            raise CondganRuntimeError(f"{seen[o].name} and {f.name} would both be written to {o}; rename one")
        if o.exists() and o.resolve() == f.resolve():
            raise CondganRuntimeError(f"refusing to overwrite the input {f}; choose another --out")
        seen[o] = f
    return pairs


def cmd_translate(args) -> int:
    t = _open(args, Translator)
    pairs = _targets(args, t)
    sizes = {f: images.probe(f, t.in_channels) for f, _ in pairs}  # names an unreadable file before any output
    order = sorted(pairs, key=lambda p: sizes[p[0]])  # stable: same-size inputs next to each other, in name order
    large = [p for p in order if tiling.needs_tiling(*sizes[p[0]], args.tile, args.max_pixels)]
    tiled = set(large)
    order = [p for p in order if p not in tiled]
    t0, batches, k = time.perf_counter(), 0, 0
    for f, o in large:
        tile = args.tile or tiling.DEFAULT_TILE
        r = t.translate_tiled(images.read(f, t.in_channels), tile, args.tile_overlap, args.tile_batch,
                              None if args.quiet else _tile_progress(f))
        batches += 1
        images.save(r, o)
        if not args.quiet:
            print(f"{f} -> {o} ({r.shape[1]}x{r.shape[0]}, {tiling.round_tile(tile, t.tile_multiple)} px tiles, "
                  f"overlap {args.tile_overlap})")
    while k < len(order):
        group = [order[k]]
        while (k + len(group) < len(order) and len(group) < args.batch_size
               and sizes[order[k + len(group)][0]] == sizes[order[k][0]]):
            group.append(order[k + len(group)])
        k += len(group)
        pixels = [images.read(f, t.in_channels) for f, _ in group]
        if len({p.shape for p in pixels}) > 1:  # a header that lied about the size: run one at a time
            results = [t.translate(p) for p in pixels]
        else:
            results = list(t.translate(np.stack(pixels), batch_size=args.batch_size))
        batches += 1
        for (f, o), r in zip(group, results):
            images.save(r, o)
            if not args.quiet:
                print(f"{f} -> {o} ({r.shape[1]}x{r.shape[0]})")
    print(f"translated {len(order) + len(large)} image(s) in {batches} batch(es) with {t.model_name} ({t.direction}, "
          f"{t.in_channels} -> {t.channels} channels) in {time.perf_counter() - t0:.2f} s")
    return 0


def _tile_progress(f: Path):
    def show(done: int, total: int) -> None:
        print(f"\r{f.name}: tile {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
    return show


def _nonnegative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def cmd_info(args) -> int:
    m = load(args.model, args.provider, args.threads)
    if args.json:
        print(json.dumps(m.metadata, indent=2, sort_keys=True))
        return 0
    md = m.metadata
    fmt = md.get("Image.BitmapPixelFormat", f"{m.channels} channels, saved as .npy")
    rows = [("file", f"{m.path} ({m.path.stat().st_size / 2**20:.2f} MiB)"),
            ("model", f"{m.model_name} {m.kind} generator, {m.precision}, "
                      f"condgan {md.get('condgan.version', '?')}"),
            ("output", f"{m.channels} x {m.height} x {m.width} ({fmt}), values in "
                       f"[{md.get('condgan.value_range', '-1,1').replace(',', ', ')}]")]
    if isinstance(m, Generator):
        rows += [("latent_dim", str(m.latent_dim)), ("classes", f"{m.num_classes}: {m.describe_classes()}"),
                 ("label dtype", str(m.label_dtype))]
    else:
        rows += [("input", f"{m.in_channels} channels, any height and width"), ("direction", m.direction),
                 ("dropout", md.get("condgan.dropout_at_inference", "false"))]

    def sig(xs):
        return "; ".join(f"{x.name} {x.type.replace('tensor(', '').rstrip(')')} {x.shape}" for x in xs)
    rows += [("inputs", sig(m.session.get_inputs())), ("outputs", sig(m.session.get_outputs())),
             ("config", md.get("condgan.config_digest", "?")[:16]), ("providers", ", ".join(m.providers))]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    other = sorted(k for k in md if not k.startswith(("condgan.", "Image.")))
    if other:
        print(f"{'other':<{width}}  " + ", ".join(f"{k}={md[k]}" for k in other))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--provider", help="onnxruntime execution provider, e.g. CUDAExecutionProvider or cuda "
                                           "(default: CPUExecutionProvider)")
    common.add_argument("--threads", type=int, default=None, help="intra-op threads (default: onnxruntime's)")
    sub = p.add_subparsers(dest="command", metavar="{generate,translate,info}", parser_class=_Parser)
    sub.required = True
    g = sub.add_parser("generate", parents=[common], help="sample a class-conditional generator into a grid PNG")
    g.add_argument("model", help="exported conditional model (.onnx)")
    g.add_argument("--label", default="all", help="class index, class name, comma-separated list, or 'all' "
                                                  "(one row per class; default)")
    g.add_argument("--n", type=_positive, default=8, help="samples per label (default 8)")
    g.add_argument("--seed", type=int, help="noise seed (default: random, printed)")
    g.add_argument("--nrow", type=_positive, help="images per grid row (default: --n for several labels, "
                                                  "else up to 8)")
    g.add_argument("--out", default="grid.png", help="grid image to write (default grid.png)")
    g.add_argument("--each", metavar="DIR", help="also write every sample to DIR/<index>_<class>.png")
    g.add_argument("--batch-size", type=_positive, default=64, help="samples per onnxruntime call (default 64)")
    g.set_defaults(func=cmd_generate)
    t = sub.add_parser("translate", parents=[common], help="translate an image or a folder of images")
    t.add_argument("model", help="exported translation model (.onnx)")
    t.add_argument("input", help="image, .npy array (H x W x C uint8) or folder of them")
    t.add_argument("--out", required=True, help="output folder (or file name, for one input image)")
    t.add_argument("--batch-size", type=_positive, default=8, help="same-size images per call (default 8)")
    t.add_argument("--tile", type=_positive, help="translate in overlapping tiles of this size (rounded up to the "
                                                  "model's size multiple); default: only images above --max-pixels, "
                                                  f"in {tiling.DEFAULT_TILE} px tiles")
    t.add_argument("--tile-overlap", type=_nonnegative, default=tiling.DEFAULT_OVERLAP,
                   help=f"pixels neighbouring tiles share, blended (default {tiling.DEFAULT_OVERLAP})")
    t.add_argument("--tile-batch", type=_positive, default=tiling.DEFAULT_BATCH,
                   help=f"tiles per onnxruntime call (default {tiling.DEFAULT_BATCH})")
    t.add_argument("--max-pixels", type=_nonnegative, default=tiling.DEFAULT_MAX_PIXELS,
                   help=f"tile images with more pixels than this (default {tiling.DEFAULT_MAX_PIXELS}; 0: never)")
    t.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    t.set_defaults(func=cmd_translate)
    i = sub.add_parser("info", parents=[common], help="show an exported model's metadata")
    i.add_argument("model", help="exported model (.onnx)")
    i.add_argument("--json", action="store_true", help="print the raw metadata as JSON")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        return args.func(args)
    except CondganRuntimeError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # quiet the exit-time flush
        return 1
    except MemoryError:
        print(f"{PROG}: error: out of memory; use a smaller --batch-size or smaller images", file=sys.stderr)
        return 1
    except OSError as e:  # the environment (disk, permissions), not a bug
        where = f" ({e.filename})" if e.filename else ""
        print(f"{PROG}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: still one line, with the traceback on request
        if "Failed to allocate memory" in str(e) or "bad_alloc" in str(e):  # onnxruntime's out of memory
            print(f"{PROG}: error: onnxruntime ran out of memory; use a smaller --batch-size or smaller images",
                  file=sys.stderr)
            return 1
        if os.environ.get("CONDGAN_RUNTIME_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(e).__name__}: {e} (set CONDGAN_RUNTIME_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
