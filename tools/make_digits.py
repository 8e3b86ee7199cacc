"""Build condgan/data/assets/digits.xz: the embedded real-digits set.

A class-balanced subset of the MNIST training set (LeCun, Cortes, Burges;
CC BY-SA 3.0), split into a training part and a held-out part that the
evaluator uses. Run from the repository root:

    python tools/make_digits.py ../shared/data/mnist

The output is deterministic: same input files, same bytes out.
"""
import argparse
import gzip
import hashlib
import io
import lzma
import sys
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 1700
HELDOUT_PER_CLASS = 300
IMAGES_MD5 = "6bbc9ace898e44ae57da46a324031adb"  # decompressed train-images-idx3-ubyte
LABELS_MD5 = "a25bea736e30d166cdddb491f175f624"  # decompressed train-labels-idx1-ubyte


def read_idx(path: Path, expected_md5: str, offset: int) -> np.ndarray:
    raw = gzip.open(path).read()
    if hashlib.md5(raw).hexdigest() != expected_md5:
        sys.exit(f"{path} does not match the official MNIST content (md5 of the decompressed bytes).")
    return np.frombuffer(raw, np.uint8, offset=offset)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mnist_dir", type=Path)
    ap.add_argument("--out", type=Path, default=Path("condgan/data/assets/digits.xz"))
    args = ap.parse_args()
    images = read_idx(args.mnist_dir / "train-images-idx3-ubyte.gz", IMAGES_MD5, 16).reshape(-1, 28, 28)
    labels = read_idx(args.mnist_dir / "train-labels-idx1-ubyte.gz", LABELS_MD5, 8)
    train_idx, held_idx = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        # training digits from the front of the file, held-out digits from the back,
        # so the two parts never share an image
        train_idx.append(idx[:TRAIN_PER_CLASS])
        held_idx.append(idx[-HELDOUT_PER_CLASS:])
    order = np.concatenate([np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(held_idx))])
    split = np.concatenate([np.zeros(10 * TRAIN_PER_CLASS, np.uint8), np.ones(10 * HELDOUT_PER_CLASS, np.uint8)])
    buf = io.BytesIO()
    for arr in (images[order], labels[order], split):
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    data = lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out}: {len(order)} digits, {len(data) / 1e6:.2f} MB, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
