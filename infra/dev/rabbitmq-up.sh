#!/usr/bin/env bash
# Throwaway RabbitMQ on 127.0.0.1:${PREFTUNE_RMQ_PORT:-55672} (guest/guest), without systemd: private
# epmd (port+2), distribution port (port+1), cookie and state under $PREFTUNE_RMQ_BASE, wiped on every start
# unless PREFTUNE_RMQ_KEEP=1 (keep state: durable queues, their persistent messages, vhosts and users survive
# a rabbitmq-down.sh / rabbitmq-up.sh pair run with PREFTUNE_RMQ_KEEP=1, for restart tests).
set -euo pipefail
PORT=${PREFTUNE_RMQ_PORT:-55672}
BASE=${PREFTUNE_RMQ_BASE:-/tmp/preftune-rmq-$PORT}
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
[ -x "$SERVER" ] || { echo "rabbitmq-server not found; apt-get install -y rabbitmq-server" >&2; exit 1; }
[ -f "$BASE/env.sh" ] && bash "$(dirname "$0")/rabbitmq-down.sh" >/dev/null 2>&1 || true
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port 127.0.0.1:$PORT is already in use; stop that broker or set PREFTUNE_RMQ_PORT" >&2; exit 1
fi
if [ "${PREFTUNE_RMQ_KEEP:-}" = 1 ] && [ -d "$BASE/mnesia" ]; then kept=" (state kept)"; else kept=""; rm -rf "$BASE"; fi
mkdir -p "$BASE"/{home,mnesia,log}
echo '[].' > "$BASE/enabled_plugins"          # no management plugin (faster boot, no :15672)
: > "$BASE/rabbitmq-env.conf"                  # ignore /etc/rabbitmq/rabbitmq-env.conf
cat > "$BASE/env.sh" <<ENV
export HOME=$BASE/home
export RABBITMQ_CONF_ENV_FILE=$BASE/rabbitmq-env.conf
export RABBITMQ_CONFIG_FILE=$BASE/rabbitmq
export RABBITMQ_ENABLED_PLUGINS_FILE=$BASE/enabled_plugins
export RABBITMQ_NODENAME=preftune$PORT@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$PORT
export RABBITMQ_DIST_PORT=$((PORT + 1))
export RABBITMQ_MNESIA_BASE=$BASE/mnesia
export RABBITMQ_LOG_BASE=$BASE/log
export RABBITMQ_PID_FILE=$BASE/rabbit.pid
export ERL_EPMD_PORT=$((PORT + 2))
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
ENV
cat > "$BASE/rabbitmq.conf" <<CONF
loopback_users = none
log.console = false
log.file.level = warning
CONF
# shellcheck disable=SC1091
. "$BASE/env.sh"
nohup setsid "$SERVER" >"$BASE/log/stdout.log" 2>&1 </dev/null &
echo $! > "$BASE/launcher.pid"
# ready = the AMQP listener accepts TCP (listeners start last in boot)
for _ in $(seq 1 600); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then echo "rabbitmq up on 127.0.0.1:$PORT (state $BASE)$kept"; exit 0; fi
  kill -0 "$(cat "$BASE/launcher.pid")" 2>/dev/null || break
  sleep 0.1
done
echo "rabbitmq did not start; see $BASE/log" >&2; tail -20 "$BASE/log/stdout.log" >&2 || true; exit 1
