"""Turn a generator trained with the reference implementation into a condgan run directory.

    python -m condgan.convert latest_net_G.pth --from junyanz --netG unet_256 --norm batch --out RUN_DIR
    python -m condgan.convert latest_net_G.pth --opt opt.txt --out RUN_DIR         # settings from opt.txt
    python -m condgan.convert latest_net_G_A.pth --model cyclegan --out RUN_DIR    # G_B found beside it

The reference (junyanz/pytorch-CycleGAN-and-pix2pix) saves plain state dicts. The architecture is read off
the weights (U-Net levels or residual blocks, norm, ngf, channels, ResNet dropout); every setting given by a
flag or by --opt (the reference's opt.txt / train_opt.txt) is checked against them, and one that does not
fit is named in one sentence. The run holds the generator(s) converted, a freshly initialised
discriminator (translation needs none) and no training state: condgan.translate, condgan.evaluate and
condgan.export load it like any run; train --resume refuses it. RUN/conversion.json records the source.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from . import checkpoint as ckpt_io
from . import models
from .cli import Parser, command, writable_dir
from .data.download import CYCLEGAN_ARCHIVES, PIX2PIX_ARCHIVES
from .data.info import PAIRED, UNPAIRED, DataInfo
from .errors import CondganError
from .models.translation import GENERATORS, PREPROCESS
from .nets import junyanz
from .run_folder import RunLock

NORMS = ("batch", "instance", "none")
MODELS = {"pix2pix": "pix2pix", "cycle_gan": "cyclegan", "cyclegan": "cyclegan", "test": "pix2pix"}
OPT_KEYS = ("netG", "norm", "no_dropout", "ngf", "input_nc", "output_nc", "direction", "model", "crop_size",
            "load_size", "preprocess", "no_flip", "dataroot", "name")


def read_opt(path) -> dict[str, str]:
    """The settings of a reference opt.txt: `   key: value    [default: d]` lines between the dashes."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise CondganError(f"--opt {path} cannot be read ({e.strerror or e})") from None
    values = {}
    for line in text.splitlines():
        key, sep, rest = line.strip().partition(":")
        if not sep or key.startswith("-") or " " in key:
            continue
        values[key] = rest.split("[default:", 1)[0].strip()
    if "netG" not in values:
        raise CondganError(f"--opt {path} is not a reference opt.txt (it has no 'netG: ...' line)")
    return values


def _opt_value(opt: dict, key: str, kind, path):
    raw = opt.get(key)
    if raw is None:
        return None
    if kind is bool:
        if raw not in ("True", "False"):
            raise CondganError(f"--opt {path}: {key} is {raw!r}, not True or False")
        return raw == "True"
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise CondganError(f"--opt {path}: {key} is {raw!r}, not a whole number") from None
    return raw


def settings(args) -> dict:
    """The conversion settings: each flag, else opt.txt's value (each remembers where it came from)."""
    opt = read_opt(args.opt) if args.opt else {}
    kinds = {"no_dropout": bool, "ngf": int, "input_nc": int, "output_nc": int, "crop_size": int,
             "load_size": int, "no_flip": bool}
    out = {}
    for key in OPT_KEYS:
        flag = vars(args).get(key)
        if flag is not None:
            out[key] = (flag, f"--{key.replace('_', '-') if key != 'netG' else key}")
        elif key in opt:
            out[key] = (_opt_value(opt, key, kinds.get(key, str), args.opt), f"{args.opt}'s {key}")
    return out


def _check(given: dict, key: str, found, file, what: str, advice: str) -> None:
    if key in given and given[key][0] != found:
        value, source = given[key]
        told = source if source.startswith("--") and isinstance(value, bool) else f"{source} {value}"
        raise CondganError(f"{told} does not match {file}: {what}; {advice}")


def check_arch(arch: junyanz.Arch, given: dict, file) -> None:
    """Compare every given setting with what the weights show; the first that differs, in one sentence."""
    if "netG" in given:
        name = given["netG"][0]
        if name not in GENERATORS:
            raise CondganError(f"{given['netG'][1]} {name} is not a generator condgan converts "
                               f"(choose one of {', '.join(GENERATORS)})")
    known = arch.net_name in GENERATORS
    _check(given, "netG", arch.net_name, file, f"it holds a {arch.net_name} generator" if known else
           f"it holds {arch.net_name}", f"use --netG {arch.net_name}" if known else "drop --netG to convert it")
    norm_seen = {"batch": "its norm layers have batch-norm weights and running statistics",
                 "instance": "its convolutions have biases and its norm layers no weights (instance norm)",
                 "none": "it has neither norm weights nor convolution biases (--norm none)"}[arch.norm]
    _check(given, "norm", arch.norm, file, norm_seen, f"use --norm {arch.norm}")
    if arch.dropout is not None:
        has = "its residual blocks have dropout" if arch.dropout else "its residual blocks have no dropout"
        _check(given, "no_dropout", not arch.dropout, file, has,
               "drop --no-dropout" if arch.dropout else "add --no-dropout")
    _check(given, "ngf", arch.ngf, file, f"its first layer has {arch.ngf} channels", f"use --ngf {arch.ngf}")
    _check(given, "input_nc", arch.input_nc, file, f"its generator takes {arch.input_nc}-channel images",
           f"use --input-nc {arch.input_nc}")
    _check(given, "output_nc", arch.output_nc, file, f"its generator makes {arch.output_nc}-channel images",
           f"use --output-nc {arch.output_nc}")


def load_reference(file) -> dict:
    file = Path(file)
    if not file.is_file():
        raise CondganError(f"{file} does not exist" if not file.exists() else f"{file} is not a file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, pickled code
        raise CondganError(f"{file} is not a readable PyTorch state dict ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise CondganError(f"{file} does not hold a state dict (names to tensors), as the reference saves")
    return junyanz.strip_prefix(state)


def _generator_config(arch: junyanz.Arch) -> dict:
    name = arch.net_name
    if name in GENERATORS:
        return {"generator": name}
    if arch.kind == "unet":
        return {"generator": "unet_256", "unet_depth": arch.levels}
    return {"generator": "resnet_9blocks", "resnet_blocks": arch.levels}


def _files(args, model: str) -> list[Path]:
    files = [Path(f) for f in args.checkpoint]
    if model == "cyclegan" and len(files) == 1:
        name = files[0].name
        if "_G_A." not in name:
            raise CondganError("a CycleGAN run needs both generators: give latest_net_G_A.pth and "
                               "latest_net_G_B.pth (one generator alone converts with --model pix2pix)")
        files.append(files[0].with_name(name.replace("_G_A.", "_G_B.")))
        if not files[1].is_file():
            raise CondganError(f"{files[1]} (G_B, beside {files[0]}) does not exist; give both generator files")
    if len(files) > (2 if model == "cyclegan" else 1):
        raise CondganError(f"a {model} run takes {'two generator files' if model == 'cyclegan' else 'one'}, "
                           f"got {len(files)}")
    return files


def convert(args) -> dict:
    """Build the run directory `args.out` from the reference file(s); returns what conversion.json holds."""
    given = settings(args)
    ref_model = given.get("model", ("pix2pix", ""))[0]
    if ref_model not in MODELS:
        raise CondganError(f"{given['model'][1]} {ref_model} is not a model condgan converts "
                           f"(pix2pix, cycle_gan or test)")
    model_name = MODELS[ref_model]
    files = _files(args, model_name)
    states, arch = [], None
    for i, f in enumerate(files):
        state = load_reference(f)
        a = junyanz.inspect(state, f)
        check_arch(a, given if i == 0 else {k: v for k, v in given.items() if k in ("netG", "norm", "no_dropout",
                                                                                      "ngf")}, f)
        if arch is not None and (a.input_nc, a.output_nc) != (arch.output_nc, arch.input_nc):
            raise CondganError(f"{f} maps {a.input_nc} to {a.output_nc} channels, so it is not the G_B of "
                               f"{files[0]} ({arch.input_nc} to {arch.output_nc})")
        arch = arch or a
        states.append((state, a))
    direction = given.get("direction", ("AtoB", ""))[0]
    if direction not in ("AtoB", "BtoA"):
        raise CondganError(f"{given['direction'][1]} {direction} must be AtoB or BtoA")
    dropout = not given["no_dropout"][0] if "no_dropout" in given else \
        arch.dropout if arch.dropout is not None else model_name == "pix2pix"
    size = given.get("crop_size", (256, ""))[0]
    load = max(given.get("load_size", (286, ""))[0], size)
    preprocess = given.get("preprocess", ("resize_and_crop", ""))[0]
    archives = PIX2PIX_ARCHIVES if model_name == "pix2pix" else CYCLEGAN_ARCHIVES
    root = Path(given["dataroot"][0]).name if "dataroot" in given else ""
    data = args.data or (root if root in archives else models.config_class(model_name)().data)
    values = {"model": model_name, "data": data, "out": str(args.out), "direction": direction, "g_width": arch.ngf,
              "norm": arch.norm, "dropout": dropout, "crop_size": size, "load_size": load,
              "preprocess": preprocess if preprocess in PREPROCESS else "resize_and_crop",
              "flip": not given.get("no_flip", (False, ""))[0], **_generator_config(arch)}
    if model_name == "cyclegan" and values["preprocess"] not in ("resize_and_crop", "crop", "scale_width_and_crop"):
        values["pool_size"] = 0  # the image pool needs one training size (it only matters for training)
    if model_name == "cyclegan" and arch.input_nc != arch.output_nc:
        values["identity_weight"] = 0.0  # as in the reference: no identity loss between channel counts
    cfg = models.config_class(model_name)(**values)
    cfg.validate()
    # the reference's CycleGAN with --direction BtoA calls trainB its A: its G_A is condgan's G_B
    swap = model_name == "cyclegan" and direction == "BtoA"
    cin, cout = (arch.output_nc, arch.input_nc) if swap else (arch.input_nc, arch.output_nc)
    info = DataInfo(PAIRED if model_name == "pix2pix" else UNPAIRED, data, cout, size, size, in_channels=cin)
    torch.manual_seed(0)  # the discriminator's fresh weights: the same conversion, the same file
    model = models.build(cfg, info)
    nets = [model.generator(d) for d in (("AtoB", "BtoA") if model_name == "cyclegan" else ("AtoB",))]
    if swap:
        nets.reverse()
    for net, (state, a), f in zip(nets, states, files):
        net.load_state_dict(junyanz.to_condgan(state, a, net.state_dict(), f))
    record = {"from": junyanz.SOURCE, "reference_model": ref_model, "files": [str(f.resolve()) for f in files],
              "sha256": [hashlib.sha256(f.read_bytes()).hexdigest() for f in files],
              "netG": arch.net_name, "norm": arch.norm, "ngf": arch.ngf, "input_nc": arch.input_nc,
              "output_nc": arch.output_nc, "dropout": dropout, "direction": direction,
              "discriminator": "freshly initialised (not converted)", "training_state": None,
              "settings_from": {k: src for k, (_, src) in given.items()}}
    _write_run(Path(args.out), cfg, info, model, record)
    return record


def _write_run(out: Path, cfg, info, model, record: dict) -> None:
    writable_dir(out, "--out")
    with RunLock(out):
        if (out / "checkpoints" / ckpt_io.LAST).exists():
            raise CondganError(f"{out} already holds a run; choose another --out")
        ckpt = {"format": 1, "version": ckpt_io.package_version(), "config": cfg.to_dict(),
                "data_info": info.to_dict(), "model": model.state_dict(), "converted": record}
        ckpt_io.atomic_save(ckpt, out / "checkpoints" / ckpt_io.LAST)
        for name, obj in (("config.json", cfg.to_dict()), ("conversion.json", record)):
            with ckpt_io.atomic_write(out / name) as f:
                f.write((json.dumps(obj, indent=2) + "\n").encode())


@command
def main(argv=None):
    p = Parser(prog="condgan.convert", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="+", help="the reference's generator file (latest_net_G.pth); for "
                   "--model cyclegan latest_net_G_A.pth (G_B beside it) or both files")
    p.add_argument("--from", dest="source", choices=["junyanz"], default="junyanz",
                   help=f"implementation that wrote the file ({junyanz.SOURCE})")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--opt", help="the reference's opt.txt / train_opt.txt: settings not given as flags")
    p.add_argument("--netG", choices=list(GENERATORS), help="generator (default: read from the file)")
    p.add_argument("--norm", choices=list(NORMS), help="normalisation (default: read from the file)")
    p.add_argument("--no-dropout", action="store_const", const=True, default=None,
                   help="the generator was trained without dropout (U-Net: not visible in its weights; "
                        "default: the reference's, dropout for pix2pix, none for CycleGAN)")
    p.add_argument("--ngf", type=int, help="generator width at the first layer (checked against the file)")
    p.add_argument("--input-nc", type=int, help="input channels (checked against the file)")
    p.add_argument("--output-nc", type=int, help="output channels (checked against the file)")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], help="the direction it was trained in (AtoB)")
    p.add_argument("--model", choices=["pix2pix", "cyclegan"],
                   help="run kind: pix2pix (one generator; also the reference's `test` model) or cyclegan "
                        "(G_A and G_B); default pix2pix, or opt.txt's")
    p.add_argument("--crop-size", type=int, help="image size it was trained at (default 256)")
    p.add_argument("--data", help="dataset condgan.evaluate scores the run on (default: opt.txt's dataroot "
                   "when it names an official archive)")
    args = p.parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    record = convert(args)
    print(f"converted {', '.join(record['files'])} ({record['netG']}, {record['norm']} norm, ngf {record['ngf']}, "
          f"{record['input_nc']} -> {record['output_nc']} channels, dropout "
          f"{'on' if record['dropout'] else 'off'}) into {args.out}; its discriminator is freshly initialised. "
          f"Reference test.py outputs (train-mode batch norm and dropout): condgan.translate "
          f"--reference-test-mode")
    return 0


if __name__ == "__main__":
    main()
