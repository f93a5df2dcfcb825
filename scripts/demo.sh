#!/usr/bin/env bash
# The main job: take a model (GGUF file, HF directory or lowbit manifest), convert it, continue
# a plain prompt, answer a question in the model's chat template, and print the accuracy table of lowbit's bit widths
# against the model's own fp32 weights.
#   bash scripts/demo.sh [MODEL] [PROMPT]
# MODEL defaults to ../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf (a real,
# instruction-tuned 135M Llama); ../shared/models/stories260K is a tiny one. Outputs: out/<name>/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="${1:-$ROOT/../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}"
PROMPT="${2:-Once upon a time}"
TEXT="${LOWBIT_TEXT:-$ROOT/../shared/corpus/tinystories_sample.txt}"
[ -e "$MODEL" ] || { echo "demo: $MODEL: no such file or directory" >&2; exit 2; }
bash "$ROOT/scripts/setup.sh" cli  # builds only the CLI: the tests are scripts/test.sh's
MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"
cd "$ROOT"
NAME="$(basename "$MODEL" .gguf)"
OUT="out/$NAME"
mkdir -p "$OUT"
LB=build/lowbit
echo "== lowbit info $MODEL"
$LB info "$MODEL"

if [ -f "$MODEL/manifest.json" ]; then
  RUN="$MODEL"  # already converted: run it as it is
else
  # A GGUF keeps its own types (no --bits); an HF directory gets 4 bits in groups of 32.
  echo "== convert to $OUT/model"
  $LB convert "$MODEL" "$OUT/model" --force
  RUN="$OUT/model"
fi
echo "== continue text (greedy, --raw: no chat template)"
$LB run "$RUN" --raw -p "$PROMPT" -n 96 --ctx 1024
echo "== one chat turn (the model's own chat template; a model without one continues the text)"
$LB run "$RUN" --ctx 1024 -n 96 "Write one sentence about the sea."

if [ -f "$MODEL/manifest.json" ]; then
  exit 0  # the sweep needs the source weights
fi
echo "== accuracy: lowbit's bit widths against the model's own fp32 weights on $(basename "$TEXT")"
$LB eval --sweep "$MODEL" --text "$TEXT" --bits 8,4,2 --groups 32,128 --quantizers rtn --max-tokens 512 \
  --json "$OUT/sweep.json" --plot "$OUT/sweep.png"
