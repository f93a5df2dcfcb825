#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (sm_80 or sm_90) and nvcc: every device check of
# issue 18, from one build.
#  1. The CUDA kernels: every matmul type x M x K vs the reference (tests/kernels/cuda_test.cc).
#  2. The model on the GPU: the backend's ops vs the CPU backend, stories260K's greedy tokens
#     with all layers on the GPU, split at 1 and 3 and auto, the fallback after a real
#     out-of-memory (tests/backend/cuda_backend_test.cc); the placement/planner/fallback tests
#     on the CPU (tests/runtime/placement_test.cc); `lowbit info`; `lowbit run --gpu-layers`
#     all / 2 / auto against the CPU's text (fp32: identical), and SmolLM2 (4-bit) side by side.
#  3. The GPU matmul benchmark (bench/README.md).
#
#   bench/run_cuda.sh                # all of it
#   QUICK=1 bench/run_cuda.sh        # fewer types and repetitions in the bench
#   BENCH=0 bench/run_cuda.sh        # no benchmark
#   KERNELS=0 bench/run_cuda.sh      # skip the kernel tests (1.)
#   MODEL=0 bench/run_cuda.sh        # kernels only: no nlohmann-json/sentencepiece/... needed
#   WHOLE=0 bench/run_cuda.sh        # no TinyLlama-shaped whole-model run (TL_MODEL=DIR: use that model)
#   SANITIZE=1 bench/run_cuda.sh     # also run a slice of the kernel tests under compute-sanitizer
#   PREBUILT=.cuda-checks bench/run_cuda.sh   # binaries packed by bench/pack_cuda_checks.sh on
#                                    # another machine: no build here (falls back to one if
#                                    # they do not run here)
#
# The build is the full library when its dependencies are there (scripts/setup.sh installs
# them), else the kernels alone (-DLOWBIT_KERNELS_ONLY=ON), and the model checks say they did not
# run. The test models are found at $LOWBIT_MODELS_DIR, ../shared/models beside the tree, or
# shared/models inside it.
# Environment: BUILD_DIR (default build-cuda-run), CUDA_ARCHS (default: the GPU's own, from
# nvidia-smi, else "80;90"), RESULTS_DIR (default BUILD_DIR) for the logs and bench JSON,
# JOBS (default nproc), STEP_TIMEOUT (seconds per program, default 900), LOWBIT_CMAKE_ARGS (extra cmake arguments, e.g. ccache launchers).
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

full=0
have_tests=1
pre=${PREBUILT:-}
if [[ -n "$pre" ]]; then
  pre=$(cd "$pre" && pwd)
  export LD_LIBRARY_PATH="$pre/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LOWBIT_CUDA_LIB="$pre/liblowbit_cuda.so"
  [[ -z "${LOWBIT_MODELS_DIR:-}" && -d "$pre/models" ]] && export LOWBIT_MODELS_DIR="$pre/models"
  if "$pre/lowbit" info >"$results/prebuilt_check.log" 2>&1 && "$pre/tests/test_backend" --gtest_list_tests >/dev/null 2>&1; then
    echo "== prebuilt binaries from $pre"
    bin=$pre
    full=1
  else
    echo "prebuilt binaries do not run here ($(head -2 "$results/prebuilt_check.log" | tr '\n' ' ')); building from source"
    pre=
  fi
fi
if [[ -z "$pre" ]]; then
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  configure() {
    rm -f "$build/CMakeCache.txt"
    cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CUDA=ON ${LOWBIT_CMAKE_ARGS:-} \
      -DCMAKE_CUDA_ARCHITECTURES="$archs" "$@" >"$results/configure.log" 2>&1
  }
  if [[ "${MODEL:-1}" != 0 ]] && configure -DLOWBIT_TESTS=ON -DLOWBIT_BENCH=OFF -DLOWBIT_CLI=ON; then
    full=1
  elif configure -DLOWBIT_KERNELS_ONLY=ON -DLOWBIT_TESTS=ON; then
    [[ "${MODEL:-1}" != 0 ]] && echo "model checks NOT RUN: the full library does not configure here (missing -dev packages?)"
  else
    echo "configure with tests failed (GoogleTest missing?), see $results/configure.log; building without tests"
    have_tests=0
    configure -DLOWBIT_KERNELS_ONLY=ON -DLOWBIT_TESTS=OFF || { cat "$results/configure.log"; exit 1; }
  fi

  targets=(lowbit_cuda cuda_matmul_bench)
  ((have_tests)) && targets+=(test_kernels)
  ((full)) && targets+=(test_backend test_runtime lowbit_cli)
  echo "== build (${targets[*]})"
  if ! cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$results/build.log" 2>&1; then
    tail -50 "$results/build.log"
    exit 1
  fi
  bin=$build
fi

status=0
# Every program below runs under a time limit, so that one hung kernel costs its step, not the
# lease (a device machine is lent for minutes).
step_limit=${STEP_TIMEOUT:-900}
t() { timeout -k 5 "$step_limit" "$@"; }
# The summary of a GoogleTest log, each failure, and the reason for skips (one line: they share it).
summary() {
  grep -E '^\[==========\]|^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]' "$1"
  grep -m1 -A1 ": Skipped" "$1" | tail -1
  grep -B2 -A12 "Failure$" "$1" | head -60
}

if ((have_tests)) && [[ "${KERNELS:-1}" != 0 ]]; then
  echo "== kernel tests (CUDA vs the reference; the CPU matmul tests too)"
  t "$bin/tests/test_kernels" --gtest_filter='*Cuda*:*Matmul*' >"$results/test.log" 2>&1 || status=1
  summary "$results/test.log"
  grep -m1 "CUDA device 0:" "$results/test.log"
  if [[ "${SANITIZE:-0}" == 1 ]] && command -v compute-sanitizer >/dev/null; then
    echo "== compute-sanitizer (memcheck, racecheck) on a slice"
    slice='*CudaMatmul*q4_g32_asym_m7_k172*:*CudaMatmul*q1_row_sym_m32_k172*:*CudaMatmul*q8_g256_asym_m100_k64*:*CudaMatmul*f16_m3_k172*'
    for tool in memcheck racecheck; do
      t compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin/tests/test_kernels" --gtest_filter="$slice" \
        >"$results/sanitize_$tool.log" 2>&1 && echo "$tool: clean" || { echo "$tool: FAILED (see $results/sanitize_$tool.log)"; status=1; }
    done
  fi
fi

if ((full)); then
  echo "== the model on the GPU"
  if [[ -z "${LOWBIT_MODELS_DIR:-}" ]]; then
    for d in "$root/../shared/models" "$root/shared/models"; do
      [[ -d "$d/stories260K" ]] && { export LOWBIT_MODELS_DIR=$(cd "$d" && pwd); break; }
    done
  fi
  models=${LOWBIT_MODELS_DIR:-$root/../shared/models}
  [[ -d "$models/stories260K" ]] || echo "warning: no stories260K in $models: the model tests will fail"
  "$bin/lowbit" info | grep -E "^CUDA|^lowbit"
  echo "-- backend ops vs the CPU backend, the whole model on the GPU (tests/backend)"
  t "$bin/tests/test_backend" >"$results/model_test.log" 2>&1 || status=1
  summary "$results/model_test.log"
  echo "-- placement, planner and fallback on the CPU (tests/runtime/placement_test.cc)"
  t "$bin/tests/test_runtime" --gtest_filter='Placement*:Planner*:Fallback*' >"$results/placement_test.log" 2>&1 || status=1
  summary "$results/placement_test.log"
  echo "-- lowbit run: the CPU's text vs --gpu-layers all / 2 / auto (stories260K fp32, greedy: identical)"
  stories="$results/stories260K_f32"
  rm -rf "$stories"
  if t "$bin/lowbit" convert "$models/stories260K" "$stories" --bits 32 >"$results/convert.log" 2>&1; then
    cpu_text=$(t "$bin/lowbit" run "$stories" -p "Once upon a time" -n 64 2>/dev/null)
    for g in all 2 auto; do
      gpu_text=$(t "$bin/lowbit" run "$stories" -p "Once upon a time" -n 64 --gpu-layers $g 2>"$results/run_$g.err")
      if [[ -n "$gpu_text" && "$gpu_text" == "$cpu_text" ]]; then
        echo "--gpu-layers $g: the CPU's text ($(grep -m1 "lowbit run: layers" "$results/run_$g.err"))"
      else
        echo "--gpu-layers $g: DIFFERENT from the CPU"; echo " cpu: $cpu_text"; echo " gpu: $gpu_text"
        head -5 "$results/run_$g.err"; status=1
      fi
    done
  else
    echo "stories260K did not convert: $(tail -1 "$results/convert.log")"; status=1
  fi
  smol="$models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [[ -f "$smol" ]]; then
    echo "-- SmolLM2-135M Q4_1, greedy, CPU then --gpu-layers all (int8 activations on both: equal up to near-ties)"
    t "$bin/lowbit" run "$smol" --raw -p "The capital of France is" -n 32 2>/dev/null | sed 's/^/ cpu: /'
    t "$bin/lowbit" run "$smol" --raw -p "The capital of France is" -n 32 --gpu-layers all 2>&1 | sed 's/^/ gpu: /'
  fi
fi

# The whole model on the GPU at a real size: TinyLlama-1.1B's shape with random weights (written
# here by tests/tools/make_hf_model.py from the carried config; python3 with numpy), converted to
# 4 bits, greedy text CPU vs GPU (int8 activations on both: equal up to near-ties), then decode
# at batch 1 and 16 on the GPU and on all the host's cores.
if ((full)) && [[ "${WHOLE:-1}" != 0 ]]; then
  echo "== whole model, TinyLlama-1.1B shape, 4 bits"
  shared=${LOWBIT_SHARED_DIR:-}
  [[ -z "$shared" && -n "$pre" && -d "$pre/models/configs" ]] && shared=$pre
  tl="$results/tinyllama"
  if [[ -z "${TL_MODEL:-}" ]]; then
    rm -rf "$tl" && mkdir -p "$tl"
    if LOWBIT_SHARED_DIR=${shared:-$root/../shared} t python3 "$root/tests/tools/make_hf_model.py" "$tl/hf" \
         --config tinyllama-1.1b-chat-v1.0 --dtype F16 >"$results/tl_make.log" 2>&1 &&
       t "$bin/lowbit" convert "$tl/hf" "$tl/q4" --bits 4 --quantizer rtn >"$results/tl_convert.log" 2>&1; then
      rm -rf "$tl/hf"
      TL_MODEL="$tl/q4"
    else
      echo "TinyLlama shape NOT RUN: $(tail -1 "$results/tl_make.log" "$results/tl_convert.log" 2>/dev/null | tr '\n' ' ')"
    fi
  fi
  if [[ -n "${TL_MODEL:-}" ]]; then
    cpu_text=$(t "$bin/lowbit" run "$TL_MODEL" -p "Once upon a time" -n 24 --threads "$jobs" 2>/dev/null | od -An -tx1 | tr -d ' \n')
    gpu_text=$(t "$bin/lowbit" run "$TL_MODEL" -p "Once upon a time" -n 24 --gpu-layers all 2>"$results/tl_run.err" | od -An -tx1 | tr -d ' \n')
    [[ -n "$gpu_text" && "$gpu_text" == "$cpu_text" ]] && echo "greedy 24 tokens: the CPU's bytes" ||
      { echo "greedy 24 tokens: DIFFERENT (near-tie or fault)"; echo " cpu: $cpu_text"; echo " gpu: $gpu_text"; head -3 "$results/tl_run.err"; }
    for p in 0 16; do
      par=(); ((p)) && par=(--parallel "$p")
      echo "-- gpu, ${par[*]:-batch 1}"; t "$bin/lowbit" bench model "$TL_MODEL" --prompt-len 128 --gen-len 64 --reps 2 --gpu-layers all "${par[@]}" 2>&1 | tail -2
      echo "-- cpu ($jobs threads), ${par[*]:-batch 1}"; t "$bin/lowbit" bench model "$TL_MODEL" --prompt-len 128 --gen-len 32 --reps 1 --threads "$jobs" "${par[@]}" 2>&1 | tail -2
    done
  fi
fi

if [[ "${BENCH:-1}" != 0 ]]; then
  echo "== benchmark"
  bench_args=(--json "$results/cuda_bench.json")
  [[ "${QUICK:-0}" == 1 ]] && bench_args+=(--quick)
  t "$bin/cuda_matmul_bench" "${bench_args[@]}" 2>&1 | tee "$results/bench.log" || status=1
fi
exit $status
