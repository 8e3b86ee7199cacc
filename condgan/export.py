"""Export a trained generator to ONNX, check it in onnxruntime, and describe it in the model's metadata.

    python -m condgan.export RUN_OR_CKPT --out model.onnx [--precision fp32|fp16|int8] [--opset 18]

The exported graph is the generator alone (the EMA generator when the run has
one), in inference mode, traced through the reference op path so it holds
standard ONNX operators only. Inputs and outputs are float32 in [-1, 1]:

- class-conditional (cgan): `z` [N, latent_dim] and `label` [N] (int64, or
  int32 with --label-dtype int32) -> `image` [N, C, H, W];
- translation (pix2pix, CycleGAN): `image` [N, C_in, H, W] with any N, H and W
  -> `translated` [N, C_out, H, W]; the graph pads to the generator's multiple
  and crops back, exactly as `condgan.translate` does.

After writing, the model is checked with onnx.checker and run in onnxruntime
on fresh random inputs at two batch sizes (and, for translation, two image
sizes); the largest difference to PyTorch is reported and the export fails
above 1e-4 (fp32; fp16 models report theirs against a looser 5e-2). Every
export also reports PSNR and max abs error against fp32 PyTorch on held-back
inputs (the run's training images the int8 calibration did not use, or
generated z and labels) and is refused below --min-psnr (condgan.export_precision).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from . import __version__, models, tiling
from . import export_precision as ep
from . import checkpoint as ckpt_io
from .cli import Parser, command, writable_file
from .errors import CondganError

DEFAULT_OPSET = 18  # the dynamo exporter's floor; onnxruntime >= 1.14 and onnxruntime-web run it
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2}
PIXEL_FORMATS = {1: "Gray8", 3: "Rgb8", 4: "Rgba8"}


class ExportError(CondganError):
    """The exported model could not be written or does not match PyTorch."""


class _Conditional(nn.Module):
    """(z, label) -> image, with the I/O contract's dtypes whatever the inside runs in."""

    def __init__(self, g: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.g, self.dtype = g, dtype

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.g(z.to(self.dtype), label.long()).float()


class _Translation(nn.Module):
    def __init__(self, g: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.g, self.dtype = g, dtype

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.g(image.to(self.dtype)).float()


def config_digest(cfg) -> str:
    """sha256 of the training config as canonical JSON (same config, same digest)."""
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()


def _select(model, direction: str | None):
    """(generator, kind, direction, in_channels, out_channels) for a loaded model, from its contract."""
    spec = model.generator_spec(direction)
    kind = "conditional" if spec.task == models.SAMPLE else "translation"
    return spec.net, kind, spec.direction or None, spec.in_channels, spec.out_channels


class _DropoutNoise(nn.Module):
    """Dropout that stays on: x * mask / (1 - p), the mask drawn with RandomUniformLike.

    Written out rather than exported as ONNX Dropout because onnxruntime's graph
    optimizer removes Dropout nodes even in training mode.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        keep = (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * keep * (1.0 / (1.0 - self.p))


def _inference_copy(wrap, g: nn.Module, dtype: torch.dtype, dropout: bool) -> nn.Module:
    """The export wrapper around a CPU copy of `g` in inference mode (dropout kept only if asked)."""
    g = wrap(copy.deepcopy(g).to("cpu", dtype), dtype).eval().requires_grad_(False)
    if dropout:  # pix2pix's noise: dropout stays active at inference, as in the paper
        for module in list(g.modules()):
            for name, child in module.named_children():
                if isinstance(child, nn.Dropout):
                    setattr(module, name, _DropoutNoise(child.p))
    return g


def metadata(model, kind, direction, cin, cout, precision, label_dtype, dropout, tile_multiple=1) -> dict[str, str]:
    cfg, info = model.cfg, model.info
    props = {"condgan.kind": kind, "condgan.model": cfg.model, "condgan.version": __version__,
             "condgan.config_digest": config_digest(cfg), "condgan.channels": str(cout),
             "condgan.height": str(info.height), "condgan.width": str(info.width),
             "condgan.value_range": "-1,1", "condgan.precision": precision}
    if kind == "conditional":
        props.update({"condgan.latent_dim": str(model.latent_dim()), "condgan.num_classes": str(info.num_classes),
                      "condgan.class_names": json.dumps([str(n) for n in info.class_names]),
                      "condgan.label_dtype": label_dtype})
    else:
        props.update({"condgan.in_channels": str(cin), "condgan.direction": direction,
                      "condgan.size_multiple": "1", "condgan.tile_multiple": str(tile_multiple),
                      "condgan.dropout_at_inference": "true" if dropout else "false"})
    if cout in PIXEL_FORMATS:  # the standard image keys (onnx MetadataProps.md)
        props["Image.BitmapPixelFormat"] = PIXEL_FORMATS[cout]
        props["Image.ColorSpaceGamma"] = "SRGB"
        props["Image.NominalPixelRange"] = "Normalized_1_1"
    return props


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def _example_inputs(kind, g_info, batch: int, size: tuple[int, int], label_dtype: str, seed: int):
    gen = torch.Generator().manual_seed(seed)
    latent, classes, cin = g_info
    if kind == "conditional":
        z = torch.randn(batch, latent, generator=gen)
        label = torch.randint(classes, (batch,), generator=gen).to({"int64": torch.int64, "int32": torch.int32}[label_dtype])
        return {"z": z, "label": label}
    return {"image": torch.rand(batch, cin, *size, generator=gen) * 2 - 1}


def _trace(wrapper: nn.Module, kind: str, example: dict, opset: int):
    """torch.onnx (dynamo) export -> onnx.ModelProto, with the exporter's chatter kept for errors."""
    batch = torch.export.Dim("batch")
    if kind == "conditional":
        dynamic = {"z": {0: batch}, "label": {0: batch}}
        outputs = ["image"]
    else:
        dynamic = {"image": {0: batch, 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}}
        outputs = ["translated"]
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapper, tuple(example.values()), input_names=list(example),
                                        output_names=outputs, dynamic_shapes=dynamic, dynamo=True,
                                        opset_version=opset, verbose=False)
    except Exception as e:  # the exporter's own errors are long; keep the first line and the log
        log = chatter.getvalue().strip().splitlines()[-5:]
        raise ExportError(f"torch.onnx could not export the generator at opset {opset}: "
                          f"{str(e).strip().splitlines()[0]}" + (f" (log: {' | '.join(log)})" if log else "")) \
            from None
    proto = program.model_proto
    _name_dims(proto, kind)
    for node in proto.graph.node:  # the exporter's per-node notes carry stack traces with local paths
        del node.metadata_props[:]
        node.doc_string = ""
    return proto


def _name_dims(proto, kind: str) -> None:
    """Name the output's dynamic dims like the input's (the exporter leaves them as u0, u1...)."""
    names = ["batch", None, "height", "width"] if kind == "translation" else ["batch"]
    for out in proto.graph.output:
        for dim, name in zip(out.type.tensor_type.shape.dim, names):
            if name and (dim.dim_param or not dim.HasField("dim_value")):
                dim.dim_param = name


def _save(proto, out: Path, props: dict) -> None:
    import onnx
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name, proto.producer_version = "condgan", __version__
    proto.doc_string = f"condgan {props['condgan.model']} generator ({props['condgan.kind']})"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with ckpt_io.atomic_write(out) as f:
            f.write(proto.SerializeToString())
    except ValueError as e:  # protobuf's 2 GB limit
        raise ExportError(f"the model is too large for one ONNX file ({e})") from None
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}") from None
    onnx.checker.check_model(str(out))


def check_parity(path: Path, reference: nn.Module, kind: str, g_info, cases, label_dtype: str,
                 threads: int | None = None) -> list[dict]:
    """Run the ONNX model and the PyTorch generator on the same fresh inputs; max abs difference per case."""
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    results = []
    for i, (batch, size) in enumerate(cases):
        inputs = _example_inputs(kind, g_info, batch, size, label_dtype, seed=1000 + i)
        with torch.no_grad():
            expected = reference(*inputs.values()).numpy()
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime returned shape {got.shape} where PyTorch gives {expected.shape}")
        results.append({"batch": batch, "size": list(expected.shape[-2:]),
                        "max_abs_diff": float(np.abs(got - expected).max()), "finite": bool(np.isfinite(got).all())})
    return results


def _feeds(model, kind, direction, g_info, label_dtype, calibration: int, from_data: bool):
    """(calibration feeds, held-back feeds, where they came from): the run's data when `from_data`, else random
    images (translation); generated z and labels for sampling models either way."""
    if from_data or kind == "conditional":
        calib, held, source = ep.sample_inputs(model, kind, direction, calibration, ep.HELD_BACK)
    else:
        native = (model.info.height, model.info.width)
        feeds = [_example_inputs(kind, g_info, 1, native, label_dtype, seed=2000 + i)
                 for i in range(calibration + ep.HELD_BACK)]
        calib, held, source = feeds[:calibration], feeds[calibration:], "random images"
    if kind == "conditional":
        to = {"int64": torch.int64, "int32": torch.int32}[label_dtype]
        calib, held = ([{**f, "label": f["label"].to(to)} for f in fs] for fs in (calib, held))
    return calib, held, source


def export_model(model, out: str | Path, *, fp16: bool = False, opset: int | None = None,
                 label_dtype: str = "int64", direction: str | None = None, dropout_at_inference: bool = False,
                 check: bool = True, precision: str | None = None, calibration: int = ep.DEFAULT_CALIBRATION,
                 min_psnr: float | None = None, from_data: bool = False) -> dict:
    """Write `model`'s generator to `out` as ONNX; returns a report (path, size, metadata, parity).

    precision: fp32, fp16 (`fp16=True` is the same) or int8 (calibrated on `calibration` inputs: the run's
    training images with `from_data`, random images otherwise). min_psnr: refuse below this (dB)."""
    precision = precision or ("fp16" if fp16 else "fp32")
    if precision not in ep.PRECISIONS or (fp16 and precision != "fp16"):
        raise CondganError(f"--precision must be one of {', '.join(ep.PRECISIONS)} (--fp16 means fp16), "
                           f"not {precision!r}")
    if calibration < 1:
        raise CondganError(f"--calibration must be at least 1, not {calibration}")
    if label_dtype not in ("int64", "int32"):
        raise CondganError(f"--label-dtype must be int64 or int32, not {label_dtype!r}")
    opset = opset or DEFAULT_OPSET
    if opset < 18:
        raise CondganError(f"--opset {opset} is too old for torch's exporter; use 18 or newer")
    out = Path(out)
    g, kind, direction, cin, cout = _select(model, direction)
    if dropout_at_inference and kind != "translation":
        raise CondganError("--dropout-at-inference applies to translation generators only")
    wrap = _Conditional if kind == "conditional" else _Translation
    exported = _inference_copy(wrap, g, torch.float32, dropout_at_inference)
    info, cfg = model.info, model.cfg
    g_info = (model.latent_dim(), info.num_classes, cin)
    native = (info.height, info.width)
    example = _example_inputs(kind, g_info, 2, native, label_dtype, seed=0)
    proto = _trace(exported, kind, example, opset)
    props = metadata(model, kind, direction, cin, cout, precision, label_dtype, dropout_at_inference,
                     tiling.size_multiple(g))
    measure = check and not dropout_at_inference  # with dropout active the outputs are random by design
    calib, held, source = (_feeds(model, kind, direction, g_info, label_dtype, calibration, from_data)
                           if measure or precision == "int8" else ([], [], ""))
    kept = []
    if precision == "fp16":
        kept = ep.kept_fp32(proto)
        proto = ep.to_fp16(proto)
    if precision == "int8":
        import onnx
        fp32_file = out.with_name(f".{out.name}.fp32.tmp")
        _save(proto, fp32_file, props)
        try:
            ep.quantize_int8(fp32_file, out, calib)
        finally:
            fp32_file.unlink(missing_ok=True)
        proto = onnx.load(str(out))
    _save(proto, out, props)
    report = {"path": str(out), "bytes": out.stat().st_size, "kind": kind, "model": cfg.model,
              "precision": precision, "opset": opset, "metadata": props, "parity": [], "tolerance": None,
              "kept_fp32": kept, "calibration": f"{len(calib)} {source}" if precision == "int8" else None,
              "held_back": None}
    if measure:
        reference = _inference_copy(wrap, g, torch.float32, False)
        odd = (max(1, native[0] * 3 // 4 + 3), native[1] + 5)
        cases = [(1, native), (3, odd)] if kind == "translation" else [(1, native), (5, native)]
        report["parity"] = check_parity(out, reference, kind, g_info, cases, label_dtype)
        report["tolerance"] = TOLERANCE.get(precision)
        worst = max(r["max_abs_diff"] for r in report["parity"])
        if precision != "int8" and (not all(r["finite"] for r in report["parity"])
                                    or not worst <= TOLERANCE[precision]):
            bad = out.with_suffix(".rejected.onnx")
            os.replace(out, bad)
            raise ExportError(f"onnxruntime's output differs from PyTorch by {worst:.3g} (tolerance "
                              f"{TOLERANCE[precision]:g}); the model was moved to {bad} for inspection")
        report["held_back"] = {**ep.parity(out, reference, held), "source": source}
        report["held_back"]["min_psnr"] = ep.check_min_psnr(report["held_back"], precision, min_psnr, out)
    return report


def export_run(run: str | Path, out: str | Path | None = None, *, best: bool = False, **options) -> dict:
    """Export the generator of a run directory or checkpoint (see export_model for the options)."""
    path = ckpt_io.resolve_best(run) if best else Path(run)
    model, cfg, _ = models.load(path, "cpu")
    options.setdefault("from_data", True)  # calibration and parity images from the run's own training data
    direction = model.resolve_direction(options.get("direction"))
    if out is None:
        file = ckpt_io.resolve(path)
        run_dir = file.parent.parent if file.parent.name == "checkpoints" else file.parent
        suffix = f"_{direction}" if direction else ""
        precision = options.get("precision") or ("fp16" if options.get("fp16") else "fp32")
        out = run_dir / f"{cfg.model}{suffix}{'' if precision == 'fp32' else '_' + precision}.onnx"
    writable_file(out, "--out")
    return export_model(model, out, **options)


def format_report(r: dict) -> str:
    lines = [f"wrote {r['path']} ({r['bytes'] / 2**20:.1f} MiB, {r['precision']}, opset {r['opset']}, "
             f"{r['model']} {r['kind']} generator)"]
    if r["kept_fp32"]:
        lines.append(f"  kept in fp32: {', '.join(r['kept_fp32'])}")
    if r["calibration"]:
        lines.append(f"  int8 calibration: {r['calibration']}")
    for p in r["parity"]:
        tol = f" (tolerance {r['tolerance']:g})" if r["tolerance"] else ""
        lines.append(f"  onnxruntime vs PyTorch, batch {p['batch']}, {p['size'][0]}x{p['size'][1]}: "
                     f"max abs diff {p['max_abs_diff']:.2e}{tol}")
    h = r["held_back"]
    if h:
        lines.append(f"  vs fp32 PyTorch on {h['inputs']} held-back inputs ({h['source']}): PSNR {h['psnr']:.1f} dB, "
                     f"max abs error {h['max_abs_diff']:.2e} (--min-psnr {h['min_psnr']:g})")
    if not r["parity"]:
        lines.append("  parity not checked" + (" (dropout at inference makes outputs random)"
                                               if r["metadata"].get("condgan.dropout_at_inference") == "true"
                                               else " (--no-check)"))
    return "\n".join(lines)


@command
def main(argv=None):
    p = Parser(prog="condgan.export", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory or checkpoint file")
    p.add_argument("--out", help="ONNX file to write (default: RUN_DIR/<model>[_<direction>][_<precision>].onnx)")
    p.add_argument("--best", action="store_true", help="export the run's best-validation checkpoint (best.pt)")
    p.add_argument("--precision", choices=list(ep.PRECISIONS),
                   help="fp32 (default); fp16: half-precision weights and arithmetic, accuracy-sensitive operators "
                   "kept in fp32; int8: static QDQ quantisation calibrated on the run's training data. "
                   "I/O stays float32")
    p.add_argument("--fp16", action="store_true", help="the same as --precision fp16")
    p.add_argument("--calibration", type=int, default=ep.DEFAULT_CALIBRATION,
                   help=f"int8: calibration inputs (training images or generated z; default {ep.DEFAULT_CALIBRATION})")
    p.add_argument("--min-psnr", type=float, help="refuse the export below this PSNR (dB) against fp32 PyTorch on "
                   "held-back inputs (default: " + ", ".join(f"{k} {v:g}" for k, v in ep.MIN_PSNR.items()) + ")")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--label-dtype", choices=["int64", "int32"], default="int64",
                   help="dtype of the conditional model's label input (int32 for WebGPU runtimes)")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], help="translation: which direction to export")
    p.add_argument("--dropout-at-inference", action="store_true",
                   help="pix2pix: keep dropout active at inference (the paper's noise); default: eval mode")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    p.add_argument("--json", help="also write the report as JSON here")
    args = p.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    json_out = writable_file(args.json, "--json") if args.json else None
    if args.opset < 18:
        raise CondganError(f"--opset {args.opset} is too old for torch's exporter; use 18 or newer")
    if args.fp16 and args.precision not in (None, "fp16"):
        raise CondganError(f"--fp16 and --precision {args.precision} disagree; give one of them")
    report = export_run(args.run, args.out, best=args.best, fp16=args.fp16, opset=args.opset,
                        precision=args.precision, calibration=args.calibration, min_psnr=args.min_psnr,
                        label_dtype=args.label_dtype, direction=args.direction,
                        dropout_at_inference=args.dropout_at_inference, check=not args.no_check)
    print(format_report(report))
    if json_out:
        with ckpt_io.atomic_write(json_out) as f:
            f.write(json.dumps(report, indent=2).encode())
    return 0


if __name__ == "__main__":
    main()
