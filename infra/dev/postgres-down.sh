#!/usr/bin/env bash
# Stops the server postgres-up.sh started (same PREFTUNE_PG_PORT / PREFTUNE_PG_BASE) and deletes its data,
# unless PREFTUNE_PG_KEEP=1 (or PREFTUNE_KEEP_DATA=1): then the data stays for postgres-up.sh to start again.
set -uo pipefail
PORT=${PREFTUNE_PG_PORT:-55432}
BASE=${PREFTUNE_PG_BASE:-/tmp/preftune-pg-$PORT}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ -n "$PGBIN" ] && [ -f "$BASE/data/postmaster.pid" ]; then
  as_pg "$PGBIN/pg_ctl" -D "$BASE/data" -m fast -w -t 30 stop >/dev/null || exit 1
fi
[ "${PREFTUNE_KEEP_DATA:-}" = 1 ] || [ "${PREFTUNE_PG_KEEP:-}" = 1 ] || rm -rf "$BASE"
exit 0
