#!/usr/bin/env bash
# Proves the runtime app (export/python, `condgan-run`) installs and runs without PyTorch:
#   1. a fresh venv (no system site packages) in a temp dir; `pip install ./export/python` from the registry;
#   2. checks that `import torch` (and condgan) FAIL in that venv;
#   3. exports tiny random-weight models with the main environment's python (torch + condgan.export);
#   4. runs `condgan-run info`, `generate` and `translate` from the venv and checks what they wrote.
# Exits non-zero on any failure. Env: PYTHON (main env, default python), VENV_PYTHON (venv base, default
# $PYTHON), KEEP=1 keeps the temp dir. Needs the package registry (pip); about a minute.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/condgan-runtime-ci.XXXXXX")"
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$WORK"' EXIT; else echo "keeping $WORK"; fi
step() { echo; echo "== $*"; }
fail() { echo "ci_runtime_venv: FAILED: $*" >&2; exit 1; }

step "fresh venv without system site packages: $WORK/venv"
"${VENV_PYTHON:-$PY}" -m venv "$WORK/venv"
V="$WORK/venv/bin"
grep -q "include-system-site-packages = false" "$WORK/venv/pyvenv.cfg" || fail "the venv sees system packages"

step "pip install ./export/python (from the registry; built from a copy so the tree gets no build/ folder)"
mkdir "$WORK/src" && cp -R "$ROOT/export/python/." "$WORK/src/"
rm -rf "$WORK/src/build" "$WORK/src"/*.egg-info
"$V/python" -m pip install --quiet --disable-pip-version-check "$WORK/src"
"$V/python" -m pip list --disable-pip-version-check --format=freeze \
  | grep -iE '^(condgan-runtime|onnxruntime|numpy|pillow)=' | sed 's/^/  /'

step "the venv cannot import torch or condgan (checked outside the repo)"
for mod in torch condgan; do
  if (cd "$WORK" && "$V/python" -c "import $mod" 2>/dev/null); then fail "import $mod works in the runtime venv"; fi
  echo "  import $mod: fails, as it should"
done

step "export tiny models with $PY (condgan.export)"
(cd "$ROOT" && "$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path
from condgan import models
from condgan.data import DataInfo
from condgan.export import export_model
from condgan.models.cgan import CGANConfig
from condgan.models.pix2pix import Pix2PixConfig
work = Path(sys.argv[1])
info = DataInfo(kind="labelled", name="digits", channels=1, height=28, width=28, num_classes=10,
                class_names=[str(i) for i in range(10)])
cgan = models.build(CGANConfig(g_width=8, d_width=8, latent_dim=8, embed_dim=4), info).eval()
export_model(cgan, work / "cgan.onnx", check=False)
info = DataInfo(kind="paired", name="x", channels=3, height=32, width=32, in_channels=3)
p2p = models.build(Pix2PixConfig(generator="unet_128", unet_depth=3, g_width=4), info).eval()
export_model(p2p, work / "p2p.onnx", check=False)
print("  wrote", work / "cgan.onnx", "and", work / "p2p.onnx")
EOF
)

step "condgan-run info"
"$V/condgan-run" info "$WORK/cgan.onnx"

step "condgan-run generate"
"$V/condgan-run" generate "$WORK/cgan.onnx" --label 3 --n 8 --seed 0 --out "$WORK/out/grid.png" \
  --each "$WORK/out/each"
[ -s "$WORK/out/grid.png" ] || fail "generate wrote no grid"
[ "$(ls "$WORK/out/each" | wc -l)" -eq 8 ] || fail "generate --each wrote $(ls "$WORK/out/each" | wc -l) files, not 8"

step "condgan-run translate (a folder: two 37x23 images and a 17x40 one)"
"$V/python" - "$WORK/in" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
d = Path(sys.argv[1]); d.mkdir()
rng = np.random.default_rng(0)
for name, (h, w) in {"a.png": (23, 37), "b.jpg": (23, 37), "c.png": (40, 17)}.items():
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / name)
EOF
"$V/condgan-run" translate "$WORK/p2p.onnx" "$WORK/in" --out "$WORK/out/translated"
"$V/python" - "$WORK/out/translated" <<'EOF' || fail "translate outputs are missing or have the wrong size"
import sys
from pathlib import Path
from PIL import Image
d = Path(sys.argv[1])
sizes = {n: Image.open(d / n).size for n in ("a.png", "b.png", "c.png")}
assert sizes == {"a.png": (37, 23), "b.png": (37, 23), "c.png": (17, 40)}, sizes
print("  outputs have their inputs' sizes:", sizes)
EOF

step "a usage error: generate on a translation model (expect exit 2, one line)"
set +e
msg="$("$V/condgan-run" generate "$WORK/p2p.onnx" 2>&1 >/dev/null)"; rc=$?
set -e
echo "  exit $rc: $msg"
[ "$rc" -eq 2 ] && [ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || fail "expected exit 2 and one line on stderr"

echo
echo "ci_runtime_venv: all checks passed"
