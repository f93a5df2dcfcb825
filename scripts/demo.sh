#!/usr/bin/env bash
# The main job: convert a HuggingFace model, generate text, and print the accuracy table.
#   bash scripts/demo.sh [HF_DIR] [PROMPT]
# HF_DIR defaults to ../shared/models/stories260K. Outputs go to out/<model name>/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HF="${1:-$ROOT/../shared/models/stories260K}"
PROMPT="${2:-Once upon a time}"
TEXT="${LOWBIT_TEXT:-$ROOT/../shared/corpus/tinystories_sample.txt}"
bash "$ROOT/scripts/setup.sh" cli  # builds only the CLI: the tests are scripts/test.sh's
cd "$ROOT"
NAME="$(basename "$(cd "$HF" && pwd)")"
OUT="out/$NAME"
mkdir -p "$OUT"
LB=build/lowbit
echo "== lowbit info"
$LB info
echo "== convert $HF at fp32 (reference) and 4 bits (groups of 32)"
$LB convert "$HF" "$OUT/f32" --bits 32 --force
$LB convert "$HF" "$OUT/q4" --bits 4 --group 32 --force
echo "== generate (4-bit)"
$LB run "$OUT/q4" -p "$PROMPT" -n 128
echo "== accuracy: 8/4/2/1 bits x groups x quantizers against fp32 on $(basename "$TEXT")"
$LB eval --sweep "$HF" --text "$TEXT" --max-tokens 4000 --json "$OUT/sweep.json" --plot "$OUT/sweep.png"
