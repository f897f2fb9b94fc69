#!/usr/bin/env bash
# Stops the broker rabbitmq-up.sh started (same PREFTUNE_RMQ_PORT / PREFTUNE_RMQ_BASE), its private epmd, and deletes its
# state, unless PREFTUNE_RMQ_KEEP=1 (or PREFTUNE_KEEP_DATA=1): then rabbitmq-up.sh can start it again as it was.
set -uo pipefail
PORT=${PREFTUNE_RMQ_PORT:-55672}
BASE=${PREFTUNE_RMQ_BASE:-/tmp/preftune-rmq-$PORT}
[ -f "$BASE/env.sh" ] || exit 0
# shellcheck disable=SC1091
. "$BASE/env.sh"
# Graceful stop: SIGTERM to the node (pid in RABBITMQ_PID_FILE), which stops its applications in order and flushes
# its message stores ("SIGTERM received - shutting down" in its log), as `rabbitmqctl stop` does, without first
# booting a CLI VM (seconds on a loaded machine, while the broker keeps serving). Then wait until it has exited.
# Failing that, while its launcher still runs (e.g. a node still booting): `rabbitmqctl stop`, last kill the group.
NODE=$(cat "$RABBITMQ_PID_FILE" 2>/dev/null || true)
# (only a live Erlang VM: a stale pid file may name someone else's process)
if [ -n "$NODE" ] && [ "$(cat "/proc/$NODE/comm" 2>/dev/null)" = beam.smp ] && kill -TERM "$NODE" 2>/dev/null; then
  for _ in $(seq 1 300); do kill -0 "$NODE" 2>/dev/null || break; sleep 0.1; done
fi
LAUNCHER=$(cat "$BASE/launcher.pid" 2>/dev/null || true)
# (a launcher whose node has exited is a zombie until reaped: that is not running)
if [ -n "$LAUNCHER" ] && ps -o stat= -p "$LAUNCHER" 2>/dev/null | grep -q '^[^Z]'; then
  timeout 30 /usr/lib/rabbitmq/bin/rabbitmqctl -q stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || kill -- "-$LAUNCHER" 2>/dev/null
fi
# the node started its own epmd on ERL_EPMD_PORT, which outlives it: ask it to exit, else find it by its port
if ! epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1; then
  EPMD_PID=$(ss -ltnpH "sport = :$ERL_EPMD_PORT" 2>/dev/null | grep -o 'epmd",pid=[0-9]*' | head -1 | cut -d= -f2)
  [ -n "$EPMD_PID" ] && kill "$EPMD_PID"
fi
[ "${PREFTUNE_KEEP_DATA:-}" = 1 ] || [ "${PREFTUNE_RMQ_KEEP:-}" = 1 ] || rm -rf "$BASE"
exit 0
