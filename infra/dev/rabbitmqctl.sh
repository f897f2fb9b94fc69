#!/usr/bin/env bash
# rabbitmqctl against the broker rabbitmq-up.sh started (same PREFTUNE_RMQ_PORT / PREFTUNE_RMQ_BASE): its node
# name, private epmd and cookie. E.g.  bash infra/dev/rabbitmqctl.sh list_queues name durable messages
set -euo pipefail
PORT=${PREFTUNE_RMQ_PORT:-55672}
BASE=${PREFTUNE_RMQ_BASE:-/tmp/preftune-rmq-$PORT}
[ -f "$BASE/env.sh" ] || { echo "no broker started under $BASE (run rabbitmq-up.sh first)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$BASE/env.sh"
exec /usr/lib/rabbitmq/bin/rabbitmqctl -q "$@"
