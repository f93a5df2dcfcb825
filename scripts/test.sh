#!/usr/bin/env bash
# Every test: the GoogleTest suites (ctest, in parallel), the NEON kernels cross-built and run
# under qemu, the fuzzers for a bounded time, the Python tests (reference tokenizers, numpy
# forward, the Python package built by pip install .), and an accuracy validation with gates.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
began=$(date +%s)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export LOWBIT_BIN="$ROOT/build/lowbit"
start=$(date +%s)  # stage times below count from here, after setup
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "GoogleTest suites"
(cd build && ctest -j"$(nproc)" --output-on-failure --timeout 900)

step "NEON kernels under qemu-aarch64"
bash tests/run_neon.sh

step "fuzzers (bounded)"
bash tests/fuzz/run.sh "${LOWBIT_FUZZ_SECONDS:-45}"

step "accuracy validation with gates (stories260K)"
bash tests/validate_accuracy.sh

step "Python tests (reference tokenizers, numpy forward, eval CLI)"
.venv/bin/python -m pytest -q -n "$(nproc)" --dist loadfile tests/python

step "Python package: pip install . and its tests"
# The wheel's library objects are build/'s (same compiler, flags and sources): with build/'s
# compiler and launcher, in build-pip/ beside it, ccache returns them instead of compiling the
# library a second time (-D flags differ, CUDA off, so they hit in its preprocessor mode).
cache_value() { sed -n "s/^$1:[A-Z]*=//p" build/CMakeCache.txt; }
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/pip install -q . -C build-dir=build-pip \
  -C "cmake.define.CMAKE_CXX_COMPILER=$(cache_value CMAKE_CXX_COMPILER)" \
  -C "cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=$(cache_value CMAKE_CXX_COMPILER_LAUNCHER)"
.venv/bin/python -m pytest -q python/tests

echo
echo "== all tests passed ($(( $(date +%s) - start )) s; $(( $(date +%s) - began )) s with setup)"
