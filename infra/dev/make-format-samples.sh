#!/usr/bin/env bash
# How experiments/data/stories-*.jsonl were made: the lm-stories-length experiment's reference (stories260K) answers
# its 16 story endings 4 times each (preference-data, seed 1, Min Length's gold rule: shorter preferred), and the first
# 12 pairs are written in every format `preftune data` reads (data --convert). Small files PrefTune wrote itself, so that
# every reader and recipe has data here; the responses are the model's, the preferences the gold rule's.
# Usage: bash infra/dev/make-format-samples.sh OUT_DIR   (OUT_DIR must not exist; a throwaway data folder is used)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out=${1:?usage: make-format-samples.sh OUT_DIR}
[ ! -e "$out" ] || { echo "$out exists; nothing is ever overwritten" >&2; exit 2; }
work=$(mktemp -d)
trap '"$root/preftune" db stop --data "$work/data" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$root/preftune" preference-data "$root/experiments/lm-stories-length.yaml" --output "$work/pairs" --responses 4 --seed 1 --data "$work/data" >/dev/null
mkdir -p "$out"
for format in relabeled trl-standard trl-conversational prompt-only alpacafarm ultrafeedback anthropic-hh; do
  "$root/preftune" data "$work/pairs/pairs.jsonl" --convert "$format" --limit 12 --output "$out/stories-$format.jsonl" --rows 0 >/dev/null
done
ls "$out"
