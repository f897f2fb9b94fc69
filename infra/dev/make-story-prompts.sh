#!/usr/bin/env bash
# How experiments/prompts/story-endings.jsonl was made: stories260K tells 120 stories from "Once upon a time" (seed 7,
# up to 480 new tokens, ending on BOS = 1); of those that ended within 300 tokens, the first 16 lose their last 1, 2, 3
# or 4 sentences (in turn), and what is left is a prompt. The model then finishes each story: its reference lengths run
# from 0 (the story could end right there) to the 128-token cap, so a length reward has room on both sides.
# Usage: bash infra/dev/make-story-prompts.sh MODEL_DIR > prompts.jsonl   (needs python3)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model=${1:?usage: make-story-prompts.sh MODEL_DIR (a stories260K Hugging Face directory)}
"$root/preftune" generate "$model" --prompt "Once upon a time" --samples 120 --max-new-tokens 480 --seed 7 --stop-ids 1 --json \
  | python3 -c '
import json, re, sys
samples = json.load(sys.stdin)["samples"]
stories = [s for s in samples if s["finish_reason"] == "stop" and len(s["ids"]) <= 300][:16]
for i, s in enumerate(stories):
    sentences = re.split(r"(?<=[.!?\"])\s+", ("Once upon a time" + s["text"]).strip())
    tail = 1 + i % 4
    if len(sentences) <= tail + 1: tail = 1
    print(json.dumps({"prompt": " ".join(sentences[:-tail])}, ensure_ascii=False))
'
