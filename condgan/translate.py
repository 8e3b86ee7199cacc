"""Translate images with a trained translation run (pix2pix, CycleGAN).

    python -m condgan.translate RUN_OR_CKPT INPUT --out DIR

INPUT is one image or a folder of images, any size (the generator pads to its
multiple and crops back). Writes DIR/<name>.png per input and DIR/index.html
showing input | output side by side, plus the target when the inputs are
aligned A|B pairs (--aligned) as in the pix2pix datasets. A CycleGAN run
translates either way (--direction AtoB or BtoA). Images with more than
--max-pixels pixels (or all, with --tile N) are translated in overlapping tiles
blended without seams (condgan.tiling), so memory follows the tile size.
"""
from __future__ import annotations

import html
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from . import models, probe, tiling
from .cli import Parser, command, positive, writable_dir
from .data.paired import IMAGE_SUFFIXES, read, to_tensor
from .device import autocast, pick_device
from .errors import CondganError, DataError
from .nets import junyanz

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def list_inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | {".npy"})
        if not files:
            raise DataError(f"no images found in {path}")
        return files
    raise DataError(f"input {path} does not exist")


def load_pair(path: Path, cin: int, cout: int, aligned: bool, swap: bool):
    """(input, target or None) as HxWxC uint8 arrays with the channel counts the model expects."""
    if path.suffix.lower() == ".npy":
        mode = f"npy{cin}"
    elif cin in MODES:
        mode = MODES[cin]
    else:
        raise DataError(f"this model takes {cin}-channel inputs; give them as .npy arrays (H, W, {cin})")
    arr = read(path, mode)
    target = None
    if aligned:
        if arr.shape[1] % 2:
            raise DataError(f"{path} is {arr.shape[1]} pixels wide; an aligned A|B image needs an even width")
        half = arr.shape[1] // 2
        a, b = arr[:, :half], arr[:, half:]
        arr, target = (b, a) if swap else (a, b)
        target = target[:, :, :cout] if target.shape[2] >= cout else np.repeat(target[:, :, :1], cout, 2)
    if arr.shape[2] != cin:
        raise DataError(f"{path} has {arr.shape[2]} channels but the model takes {cin}")
    return arr, target


def save_array(arr: np.ndarray, path: Path) -> Path:
    """HxWxC uint8 -> PNG for 1, 2, 3 or 4 channels, .npy otherwise; written atomically."""
    from PIL import Image
    c = arr.shape[2]
    if c not in MODES:
        path = path.with_suffix(".npy")
        with ckpt_io.atomic_write(path) as f:
            np.save(f, arr)
        return path
    with ckpt_io.atomic_write(path) as f:
        Image.fromarray(arr[:, :, 0] if c == 1 else arr, MODES[c]).save(f, format="png")
    return path


def to_uint8(x: torch.Tensor, inplace: bool = False) -> np.ndarray:
    """CxHxW in [-1, 1] -> HxWxC uint8 (`inplace`: reuse x's memory, for large float images)."""
    if inplace:
        return x.clamp_(-1, 1).add_(1).mul_(127.5).round_().byte().permute(1, 2, 0).cpu().numpy()
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def write_html(out: Path, rows: list[dict], title: str) -> Path:
    has_target = any(r.get("target") for r in rows)
    head = "<th>name</th><th>input</th><th>output</th>" + ("<th>target</th>" if has_target else "")
    body = []
    for r in rows:
        cells = [f"<td>{html.escape(r['name'])}</td>"]
        for key in ("input", "output") + (("target",) if has_target else ()):
            src = r.get(key)
            cells.append(f'<td><img src="{html.escape(src)}" loading="lazy"></td>' if src else "<td></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px}"
            "img{max-width:384px;image-rendering:pixelated}</style>"
            f"<h1>{html.escape(title)}</h1><table><tr>{head}</tr>{''.join(body)}</table>\n")
    path = out / "index.html"
    with ckpt_io.atomic_write(path) as f:
        f.write(page.encode())
    return path


def translate_files(model, files: list[Path], out: Path, batch_size: int = 8, aligned: bool = False,
                    html_page: bool = True, progress: bool = True, title: str = "condgan translations",
                    direction: str | None = None, tile: int | None = None, tile_overlap: int = tiling.DEFAULT_OVERLAP,
                    tile_batch: int = tiling.DEFAULT_BATCH,
                    max_pixels: int = tiling.DEFAULT_MAX_PIXELS) -> list[Path]:
    """Translate `files` into `out`; same-size images are batched, large ones (more than `max_pixels`, or all
    with `tile`) translated in blended tiles. Returns the output paths."""
    direction = model.resolve_direction(direction)
    cin, cout = model.io_channels(direction)
    swap = direction == "BtoA"
    by_size = defaultdict(list)
    loaded, large = {}, []
    for f in files:
        src, tgt = load_pair(f, cin, cout, aligned, swap)
        loaded[f] = (src, tgt)
        h, w = src.shape[:2]
        if tile or (max_pixels and h * w > max_pixels):
            large.append(f)
        else:
            by_size[(h, w)].append(f)
    out.mkdir(parents=True, exist_ok=True)
    rows, outputs = {}, {}

    def finish(f, pixels):
        outputs[f] = save_array(pixels, out / f"{f.stem}.png")
        row = {"name": f.name, "output": outputs[f].name}
        if html_page:
            row["input"] = save_array(loaded[f][0], out / "html" / f"{f.stem}_input.png").relative_to(out)
            if loaded[f][1] is not None:
                row["target"] = save_array(loaded[f][1], out / "html" / f"{f.stem}_target.png").relative_to(out)
        rows[f] = {k: str(v) for k, v in row.items()}

    bar = tqdm(total=len(files) - len(large), unit="img", disable=not progress or not by_size, desc="translate")
    for group in by_size.values():
        for i in range(0, len(group), batch_size):
            chunk = group[i:i + batch_size]
            x = torch.stack([to_tensor(loaded[f][0]) for f in chunk]).to(model.device)
            y = model.translate(x, direction)
            for f, yi in zip(chunk, y):
                finish(f, to_uint8(yi))
            bar.update(len(chunk))
    bar.close()
    multiple = tiling.size_multiple(model.generator_spec(direction).net)
    for f in large:
        src = loaded[f][0]
        size = tile or tiling.DEFAULT_TILE
        total = tiling.tile_count(*src.shape[:2], size, tile_overlap, multiple)
        with tqdm(total=total, unit="tile", disable=not progress, desc=f"{f.name} tiles") as tbar:
            y = tiling.translate_tiled(lambda x: model.translate(x, direction), src, model.device, size,
                                       tile_overlap, multiple, tile_batch, tbar.update)
        finish(f, to_uint8(y, inplace=True))
    if html_page:
        write_html(out, [rows[f] for f in files], title)
    return [outputs[f] for f in files]


def _probe_shape(model, direction, files: list[Path], args) -> tuple[tuple[int, int], int]:
    """The (H, W) and batch size of the generator calls to probe: the first input's, or its tiles'."""
    cin, cout = model.io_channels(direction)
    h, w = load_pair(files[0], cin, cout, args.aligned, direction == "BtoA")[0].shape[:2]
    if args.tile or (args.max_pixels and h * w > args.max_pixels):
        side = args.tile or tiling.DEFAULT_TILE
        return (min(h, side), min(w, side)), args.tile_batch
    return (h, w), min(args.batch_size, len(files))


@command
def main(argv=None):
    p = Parser(prog="condgan.translate", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory or checkpoint file")
    p.add_argument("input", help="an image or a folder of images")
    p.add_argument("--out", default="translated", help="output folder")
    p.add_argument("--best", action="store_true", help="use the run's best-validation checkpoint (best.pt)")
    p.add_argument("--aligned", action="store_true",
                   help="inputs are A|B side-by-side pairs: translate one half, show the other as the target")
    p.add_argument("--direction", choices=["AtoB", "BtoA"],
                   help="CycleGAN: which generator to use (default: the run's --direction)")
    p.add_argument("--batch-size", type=int, default=8, help="images per batch (same-size images are batched)")
    p.add_argument("--tile", type=int, help="translate every image in overlapping tiles of this size, rounded up "
                   "to the generator's multiple (default: only images above --max-pixels, in "
                   f"{tiling.DEFAULT_TILE} px tiles)")
    p.add_argument("--tile-overlap", type=int, default=tiling.DEFAULT_OVERLAP,
                   help=f"pixels neighbouring tiles share and blend (default {tiling.DEFAULT_OVERLAP})")
    p.add_argument("--tile-batch", type=int, default=tiling.DEFAULT_BATCH,
                   help=f"tiles per generator call (default {tiling.DEFAULT_BATCH})")
    p.add_argument("--max-pixels", type=int, default=tiling.DEFAULT_MAX_PIXELS,
                   help=f"tile images with more pixels than this (default {tiling.DEFAULT_MAX_PIXELS}; 0: never)")
    p.add_argument("--no-html", action="store_true", help="skip the index.html page")
    p.add_argument("--reference-test-mode", action="store_true",
                   help="run the generator as the reference implementation's test.py does without --eval: "
                   "train mode (dropout on, batch norm on each image's own statistics), one image at a time, fp32")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16"],
                   help="precision of the generator: auto = measured once per machine on CPU (condgan.probe: bf16 "
                   "only where the CPU has bf16 instructions and the model was validated in bf16, and where it "
                   "measured faster; also the layout), fp32 on GPUs; off = fp32. Exported ONNX stays fp32")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    positive("--batch-size", args.batch_size, 4096)
    positive("--tile-batch", args.tile_batch, 4096)
    if args.tile is not None:
        positive("--tile", args.tile, 1 << 16)
    if args.tile_overlap < 0 or args.max_pixels < 0:
        raise CondganError("--tile-overlap and --max-pixels must be 0 or more")
    out = writable_dir(args.out, "--out")
    run = ckpt_io.resolve_best(args.run) if args.best else Path(args.run)
    device = pick_device(args.device)
    model, cfg, info = models.load(run, device, task=models.TRANSLATE)
    direction = model.resolve_direction(args.direction)
    if args.reference_test_mode:  # whole images one by one: batch statistics are each image's own
        if args.tile:
            raise CondganError("--reference-test-mode translates whole images; drop --tile")
        args.batch_size, args.max_pixels, args.amp = 1, 0, "off"
        junyanz.reference_test_mode(model)
    files = list_inputs(Path(args.input))
    setting = probe.for_translation(model, args.amp, direction, *_probe_shape(model, direction, files, args))
    print(f"device: {device}{setting.text()}", flush=True)
    with autocast(device, setting.dtype):
        translate_files(model, files, out, args.batch_size, args.aligned, not args.no_html, not args.no_progress,
                        title=f"{cfg.model} {direction}: {args.run}", direction=direction, tile=args.tile,
                        tile_overlap=args.tile_overlap, tile_batch=args.tile_batch, max_pixels=args.max_pixels)
    page = "" if args.no_html else f"; side by side: {out / 'index.html'}"
    print(f"translated {len(files)} image(s) into {out}{page}")
    return 0


if __name__ == "__main__":
    main()
