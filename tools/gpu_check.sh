#!/usr/bin/env bash
# Everything the project checks on an NVIDIA GPU, in one run (an estimate,
# not yet timed on a GPU: about ten minutes on an H100/H200, most of it
# compiling the extension, torch.compile and fresh benchmark processes). In
# order of importance: the CUDA tests, the fused ops' bandwidth table
# (float32 with torch.compile, bfloat16 without), the pix2pix and CycleGAN
# throughput against the eager fp32 reference, and pix2pix quality in bf16
# AMP vs fp32.
#
#   bash tools/gpu_check.sh                              # from the repository root
#   OUT=/some/folder bash tools/gpu_check.sh
#   STEPS="build cuda_tests ops" bash tools/gpu_check.sh # only these (prefixes of step names)
#
# Needs PyTorch with CUDA, a CUDA toolkit (nvcc, for the extension's
# just-in-time build) and the project's dependencies importable; it installs
# nothing and reaches no network. Every step writes $OUT/<step>.log and
# prints its tail; a failed step does not stop the later ones, and the exit
# status is non-zero if any failed. The quality step needs albumentations
# (the paired data pipeline) and is skipped, saying so, where it is missing.
# Environment: OUT (default ./gpu_check), PYTHON (default python3),
#              CUDA_HOME (default /usr/local/cuda), QUALITY_STEPS (default 1500),
#              STEPS (default: all; env, build, cuda_tests, ops_float32,
#              ops_bfloat16, bench_pix2pix, bench_cyclegan, quality_amp,
#              quality_fp32; a prefix selects every step it starts).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$PWD/gpu_check}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export CONDGAN_EXT_DIR="${CONDGAN_EXT_DIR:-/tmp/condgan_gpu_check_ext}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
cd "$ROOT" || exit 2

failed=()
wanted() {
  [ -z "${STEPS:-}" ] && return 0
  local prefix
  for prefix in $STEPS; do [[ "$1" == "$prefix"* ]] && return 0; done
  return 1
}
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  wanted "$name" || return 0
  echo "== $name ($(date +%T)): $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  echo "== $name: exit $rc"
  [ "$rc" -eq 0 ] || failed+=("$name")
}

if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: PyTorch sees no CUDA device here; nothing to check."
  exit 2
fi
step env 60 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$0" -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name())"' "$PY"
# The first use compiles the extension (CPU and CUDA kernels); backend() says
# whether the CUDA kernels loaded.
step build 420 "$PY" -c 'from condgan import ops; import torch; print(ops.backend())
x = torch.randn(2, 3, 4, 4, device="cuda")
ops.upsample2x(x, "bilinear", impl="native"); print("native CUDA call ok")'
step cuda_tests 300 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_ops_cuda.py
step ops_float32 240 "$PY" benchmarks/bench_ops.py --device cuda --repeats 20
step ops_bfloat16 120 "$PY" benchmarks/bench_ops.py --device cuda --dtype bfloat16 --repeats 20 --no-compile
step bench_pix2pix 300 "$PY" -m condgan.bench pix2pix --device cuda --rounds 1 --json "$OUT/bench_pix2pix.json"
step bench_cyclegan 240 "$PY" -m condgan.bench cyclegan --device cuda --rounds 1 --batch-sizes 1 \
  --json "$OUT/bench_cyclegan.json"
if ! wanted quality; then
  :
elif "$PY" -c 'import albumentations' > /dev/null 2>&1; then
  steps="${QUALITY_STEPS:-1500}"
  step quality_amp 300 "$PY" benchmarks/bench_pix2pix_quality.py --steps "$steps" \
    --out /tmp/condgan_gpu_check_amp --picture "$OUT/quality_amp.png"
  step quality_fp32 300 "$PY" benchmarks/bench_pix2pix_quality.py --steps "$steps" \
    --out /tmp/condgan_gpu_check_fp32 --picture "$OUT/quality_fp32.png" --extra=--amp=off
else
  echo "== quality: skipped (albumentations is not importable here; carry its wheels to run it)"
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "gpu_check: FAILED steps: ${failed[*]} (logs in $OUT)"
  exit 1
fi
echo "gpu_check: all steps passed (logs in $OUT)"
