#!/usr/bin/env bash
# Soak (issue 14 item 5): 1,000 socket.io-client websockets on 2 gateway nodes sharing a private
# redis-server, 50 broadcasts/s into 50 rooms, 10 connects + disconnects/s of extra clients, for
# 10 minutes. Reports each node's RSS at start and end (growth), deliveries expected vs received
# by the stable clients (lost, duplicated) and their disconnects; exits 1 if anything was lost,
# duplicated or disconnected, or a node died. The driver is bench/soak.mjs (socket.io-client from
# tests/node_modules, pinned by tests/package-lock.json).
#
# Usage: bench/soak.sh               (10 min after the build)
# Env (defaults in brackets): SOAK_SECONDS [600] CLIENTS [1000] ROOMS [50] RATE [50] CHURN [10]
#   REPORT_EVERY [10] BUILD [1] GATEWAY_BIN [target/release/sio-gateway]
# Not a test: never part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "error: node not found (Node.js >= 20)" >&2; exit 2; }
command -v "${REDIS_SERVER:-redis-server}" >/dev/null || { echo "error: redis-server not found (apt-get install redis-server)" >&2; exit 2; }
# 1,000 clients + 1,000 server sockets per process stay well under the 20,000 open-files cap.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export GATEWAY_BIN=${GATEWAY_BIN:-$PWD/target/release/sio-gateway}
if [ "${BUILD:-1}" = 1 ]; then
  echo "==> cargo build --release -p sio-gateway"
  cargo build --release -q --locked -p sio-gateway
fi
[ -x "$GATEWAY_BIN" ] || { echo "error: missing $GATEWAY_BIN (cargo build --release -p sio-gateway)" >&2; exit 2; }
[ -d tests/node_modules/socket.io-client ] || (cd tests && npm ci --no-audit --no-fund --loglevel=error)
exec node bench/soak.mjs
