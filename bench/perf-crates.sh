#!/usr/bin/env bash
# Where a server's CPU per delivery goes, by crate: TARGET (gateway, socketioxide, floor) runs
# in the compare.sh layout (NODES nodes + a private redis-server pinned to core SERVER_CPU; the
# floor is one process without Redis), `sio-bench fanout` on core GEN_CPU sends client-origin
# broadcasts at RATE to RECEIVERS receivers, and `perf record -C SERVER_CPU` samples the server
# core for PERF_S seconds in the middle of the step. Prints µs per delivery per crate
# (bench/perf-crates.py) and the step's own figures.
#
# Usage: bench/perf-crates.sh TARGET [GROUP ...]   (GROUPs: also list their top symbols, e.g. tokio)
# Needs perf (linux-perf), redis-server, release builds (see handshake-cost.sh).
# Env: RATE [10] RECEIVERS [3000] NODES [3] DURATION [12] PERF_S [6] SERVER_CPU [0] GEN_CPU [1]
#   KEEP: a directory to keep perf.data in
# Not a test: never part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,12p "$0" >&2; exit 2; }
TARGET=$1; shift
RATE=${RATE:-10} RECEIVERS=${RECEIVERS:-3000} NODES=${NODES:-3} DURATION=${DURATION:-12} PERF_S=${PERF_S:-6}
SERVER_CPU=${SERVER_CPU:-0} GEN_CPU=${GEN_CPU:-1}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
REDIS_PORT=$(free_port)
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
  --logfile "$dir/redis.log" >/dev/null
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$dir/perf.data" "$KEEP/" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
[ "$TARGET" = floor ] && NODES=1
urls=() pidargs=()
for _ in $(seq "$NODES"); do
  port=$(free_port)
  case $TARGET in
    gateway) taskset -c "$SERVER_CPU" target/release/sio-gateway --listen "127.0.0.1:$port" \
        --redis "redis://127.0.0.1:$REDIS_PORT" --node-id "perf-$port" --event-rate 0 --log-level warn >"$dir/$port.log" 2>&1 & ;;
    socketioxide) taskset -c "$SERVER_CPU" bench/socketioxide-peer/target/release/socketioxide-peer \
        --port "$port" --redis "redis://127.0.0.1:$REDIS_PORT" >"$dir/$port.log" 2>&1 & ;;
    floor) taskset -c "$SERVER_CPU" target/release/sio-bench floor-server --quiet --listen "127.0.0.1:$port" >"$dir/$port.log" 2>&1 & ;;
    *) echo "unknown target $TARGET (gateway, socketioxide, floor)" >&2; exit 2 ;;
  esac
  pids+=($!) urls+=(--url "http://127.0.0.1:$port") pidargs+=(--pid "$!")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
sleep 1
taskset -c "$GEN_CPU" target/release/sio-bench --json fanout "${urls[@]}" "${pidargs[@]}" \
  --redis "redis://127.0.0.1:$REDIS_PORT" --receivers "$RECEIVERS" --rate "$RATE" --duration "$DURATION" \
  --origin client --room bench --quiet >"$dir/fanout.json" 2>"$dir/fanout.err" &
gen=$!
# The receivers connect and warm up (a few seconds), then the measured step runs DURATION s.
sleep $(( (DURATION - PERF_S) / 2 + 4 ))
perf record -q -F 2999 -C "$SERVER_CPU" -o "$dir/perf.data" -- sleep "$PERF_S" 2>/dev/null
wait "$gen"
jq -c '.steps[0] | {deliveries_per_s, loss_ratio, p99_ms: .latency.p99_ms, server_cpu_us_per_delivery}' "$dir/fanout.json"
python3 bench/perf-crates.py "$dir/perf.data" "$(jq '.steps[0].deliveries_per_s' "$dir/fanout.json")" "$@"
