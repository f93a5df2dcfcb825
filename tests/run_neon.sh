#!/usr/bin/env bash
# Cross-builds kernels/ and tests/kernels for aarch64 and runs test_kernels under qemu-user, so
# the NEON kernels are tested on an x86 machine. Needs: apt-get install g++-aarch64-linux-gnu
# qemu-user (and cmake, googletest's source in /usr/src/googletest: libgtest-dev or googletest).
#
# Two runs, one per integer-dot path of kernels/matmul_neon.cc:
#   -cpu max         has ASIMDDP: the SDOT path, plus every other kernel test (quantizers,
#                    formats, scalar matmul).
#   -cpu cortex-a53  armv8.0, no ASIMDDP: the widening-multiply path (NEON matmul cases and
#                    MatmulIsa.* only).
# Under qemu the test's own reference and tolerance loops dominate, so both runs leave out the
# scalar K=4096 cases and m32_k4096 (the whole type x group sweep stays, at every other m and K;
# m7_k4096 and MatmulIsa.SimdMatchesScalarIntegerPath, NEON against scalar at K=4096, keep long
# rows covered), and the quantizer's scale search at K=4096 (plain C++, no NEON; it stays at
# every shorter K and runs whole on x86). Before running, each CPU model's HWCAP is checked so a qemu that changed its
# models cannot quietly test one path twice. The two runs go at once, each mostly on one core.
# Exits non-zero on any failure; a few minutes on 2 idle cores, build included, and more on a slow
# shared host, hence the 20-minute default limit.
#
# Usage: tests/run_neon.sh [build-dir]   (default: build-neon in the repository root)
# JOBS sets the build parallelism (default 2); LOWBIT_NEON_TIMEOUT the limit in seconds on the
# whole script (default 1200), shared by the build and both runs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build-neon}
jobs=${JOBS:-2}
sysroot=/usr/aarch64-linux-gnu
deadline=$((SECONDS + ${LOWBIT_NEON_TIMEOUT:-1200}))
left() {  # seconds until the deadline, at least 1
  local s=$((deadline - SECONDS))
  echo $((s > 0 ? s : 1))
}

for tool in cmake aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64; do
  if ! command -v "$tool" >/dev/null; then
    echo "run_neon.sh: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user cmake)" >&2
    exit 2
  fi
done

cmake -S "$root" -B "$build" \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-aarch64.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DLOWBIT_KERNELS_ONLY=ON -DLOWBIT_CUDA=OFF
timeout "$(left)" cmake --build "$build" -j "$jobs" --target test_kernels

# Prints 1 when the CPU model reports ASIMDDP (dotprod) to user space, else 0.
probe=$build/hwcap_probe
if [[ ! -x $probe ]]; then
  aarch64-linux-gnu-gcc -O1 -x c -o "$probe" - <<'EOF'
#include <asm/hwcap.h>
#include <stdio.h>
#include <sys/auxv.h>
int main(void) { printf("%d\n", (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0); return 0; }
EOF
fi
expect_dotprod() {  # cpu, 0|1
  local got
  got=$(timeout 60 qemu-aarch64 -cpu "$1" -L "$sysroot" "$probe")
  if [[ $got != "$2" ]]; then
    echo "run_neon.sh: qemu -cpu $1 reports dotprod=$got, expected $2" >&2
    exit 1
  fi
}

run() {  # cpu, gtest filter, log file
  {
    echo "== qemu-aarch64 -cpu $1 test_kernels --gtest_filter=$2"
    env -u LOWBIT_ISA timeout "$(left)" qemu-aarch64 -cpu "$1" -L "$sysroot" "$build/tests/test_kernels" \
      --gtest_brief=1 --gtest_filter="$2"
  } > "$3" 2>&1
}

expect_dotprod max 1
expect_dotprod cortex-a53 0
# Both runs at once: under qemu each is mostly one thread.
run max '-*_k4096_scalar:*_m32_k4096_*:*_k4096_search' "$build/run_max.log" &
max_pid=$!
run cortex-a53 '*_neon:MatmulIsa.*-*_m32_k4096_*' "$build/run_a53.log" &
a53_pid=$!
failed=0
wait "$max_pid" || failed=1
wait "$a53_pid" || failed=1
cat "$build/run_max.log" "$build/run_a53.log"
if [ "$failed" -ne 0 ]; then
  echo "run_neon.sh: NEON kernel tests failed" >&2
  exit 1
fi
echo "run_neon.sh: NEON kernel tests passed (with and without dotprod)"
