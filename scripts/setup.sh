#!/usr/bin/env bash
# Installs what lowbit needs on a fresh Debian 12 machine (apt-get for -dev packages, a Python
# virtual environment in .venv for the Python packages) and builds it into build/.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (skips what is there).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(cmake g++ pkg-config python3-venv nlohmann-json3-dev libsentencepiece-dev libpcre2-dev
  libxxhash-dev libgtest-dev libbenchmark-dev libeigen3-dev libxsimd-dev pybind11-dev
  g++-aarch64-linux-gnu qemu-user clang libclang-rt-14-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "== python venv .venv"
  python3 -m venv .venv
fi
.venv/bin/python -c "import numpy, sentencepiece, tokenizers, safetensors, pytest, matplotlib, transformers, gguf, google.protobuf" 2>/dev/null ||
  .venv/bin/pip install -q numpy sentencepiece tokenizers safetensors pytest matplotlib transformers gguf protobuf

echo "== build (build/)"
mkdir -p build && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${LOWBIT_CMAKE_ARGS:-} > build/configure.log 2>&1 || {
  cat build/configure.log; exit 1; }
grep -A8 "lowbit .* configuration" build/configure.log || true
cmake --build build -j"$(nproc)"
