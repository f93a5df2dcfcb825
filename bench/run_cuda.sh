#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (sm_80 or sm_90) and nvcc: every device check of
# issue 18. Builds the CUDA plugin, runs its kernel tests (every matmul vs the reference), then
# the whole model on the GPU (backend ops vs the CPU, stories260K's greedy tokens with all
# layers, split at several N and auto, the fallback after a real out-of-memory, the CPU-side
# placement tests, lowbit info / run --gpu-layers), then the GPU matmul benchmark.
#
#   bench/run_cuda.sh                # build + kernel tests + model checks + bench
#   QUICK=1 bench/run_cuda.sh        # fewer types and repetitions in the bench
#   SANITIZE=1 bench/run_cuda.sh     # also run a slice of the tests under compute-sanitizer
#   MODEL=0 bench/run_cuda.sh        # kernels only (no nlohmann-json/sentencepiece/... needed)
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

# The whole model on the GPU: needs the full library's dependencies (scripts/setup.sh installs
# them) and the shared test models next to the tree (../shared/models).
if [[ "${MODEL:-1}" == 1 ]]; then
  mbuild=${MODEL_BUILD_DIR:-$root/build-cuda-model}
  echo "== model on the GPU (full build in $mbuild)"
  if ! cmake -S "$root" -B "$mbuild" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CUDA=ON \
      -DLOWBIT_TESTS=ON -DLOWBIT_BENCH=OFF -DLOWBIT_CLI=ON -DCMAKE_CUDA_ARCHITECTURES="$archs" \
      >"$results/model_configure.log" 2>&1; then
    echo "model checks NOT RUN: configure failed (missing -dev packages? see $results/model_configure.log):"
    grep -m3 -iE "error|not found" "$results/model_configure.log"
    status=1
  elif ! cmake --build "$mbuild" -j"$jobs" --target lowbit_cuda test_backend test_runtime lowbit_cli \
      >"$results/model_build.log" 2>&1; then
    echo "model checks NOT RUN: build failed"; tail -30 "$results/model_build.log"
    status=1
  else
    # The test models: ../shared/models beside the tree, or shared/models inside it (a copy of
    # the tree taken to the GPU machine with the models in it), or $LOWBIT_MODELS_DIR.
    if [[ -z "${LOWBIT_MODELS_DIR:-}" ]]; then
      for d in "$root/../shared/models" "$root/shared/models"; do
        [[ -d "$d/stories260K" ]] && { export LOWBIT_MODELS_DIR=$(cd "$d" && pwd); break; }
      done
    fi
    [[ -d "${LOWBIT_MODELS_DIR:-/nonexistent}/stories260K" ]] || echo "warning: no models dir with stories260K: the model tests will fail"
    "$mbuild/lowbit" info | grep -E "^CUDA|^lowbit"
    echo "-- backend ops vs the CPU, the model on the GPU (tests/backend/cuda_backend_test.cc)"
    "$mbuild/tests/test_backend" >"$results/model_test.log" 2>&1 || status=1
    grep -E '^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]' "$results/model_test.log"
    grep -m1 -A1 ": Skipped" "$results/model_test.log" | tail -1
    grep -B2 -A12 "Failure" "$results/model_test.log" | head -60
    echo "-- placement, planner and fallback on the CPU (tests/runtime/placement_test.cc)"
    "$mbuild/tests/test_runtime" --gtest_filter='Placement*:Planner*:Fallback*' >"$results/placement_test.log" 2>&1 || status=1
    grep -E '^\[  (PASSED|FAILED) |^\[==========\]' "$results/placement_test.log"
    echo "-- lowbit run: CPU vs --gpu-layers all / 2 / auto (greedy; identical at fp32)"
    stories="$results/stories260K_f32"
    rm -rf "$stories"
    if "$mbuild/lowbit" convert "${LOWBIT_MODELS_DIR:-$root/../shared/models}/stories260K" "$stories" --bits 32 >/dev/null 2>&1; then
      cpu_text=$("$mbuild/lowbit" run "$stories" -p "Once upon a time" -n 64 --seed 1 2>/dev/null)
      for g in all 2 auto; do
        gpu_text=$("$mbuild/lowbit" run "$stories" -p "Once upon a time" -n 64 --seed 1 --gpu-layers $g 2>"$results/run_$g.err")
        if [[ "$gpu_text" == "$cpu_text" ]]; then echo "--gpu-layers $g: same text as the CPU ($(head -1 "$results/run_$g.err"))"
        else echo "--gpu-layers $g: DIFFERENT text"; echo " cpu: $cpu_text"; echo " gpu: $gpu_text"; cat "$results/run_$g.err"; status=1; fi
      done
    fi
    smol="${LOWBIT_MODELS_DIR:-$root/../shared/models}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [[ -f "$smol" ]]; then
      echo "-- SmolLM2 (4-bit, int8 activations on both: equal up to near-ties of the logits)"
      "$mbuild/lowbit" run "$smol" -p "The capital of France is" -n 32 --seed 1 2>/dev/null | sed 's/^/ cpu: /'
      "$mbuild/lowbit" run "$smol" -p "The capital of France is" -n 32 --seed 1 --gpu-layers all 2>&1 | sed 's/^/ gpu: /'
    fi
  fi
fi

echo "== benchmark"
bench_args=(--json "$results/cuda_bench.json")
[[ "${QUICK:-0}" == 1 ]] && bench_args+=(--quick)
"$build/cuda_matmul_bench" "${bench_args[@]}" 2>&1 | tee "$results/bench.log" || status=1
exit $status
