#!/bin/bash
# Text of the kind a chat model sees: the model's own greedy answers to QUESTIONS (one per line),
# each turn in ChatML (SmolLM2's and Qwen2's template), written to OUT. To calibrate, `lowbit
# convert --calib-chat QUESTIONS` does this through the model's own template; this script writes
# held-out chat text to score with `lowbit eval --text` (docs/ACCURACY.md section 4).
# usage: scripts/chatml_calib_text.sh MODEL QUESTIONS OUT [TOKENS_PER_ANSWER]
# e.g. scripts/chatml_calib_text.sh f32 docs/calib/chat_calib_questions.txt chat.txt 200
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: $0 MODEL QUESTIONS OUT [TOKENS_PER_ANSWER]" >&2; exit 2; fi
model=$1 questions=$2 out=$3 n=${4:-200}
lowbit=${LOWBIT:-$(dirname "$0")/../build/lowbit}
[ -f "$questions" ] || { echo "$0: $questions: no such file" >&2; exit 2; }
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
while IFS= read -r q; do
  [ -n "$q" ] || continue
  prompt=$(printf '<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n' "$q")
  # `lowbit run --raw` prints the prompt, then the greedy continuation (a failure stops the script)
  turn=$("$lowbit" run "$model" --raw -p "$prompt" -n "$n" --temp 0)
  printf '%s<|im_end|>\n' "$turn" >> "$tmp"
done < "$questions"
mv "$tmp" "$out"
trap - EXIT
