#!/usr/bin/env bash
# Packs what bench/run_cuda.sh needs to run the device checks without building there: the test
# binaries, `lowbit`, the CUDA plugin and the GPU benchmark from a build tree made here (with
# nvcc and -DLOWBIT_CUDA=ON; sm_80 and sm_90 by default), the shared libraries they use that a
# CUDA image may lack (sentencepiece, pcre2, xxhash), the stories260K test model and TinyLlama's
# config (run_cuda.sh's whole-model run). A GPU
# machine given a copy of the tree runs them with PREBUILT=<dir> bench/run_cuda.sh; where the
# image has the -dev packages, run_cuda.sh builds from source instead.
#
#   bench/pack_cuda_checks.sh [BUILD_DIR (default build)] [OUT (default .cuda-checks)]
#
# The build needs the targets: cmake --build BUILD_DIR --target lowbit_cuda cuda_matmul_bench
# test_kernels test_backend test_runtime lowbit_cli. OUT is ignored by git (.gitignore).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$root/.cuda-checks}
models=${LOWBIT_MODELS_DIR:-$root/../shared/models}
rm -rf "$out"
mkdir -p "$out/tests" "$out/lib" "$out/models"
for f in lowbit liblowbit_cuda.so cuda_matmul_bench; do cp "$build/$f" "$out/"; done
for t in test_kernels test_backend test_runtime; do cp "$build/tests/$t" "$out/tests/"; done
# The non-system libraries the binaries link (the C++ runtime and libc are the image's own).
for lib in $(ldd "$build/lowbit" "$build/tests/test_backend" | awk '/=>/ {print $3}' | sort -u); do
  case "$(basename "$lib")" in
    libsentencepiece* | libpcre2* | libxxhash* | libprotobuf*) cp -L "$lib" "$out/lib/" ;;
  esac
done
cp -r "$models/stories260K" "$out/models/"
# The config and tokenizer run_cuda.sh writes the TinyLlama-shaped model from.
mkdir -p "$out/models/configs" && cp -r "$models/configs/tinyllama-1.1b-chat-v1.0" "$out/models/configs/"
du -sh "$out"
