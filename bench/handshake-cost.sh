#!/usr/bin/env bash
# Instructions per websocket handshake (valgrind callgrind: load-independent, so it can run on
# a shared machine), for sio-gateway and plain socketioxide (bench/socketioxide-peer), each one
# node with a private redis-server. Instrumentation is on only while `sio-bench connect` runs N
# handshakes (TCP connect, websocket upgrade, Engine.IO open, Socket.IO CONNECT ack).
# Prints: target, handshakes ok, total instructions, instructions per handshake.
#
# Usage: bench/handshake-cost.sh [TARGET ...]   (gateway, socketioxide; default both)
# Needs valgrind, redis-server, release builds of sio-gateway and sio-bench
# (cargo build --release -p sio-gateway -p sio-bench) and of the peer
# (cargo build --release --locked --manifest-path bench/socketioxide-peer/Cargo.toml).
# Env: N [500] CONCURRENCY [10] GATEWAY_BIN [target/release/sio-gateway] GATEWAY_ARGS [""]
#   KEEP: a directory to keep the callgrind dumps in (for callgrind_annotate)
# Not a test: never part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500} CONCURRENCY=${CONCURRENCY:-10}
GATEWAY_BIN=${GATEWAY_BIN:-target/release/sio-gateway} GATEWAY_ARGS=${GATEWAY_ARGS:-}
SX_BIN=bench/socketioxide-peer/target/release/socketioxide-peer
BENCH_BIN=target/release/sio-bench
dir=$(mktemp -d)
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes --logfile "$dir/redis.log" >/dev/null
trap 'redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "target ok instructions instructions/handshake"
for target in "${@:-gateway socketioxide}"; do
  for t in $target; do
    out="$dir/$t.cg"
    case $t in
      gateway)
        # shellcheck disable=SC2086 # extra arguments are meant to split
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$GATEWAY_BIN" \
          --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id cg \
          --event-rate 0 --log-level warn --heap-huge-pages false $GATEWAY_ARGS >"$dir/$t.log" 2>&1 & ;;
      socketioxide)
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$SX_BIN" \
          --port "$port" --redis "redis://127.0.0.1:$REDIS_PORT" >"$dir/$t.log" 2>&1 & ;;
      *) echo "unknown target $t (gateway, socketioxide)" >&2; exit 2 ;;
    esac
    pid=$!
    for _ in $(seq 600); do
      curl -sf -o /dev/null "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling" && break
      kill -0 "$pid" 2>/dev/null || { tail "$dir/$t.log" >&2; exit 1; }
      sleep 0.2
    done
    sleep 1
    callgrind_control -i on "$pid" >/dev/null 2>&1
    "$BENCH_BIN" --json connect --url "http://127.0.0.1:$port" --count "$N" --concurrency "$CONCURRENCY" >"$dir/$t.json"
    sleep 1
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    dump=$(ls "$out"* | tail -1)
    total=$(callgrind_annotate --auto=no "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",", "", $1); t = $1} END {print t}')
    ok=$(jq .ok "$dir/$t.json")
    echo "$t $ok $total $((total / N))"
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$dump" "$KEEP/$t.callgrind"; fi
  done
done
