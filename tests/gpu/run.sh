#!/usr/bin/env bash
# GPU check of the CUDA kernels: builds the kernels-only library (CPU + CUDA entry points, no
# MXNet) into a temporary folder and runs tests/gpu/test_kernels.py against it, which compares
# every CUDA launcher with the CPU function and prints timings. Needs nvcc, an NVIDIA GPU and
# PyTorch or CuPy (torchvision optional, as a timing reference).
#   tests/gpu/run.sh [pytest args]      PYTHON=... to choose the interpreter
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Compile for this machine's GPU only (faster, and covers GPUs newer than the default list).
if [[ -z "${SSD_CUDA_ARCHS:-}" ]] && command -v nvidia-smi >/dev/null; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')" || cap=""
  if [[ "$cap" =~ ^[0-9]+$ ]]; then export SSD_CUDA_ARCHS="$cap"; fi
fi
echo "building kernels (SSD_CUDA_ARCHS=${SSD_CUDA_ARCHS:-default})"
start=$(date +%s)
SSD_WITH_CUDA=1 "$PYTHON" "$ROOT/ops/build.py" --kernels-only --out "$WORK/libssd_kernels.so"
echo "build: $(( $(date +%s) - start )) s"

cd "$ROOT"
SSD_KERNELS_LIB="$WORK/libssd_kernels.so" timeout 240 \
  "$PYTHON" -m pytest -q -s -p no:cacheprovider --durations=5 tests/gpu/test_kernels.py "$@"
