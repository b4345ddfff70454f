#!/usr/bin/env bash
# The GPU check for the CUDA backend, in one call on a machine with an NVIDIA GPU, Python, PyTorch,
# nvcc and compute-sanitizer (no Node). Before, here: `npm ci && npm run build && node
# bench/prepare-cuda.mjs`, then carry bench/out (emitted kernels, cases, references) with the tree.
#
# Stages, each under its own time limit so one slow stage cannot eat the machine's time and the
# others still report: parallel extension builds, compute-sanitizer memcheck and racecheck on small
# calls, verification, then the benchmark. The report (Markdown) goes to $OUT/cuda-h200.md when $OUT
# is set (the device tool returns $OUT), else to bench/out/cuda-h200.md; each stage's log sits
# beside it. SIZES (default 4096,16384,65536,131072) and the limits below can be overridden.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/out}"
mkdir -p "$out"
report="$out/cuda-h200.md"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-/tmp/dcagen-torch-ext}"
SIZES="${SIZES:-4096,16384,65536,131072}"
# Defaults sum to 580 s (build 120, sanitizer 2 × 60, verify + bench 200, serving 140), inside one
# 600 s device command; each stage stops at its limit and still prints the rows and goals it measured.
BUILD_S="${BUILD_S:-120}" SANITIZE_S="${SANITIZE_S:-60}" RUN_S="${RUN_S:-200}" DECODE_S="${DECODE_S:-140}"
if [ ! -f bench/out/cuda/manifest.json ]; then
  echo "bench/out/cuda/manifest.json missing: run node bench/prepare-cuda.mjs first (and carry bench/out)" >&2
  exit 2
fi
{ nvidia-smi -L; nvcc --version | tail -1; python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } 2>&1 | tee "$out/environment.txt"

echo "== build (parallel, ${BUILD_S}s limit)"
timeout "$BUILD_S" python3 bench/cuda_h200.py build >"$out/build.log" 2>&1
echo "build exit $? ($(grep -c '^built ' "$out/build.log") modules); log: $out/build.log"

for tool in memcheck racecheck; do
  echo "== compute-sanitizer --tool $tool (small calls, ${SANITIZE_S}s limit)"
  timeout "$SANITIZE_S" compute-sanitizer --tool "$tool" --target-processes all python3 bench/cuda_h200.py sanitize >"$out/sanitize-$tool.log" 2>&1
  echo "exit $?"; tail -3 "$out/sanitize-$tool.log"
done

echo "== verify and bench (${RUN_S}s limit; sizes $SIZES)"
timeout "$RUN_S" python3 bench/cuda_h200.py all --sizes "$SIZES" 2>"$out/run-stderr.log" | tee "$report"
status=${PIPESTATUS[0]}
echo "verify/bench exit $status; report: $report"
timeout "$DECODE_S" python3 bench/cuda_h200_decode.py 2>"$out/decode-stderr.log" | tee -a "$report"; echo "serving stage exit ${PIPESTATUS[0]} (bench/cuda_h200_decode.py, kernels from bench/prepare-cuda-decode.mjs; ${DECODE_S}s limit)"
exit "$status"
