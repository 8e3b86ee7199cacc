#!/usr/bin/env bash
# Compile-only check of the CUDA sources (csrc/cuda/*.cu) and the schema file
# (csrc/ops.cpp) with nvcc against torch's headers, so a CUDA syntax or type
# error fails CI even on machines without a GPU. Nothing is linked or run.
#
# Exit status: 0 when everything compiles (or nvcc is absent: a skip line is
# printed), non-zero on the first compile error.
# Environment: CUDA_HOME (default /usr/local/cuda), CUDA_ARCH (default 90),
#              PYTHON (default python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
NVCC="${CUDA_HOME}/bin/nvcc"
[ -x "$NVCC" ] || NVCC="$(command -v nvcc || true)"
if [ -z "$NVCC" ] || [ ! -x "$NVCC" ]; then
  echo "check_cuda_compile: SKIP (nvcc not found; set CUDA_HOME to check the CUDA sources)"
  exit 0
fi

PYTHON="${PYTHON:-python}"
mapfile -t INCLUDES < <("$PYTHON" - <<'PY'
import sysconfig
from torch.utils.cpp_extension import include_paths
for path in include_paths() + [sysconfig.get_paths()["include"]]:
    print(path)
PY
)
ABI="$("$PYTHON" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
ARCH="${CUDA_ARCH:-90}"

FLAGS=(-std=c++20 -O1 -c -gencode "arch=compute_${ARCH},code=sm_${ARCH}"
       "-D_GLIBCXX_USE_CXX11_ABI=${ABI}" -DCONDGAN_PYTHON_MODULE
       -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
       -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__
       --expt-relaxed-constexpr -Xcompiler -fPIC -w)
for inc in "${INCLUDES[@]}"; do FLAGS+=(-I "$inc"); done

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
SOURCES=("$ROOT/csrc/ops.cpp" "$ROOT"/csrc/cuda/*.cu)
echo "check_cuda_compile: $("$NVCC" --version | tail -1) sm_${ARCH}: ${#SOURCES[@]} files"

pids=()
for src in "${SOURCES[@]}"; do
  # .cpp files go through nvcc as host code, like the extension build does.
  ( "$NVCC" "${FLAGS[@]}" -x cu "$src" -o "$OUT/$(basename "$src").o" > "$OUT/$(basename "$src").log" 2>&1 \
      && echo "  ok    ${src#$ROOT/}" \
      || { echo "  FAIL  ${src#$ROOT/}"; cat "$OUT/$(basename "$src").log"; exit 1; } ) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" -eq 0 ] && echo "check_cuda_compile: OK" || echo "check_cuda_compile: FAILED"
exit "$status"
