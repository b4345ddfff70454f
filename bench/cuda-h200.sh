#!/usr/bin/env bash
# The GPU check for the CUDA backend, prepared to run in one call on a lent H200 machine (Python,
# PyTorch, nvcc, compute-sanitizer; no Node). Before: `npm ci && node bench/prepare-cuda.mjs` here,
# then run this there with bench/out carried. Writes the report to $OUT/cuda-h200.md when $OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
report="${OUT:-bench/out}/cuda-h200.md"
mkdir -p "$(dirname "$report")"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-/tmp/dcagen-torch-ext}"
nvidia-smi -L
# Build every extension once (load_inline compiles on first import) outside the sanitizer.
python3 bench/cuda_h200.py --sanitize >/dev/null
for tool in memcheck racecheck; do
  echo "== compute-sanitizer --tool $tool (small case)"
  compute-sanitizer --tool "$tool" --target-processes all python3 bench/cuda_h200.py --sanitize 2>&1 | tail -5
done
python3 bench/cuda_h200.py | tee "$report"
python3 bench/cuda_h200_decode.py | tee -a "$report"   # serving: decode bandwidth, paged vs contiguous prefill (bench/prepare-cuda-decode.mjs)
