#!/usr/bin/env bash
# Every test: the GoogleTest suites (ctest, in parallel), the NEON kernels cross-built and run
# under qemu, the fuzzers for a bounded time, the Python tests (reference tokenizers, numpy
# forward, the Python package built by pip install .), and an accuracy validation with gates.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export LOWBIT_BIN="$ROOT/build/lowbit"
start=$(date +%s)
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
.venv/bin/python -m pytest -q tests/python

step "Python package: pip install . and its tests"
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/pip install -q .
.venv/bin/python -m pytest -q python/tests

echo
echo "== all tests passed ($(( $(date +%s) - start )) s)"
