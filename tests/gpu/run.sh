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

# Without SSD_CUDA_ARCHS, ops/build.py compiles for this machine's GPUs (nvidia-smi) and
# prints the architectures it chose.
echo "building kernels"
start=$(date +%s)
SSD_WITH_CUDA=1 "$PYTHON" "$ROOT/ops/build.py" --kernels-only --out "$WORK/libssd_kernels.so"
echo "build: $(( $(date +%s) - start )) s"

cd "$ROOT"
SSD_KERNELS_LIB="$WORK/libssd_kernels.so" timeout 240 \
  "$PYTHON" -m pytest -q -s -p no:cacheprovider --durations=5 tests/gpu/test_kernels.py "$@"
