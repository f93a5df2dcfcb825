#!/usr/bin/env bash
# Installs what lowbit needs on a fresh Debian 12 machine (apt-get for -dev packages, a Python
# virtual environment in .venv for the Python packages) and builds it into build/.
#   bash scripts/setup.sh       everything: library, CLI, tests, benchmarks, CUDA plugin (test.sh)
#   bash scripts/setup.sh cli   only what scripts/demo.sh runs: the lowbit CLI, with the packages
#                               it needs (no test or cross-build toolchains, no tests to compile)
# Safe to run again (skips what is there). Both keep the same compile settings for the library,
# so `cli` then the full setup reuses every object already built.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE="${1:-all}"
case "$MODE" in
  all | cli) ;;
  *) echo "usage: bash scripts/setup.sh [cli]" >&2; exit 2 ;;
esac

# The library and CLI (libcli11-dev: the CLI's argument parser, header-only; libcpp-httplib-dev:
# the HTTP server of `lowbit serve`; ccache: a rebuild, and test.sh's second compile of the same
# objects by `pip install .`, take the objects already compiled).
APT_PACKAGES=(cmake g++ pkg-config python3-venv nlohmann-json3-dev libsentencepiece-dev libpcre2-dev
  libxxhash-dev libcli11-dev libcpp-httplib-dev ccache)
PIP_PACKAGES=(matplotlib)  # lowbit eval --plot
if [ "$MODE" = all ]; then
  # Tests and benchmarks, the Python package, the aarch64 cross build run under qemu, the fuzzers.
  APT_PACKAGES+=(libgtest-dev libbenchmark-dev libeigen3-dev libxsimd-dev pybind11-dev
    g++-aarch64-linux-gnu qemu-user clang libclang-rt-14-dev)
  # ollama, openai: the official clients the server tests drive; jinja2: the chat-template reference;
  # jsonschema: the reference validator of structured outputs (pydantic: the models they are written as).
  # pytest-xdist: the Python tests run one file per core (most of them wait on a lowbit process).
  PIP_PACKAGES+=(numpy sentencepiece tokenizers safetensors pytest pytest-xdist gguf transformers protobuf
    ollama openai jinja2 jsonschema pydantic)
fi
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
# Installed when any distribution is missing (asked by distribution name, as pip knows them).
.venv/bin/python -c "import importlib.metadata as m, sys; [m.version(p) for p in sys.argv[1:]]" \
  "${PIP_PACKAGES[@]}" 2>/dev/null || .venv/bin/pip install -q "${PIP_PACKAGES[@]}"

echo "== build (build/, $MODE)"
if [ "$MODE" = cli ]; then
  FEATURES=(-DLOWBIT_TESTS=OFF -DLOWBIT_BENCH=OFF)
  TARGETS=(--target lowbit_cli)
else
  FEATURES=(-DLOWBIT_TESTS=ON -DLOWBIT_BENCH=ON)
  TARGETS=()
fi
# The compiler cache is .ccache/ in the checkout. Paths under the repository reach ccache relative
# to the build directory (CCACHE_BASEDIR), so a build directory beside build/ (test.sh's build-pip/)
# hits the same entries.
LAUNCHER="env;CCACHE_BASEDIR=$ROOT;CCACHE_DIR=$ROOT/.ccache;ccache"
mkdir -p build && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${FEATURES[@]}" \
  "-DCMAKE_CXX_COMPILER_LAUNCHER=$LAUNCHER" ${LOWBIT_CMAKE_ARGS:-} \
  > build/configure.log 2>&1 || { cat build/configure.log; exit 1; }
grep -A8 "lowbit .* configuration" build/configure.log || true
cmake --build build -j"$(nproc)" "${TARGETS[@]}"
