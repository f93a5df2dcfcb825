#!/usr/bin/env python3
"""What the Python module's kept chat session saves a conversation: one scripted conversation of
--turns user messages through Model.chat (greedy, --tokens per reply) on one Model, whose session
continues from turn to turn, against the same turns each on a freshly cleared session (a second
Model, given a one-token chat in between, so it holds nothing of the conversation), alternated
--reps times; per turn, the prompt's tokens, the tokens read, and the prompt time, median over
the repetitions. Both answer token for token alike (python/tests/test_models.py checks it); the
fresh one still finds the template's system message of its one-token chat (a few tokens).

    .venv/bin/python bench/python_chat.py [--model PATH] [--turns 8] [--tokens 64] [--threads 2] [--reps 3]
"""

import argparse
import pathlib
import statistics

import lowbit

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
QUESTIONS = ["Tell me about the city of Lyon.", "What is it famous for?", "How old is it?",
             "What should I eat there?", "Which museums should I visit?", "How do I get there from Paris?",
             "What is the weather like in spring?", "Summarize what you told me."]


def conversation(model, turns, tokens, clear=None):
    messages, out = [], []
    for q in (QUESTIONS * 4)[:turns]:
        messages.append({"role": "user", "content": q})
        if clear is not None:
            clear()
        r = model.chat(messages, max_tokens=tokens)
        messages.append({"role": "assistant", "content": str(r)})
        out.append((r.prompt_tokens, r.prompt_tokens - r.cached_tokens, r.prompt_seconds))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    kept = lowbit.Model(a.model, threads=a.threads)
    fresh = lowbit.Model(a.model, threads=a.threads)

    def clear():  # a one-token chat leaves fresh's session holding only its own short prompt
        fresh.chat([{"role": "user", "content": "."}], max_tokens=1)

    runs = {"kept": [], "fresh": []}
    for _ in range(a.reps):
        runs["kept"].append(conversation(kept, a.turns, a.tokens))
        runs["fresh"].append(conversation(fresh, a.turns, a.tokens, clear))
    print("| turn | prompt tokens | read: kept / fresh | prompt ms, kept | prompt ms, fresh | fresh / kept |")
    print("|---|---|---|---|---|---|")
    for t in range(a.turns):
        k = statistics.median(r[t][2] for r in runs["kept"]) * 1e3
        f = statistics.median(r[t][2] for r in runs["fresh"]) * 1e3
        print(f"| {t + 1} | {runs['kept'][0][t][0]} | {runs['kept'][0][t][1]} / {runs['fresh'][0][t][1]} | "
              f"{k:.1f} | {f:.1f} | {f / k:.1f}x |")


if __name__ == "__main__":
    main()
