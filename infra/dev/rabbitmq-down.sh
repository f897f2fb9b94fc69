#!/usr/bin/env bash
# Stops the broker rabbitmq-up.sh started (same PREFTUNE_RMQ_PORT / PREFTUNE_RMQ_BASE), its private epmd, and deletes its
# state, unless PREFTUNE_RMQ_KEEP=1 (or PREFTUNE_KEEP_DATA=1): then rabbitmq-up.sh can start it again as it was.
set -uo pipefail
PORT=${PREFTUNE_RMQ_PORT:-55672}
BASE=${PREFTUNE_RMQ_BASE:-/tmp/preftune-rmq-$PORT}
[ -f "$BASE/env.sh" ] || exit 0
# shellcheck disable=SC1091
. "$BASE/env.sh"
# graceful stop waits until the node (pid in RABBITMQ_PID_FILE) has exited; else kill the launcher's group
if ! timeout 30 /usr/lib/rabbitmq/bin/rabbitmqctl -q stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1; then
  LAUNCHER=$(cat "$BASE/launcher.pid" 2>/dev/null || true)
  [ -n "$LAUNCHER" ] && kill -- "-$LAUNCHER" 2>/dev/null
fi
# the node started its own epmd on ERL_EPMD_PORT, which outlives it: ask it to exit, else find it by its port
if ! epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1; then
  EPMD_PID=$(ss -ltnpH "sport = :$ERL_EPMD_PORT" 2>/dev/null | grep -o 'epmd",pid=[0-9]*' | head -1 | cut -d= -f2)
  [ -n "$EPMD_PID" ] && kill "$EPMD_PID"
fi
[ "${PREFTUNE_KEEP_DATA:-}" = 1 ] || [ "${PREFTUNE_RMQ_KEEP:-}" = 1 ] || rm -rf "$BASE"
exit 0
