#!/usr/bin/env bash
# Stops services start.sh started: SIGTERM to the process group (the host stops its bus politely), SIGKILL after
# PREFTUNE_SERVICE_STOP_SECONDS (20). Names as given to start.sh (the role, or --name).
#
#   infra/services/stop.sh NAME... [--state DIR]      e.g.  infra/services/stop.sh sampler scorer learner
#   infra/services/stop.sh --all [--state DIR]        every service with a pid file in the state folder
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${PREFTUNE_SERVICES_STATE:-$ROOT/.preftune/services}
NAMES=(); ALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --state) [ $# -ge 2 ] || { echo "stop.sh: --state needs a folder" >&2; exit 2; }; STATE=$2; shift;;
    --all) ALL=1;;
    -*) sed -n '4,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2;;
    *) NAMES+=("$1");;
  esac
  shift
done
if [ "$ALL" = 1 ]; then
  for f in "$STATE"/*.pid; do [ -f "$f" ] && NAMES+=("$(basename "$f" .pid)"); done
fi
[ "${#NAMES[@]}" -gt 0 ] || { echo "stop.sh: name a service (sampler, scorer, learner) or --all" >&2; exit 2; }

status=0
for NAME in "${NAMES[@]}"; do
  PIDFILE=$STATE/$NAME.pid
  PID=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -z "$PID" ] || ! kill -0 "$PID" 2>/dev/null; then
    rm -f "$PIDFILE"; echo "$NAME is not running"; continue
  fi
  # only a process start.sh made: `serve` on its command line
  if ! tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q ' serve '; then
    echo "stop.sh: pid $PID in $PIDFILE is not a preftune service; left alone" >&2; status=1; continue
  fi
  kill -TERM -- "-$PID" 2>/dev/null || kill -TERM "$PID"
  for _ in $(seq 1 $((${PREFTUNE_SERVICE_STOP_SECONDS:-20} * 10))); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$PID" 2>/dev/null; then
    kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID"
    echo "$NAME (pid $PID) killed after ${PREFTUNE_SERVICE_STOP_SECONDS:-20} s"
  else
    echo "$NAME (pid $PID) stopped"
  fi
  echo "=== $(date -Is) stop.sh $NAME" >>"$STATE/$NAME.log"
  rm -f "$PIDFILE"
done
exit $status
