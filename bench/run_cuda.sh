#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (sm_80 or sm_90) and nvcc: builds the CUDA
# plugin, runs its correctness tests, then the GPU benchmark.
#
#   bench/run_cuda.sh                # build + tests + bench
#   QUICK=1 bench/run_cuda.sh        # fewer types and repetitions in the bench
#   SANITIZE=1 bench/run_cuda.sh     # also run a slice of the tests under compute-sanitizer
#
# Environment: BUILD_DIR (default build-cuda-run), CUDA_ARCHS (default: the GPU's own, from
# nvidia-smi, else "80;90"), RESULTS_DIR (default BUILD_DIR) for the logs and bench JSON,
# JOBS (default nproc). Only the kernels are built (-DLOWBIT_KERNELS_ONLY=ON), so no
# third-party library is needed; the tests need GoogleTest (libgtest-dev or /usr/src/googletest)
# and are skipped with a message when it is missing.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-cuda-run}
results=${RESULTS_DIR:-$build}
jobs=${JOBS:-$(nproc)}
mkdir -p "$build" "$results"

archs=${CUDA_ARCHS:-}
if [[ -z "$archs" ]] && command -v nvidia-smi >/dev/null; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  [[ "$cc" =~ ^[0-9]+$ ]] && archs=$cc
fi
archs=${archs:-"80;90"}

echo "== GPU"
nvidia-smi -L 2>/dev/null || echo "(nvidia-smi not available)"
echo "== nvcc: $(nvcc --version 2>/dev/null | tail -1), archs $archs"

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
configure() {
  cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CUDA=ON \
    -DLOWBIT_KERNELS_ONLY=ON -DCMAKE_CUDA_ARCHITECTURES="$archs" "$@" >"$results/configure.log" 2>&1
}
have_tests=1
if ! configure -DLOWBIT_TESTS=ON; then
  echo "configure with tests failed (GoogleTest missing?), see $results/configure.log; building without tests"
  have_tests=0
  rm -f "$build/CMakeCache.txt"
  configure -DLOWBIT_TESTS=OFF || { cat "$results/configure.log"; exit 1; }
fi

targets=(lowbit_cuda cuda_matmul_bench)
((have_tests)) && targets+=(test_kernels)
echo "== build (${targets[*]})"
if ! cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$results/build.log" 2>&1; then
  tail -50 "$results/build.log"
  exit 1
fi

status=0
if ((have_tests)); then
  echo "== tests (CUDA vs the reference; the CPU matmul tests too)"
  "$build/tests/test_kernels" --gtest_filter='*Cuda*:*Matmul*' >"$results/test.log" 2>&1 || status=1
  # The summary, each failure, and the reason for skips (one line is enough: they share it).
  grep -E '^\[==========\]|^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]' "$results/test.log"
  grep -m1 -A1 ": Skipped" "$results/test.log" | tail -1
  grep -m1 "CUDA device 0:" "$results/test.log"
  if [[ "${SANITIZE:-0}" == 1 ]] && command -v compute-sanitizer >/dev/null; then
    echo "== compute-sanitizer (memcheck, racecheck) on a slice"
    slice='*CudaMatmul*q4_g32_asym_m7_k172*:*CudaMatmul*q1_row_sym_m32_k172*:*CudaMatmul*q8_g256_asym_m100_k64*:*CudaMatmul*f16_m3_k172*'
    for tool in memcheck racecheck; do
      compute-sanitizer --tool "$tool" --error-exitcode 9 "$build/tests/test_kernels" --gtest_filter="$slice" \
        >"$results/sanitize_$tool.log" 2>&1 && echo "$tool: clean" || { echo "$tool: FAILED (see $results/sanitize_$tool.log)"; status=1; }
    done
  fi
fi

echo "== benchmark"
bench_args=(--json "$results/cuda_bench.json")
[[ "${QUICK:-0}" == 1 ]] && bench_args+=(--quick)
"$build/cuda_matmul_bench" "${bench_args[@]}" 2>&1 | tee "$results/bench.log" || status=1
exit $status
