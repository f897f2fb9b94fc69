#!/usr/bin/env bash
# Starts one PrefTune stage service (`preftune serve ROLE`) as a plain background process against a broker
# and a database, with a pid file and a log under a state folder. stop.sh stops it.
#
#   infra/services/start.sh ROLE [--broker URI] [--database CONNECTION] [--schema NAME] [--checkpoints STORE]
#                                [--state DIR] [--name NAME]
#
# ROLE: sampler, scorer or learner. Unset flags fall back to PREFTUNE_BROKER, PREFTUNE_DATABASE, PREFTUNE_SCHEMA,
# PREFTUNE_CHECKPOINTS; prefer those variables for credentials (flags show in process lists while this script
# runs; the service itself gets them only through its environment). --state: PREFTUNE_SERVICES_STATE, else
# .preftune/services beside the code. --name: the pid/log name (default ROLE), to run a second instance of a role.
# The program: PREFTUNE_DLL (a built or published preftune.dll), else ./preftune (built once if sources changed).
# Exit 0 once the process is up and still alive after the connection checks (PREFTUNE_SERVICE_CHECK_SECONDS, 8);
# otherwise 1 with the log's tail.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
usage() { sed -n '4,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
ROLE=$1; shift
case "$ROLE" in sampler|scorer|learner) ;; *) echo "start.sh: unknown role '$ROLE' (sampler, scorer or learner)" >&2; exit 2;; esac
BROKER=${PREFTUNE_BROKER:-}; DATABASE=${PREFTUNE_DATABASE:-}
SCHEMA=${PREFTUNE_SCHEMA:-}; CHECKPOINTS=${PREFTUNE_CHECKPOINTS:-}
STATE=${PREFTUNE_SERVICES_STATE:-$ROOT/.preftune/services}; NAME=$ROLE
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case "$1" in
    --broker) BROKER=$2;; --database) DATABASE=$2;; --schema) SCHEMA=$2;; --checkpoints) CHECKPOINTS=$2;;
    --state) STATE=$2;; --name) NAME=$2;;
    *) usage;;
  esac
  shift 2
done
[ -n "$BROKER" ] || { echo "start.sh: no broker (--broker amqp://user:password@host:5672/ or PREFTUNE_BROKER)" >&2; exit 2; }
[ -n "$DATABASE" ] || { echo "start.sh: no database (--database 'Host=...;...' or PREFTUNE_DATABASE): every service must reach the run's database" >&2; exit 2; }

mkdir -p "$STATE"
PIDFILE=$STATE/$NAME.pid; LOG=$STATE/$NAME.log
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "start.sh: $NAME already runs (pid $(cat "$PIDFILE")); stop it first: infra/services/stop.sh $NAME" >&2; exit 1
fi

if [ -n "${PREFTUNE_DLL:-}" ]; then
  PROGRAM=(dotnet "$PREFTUNE_DLL")
else
  "$ROOT/preftune" --help >/dev/null   # builds here, once, rather than in the background process
  PROGRAM=("$ROOT/preftune")
fi

export PREFTUNE_BROKER=$BROKER PREFTUNE_DATABASE=$DATABASE
[ -n "$SCHEMA" ] && export PREFTUNE_SCHEMA=$SCHEMA
[ -n "$CHECKPOINTS" ] && export PREFTUNE_CHECKPOINTS=$CHECKPOINTS
export PREFTUNE_DATAFOLDER=${PREFTUNE_DATAFOLDER:-$STATE}
echo "=== $(date -Is) start.sh $NAME: preftune serve $ROLE" >>"$LOG"
# setsid: its own process group (stop.sh signals the group), detached from this terminal
nohup setsid "${PROGRAM[@]}" serve "$ROLE" >>"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"

# The service checks the broker and database first (ConnectTimeoutSeconds, 5 s each) and exits if either fails.
for _ in $(seq 1 $((${PREFTUNE_SERVICE_CHECK_SECONDS:-8} * 10))); do
  if ! kill -0 "$PID" 2>/dev/null; then
    rm -f "$PIDFILE"
    echo "start.sh: $NAME exited at start; $LOG:" >&2; tail -20 "$LOG" >&2; exit 1
  fi
  sleep 0.1
done
echo "$NAME started (pid $PID, log $LOG)"
