#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (sanitizers on) and runs each for a bounded time from
# its committed seed corpus, as many at once as there are cores. New inputs go to scratch
# directories, so the seeds stay as they are.
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]   (default 45)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
secs=${1:-45}
build=$root/build-fuzz
mkdir -p "$build"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOWBIT_FUZZ=ON \
  -DLOWBIT_TESTS=OFF -DLOWBIT_BENCH=OFF -DLOWBIT_CLI=OFF -DLOWBIT_CUDA=OFF > "$build/build.log" 2>&1 || {
  cat "$build/build.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target safetensors_fuzz manifest_fuzz gguf_fuzz jinja_fuzz serve_request_fuzz \
  modelfile_fuzz \
  >> "$build/build.log" 2>&1 || { tail -50 "$build/build.log"; exit 1; }
# One target per core at a time: each fuzzer is one process on one core.
fuzz() {  # target: runs it, its stats to $build/log_<target>
  local target=$1 scratch=$build/scratch_$1
  mkdir -p "$scratch"
  "$build/tests/fuzz/${target}_fuzz" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$build/crash_${target}_" "$scratch" "$root/tests/fuzz/corpus_$target" 2>&1 |
    grep -E "^(stat::number_of_executed_units|stat::peak_rss|==|SUMMARY|.*ERROR)" > "$build/log_$target" || true
}
targets=(safetensors manifest gguf jinja serve_request modelfile)
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n || true; done
  fuzz "$target" &
done
wait
failed=0
for target in "${targets[@]}"; do
  echo "fuzzed $target for ${secs}s"
  cat "$build/log_$target"
  if ls "$build"/crash_${target}_* >/dev/null 2>&1; then
    echo "fuzz/$target: crash inputs in $build/crash_${target}_*" >&2
    failed=1
  fi
done
exit "$failed"
