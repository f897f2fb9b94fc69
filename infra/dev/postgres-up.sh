#!/usr/bin/env bash
# Throwaway PostgreSQL on 127.0.0.1:${PREFTUNE_PG_PORT:-55432} with trust auth, for tests and local work.
# Uses the machine's own binaries (highest version under /usr/lib/postgresql); data under $PREFTUNE_PG_BASE,
# wiped on every start unless PREFTUNE_PG_KEEP=1 (keep state: an existing cluster there is started again
# as it was, for restart tests; stop it with PREFTUNE_PG_KEEP=1 postgres-down.sh to keep its data).
# initdb refuses root, so as root the server runs as the `postgres` system user.
# Fast, non-durable flags by default (a test server); PREFTUNE_PG_FLAGS="" gives normal durability.
set -euo pipefail
PORT=${PREFTUNE_PG_PORT:-55432}
BASE=${PREFTUNE_PG_BASE:-/tmp/preftune-pg-$PORT}    # /tmp, not $TMPDIR: the postgres user must traverse it
FLAGS=${PREFTUNE_PG_FLAGS--c fsync=off -c synchronous_commit=off -c full_page_writes=off}
KEEP=${PREFTUNE_PG_KEEP:-}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "PostgreSQL server binaries not found under /usr/lib/postgresql; apt-get install -y postgresql" >&2; exit 1
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# a server left running from an earlier start on this folder is stopped first (cleanly when its data is kept)
if [ -f "$BASE/data/postmaster.pid" ]; then
  as_pg "$PGBIN/pg_ctl" -D "$BASE/data" -m "$([ "$KEEP" = 1 ] && echo fast || echo immediate)" -w stop >/dev/null 2>&1 || true
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port 127.0.0.1:$PORT is already in use; stop that server or set PREFTUNE_PG_PORT" >&2; exit 1
fi
if [ "$KEEP" = 1 ] && [ -f "$BASE/data/PG_VERSION" ]; then
  kept=" (data kept)"
else
  kept=""
  rm -rf "$BASE"; mkdir -p "$BASE/sock"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$BASE"
  as_pg "$PGBIN/initdb" -D "$BASE/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync \
    >"$BASE/initdb.log" 2>&1 || { cat "$BASE/initdb.log" >&2; exit 1; }
fi
# shellcheck disable=SC2086
as_pg "$PGBIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 60 \
  -o "-p $PORT -h 127.0.0.1 -k $BASE/sock -c max_connections=200 $FLAGS" start >/dev/null \
  || { tail -20 "$BASE/server.log" >&2; exit 1; }
"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 30
echo "postgresql $(basename "$(dirname "$PGBIN")") up on 127.0.0.1:$PORT (data $BASE)$kept"
