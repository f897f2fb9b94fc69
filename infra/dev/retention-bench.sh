#!/usr/bin/env bash
# The README's retention figures: data-folder bytes (du -sb) of a fresh data folder, after one 300-step,
# one-method bandit run, and after `preftune prune`. Uses a throwaway data folder (its embedded PostgreSQL
# is stopped and the folder deleted at the end). Usage: bash infra/dev/retention-bench.sh [CHECKPOINT_EVERY]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/preftune-retention-XXXXXX)
chmod 755 "$WORK"   # the postgres user must reach the data folder, or the cluster moves out of it (and out of du)
export PREFTUNE_DATAFOLDER="$WORK/data"
unset PREFTUNE_DATABASE PREFTUNE_BROKER PREFTUNE_CHECKPOINTS
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  if [ -n "$PGBIN" ] && [ -f "$PREFTUNE_DATAFOLDER/postgres/data/postmaster.pid" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$PREFTUNE_DATAFOLDER/postgres/data" -m fast -w -t 30 stop >/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cat > "$WORK/bench.yaml" <<EOF
name: retention-bench
seeds: [1]
task: {kind: bandit, bandit: {reward_center: 70}}
loop: {B: 10, C: 10, M: 10, T: 1, gradient_steps: 300, learning_rate: 0.01, checkpoint_every: ${1:-100}}
methods:
  - {name: reinforce, data: online}
EOF
bytes() { du -sb "$PREFTUNE_DATAFOLDER" | cut -f1; }
"$ROOT/preftune" runs >/dev/null
empty=$(bytes)
"$ROOT/preftune" run "$WORK/bench.yaml" --output "$WORK/out" >/dev/null
run=$(bytes)
"$ROOT/preftune" prune
pruned=$(bytes)
echo "data folder: empty $empty bytes; after the run $run (+$((run - empty))); after prune $pruned (+$((pruned - empty)))"
