#!/usr/bin/env bash
# The Admin UI's cost per client event, in instructions (valgrind callgrind: load-independent,
# so it can run on a shared machine). A release gateway runs under callgrind, in cluster mode
# (MODE=cluster, the default: a private redis-server; the admin reports are broadcasts through
# the Redis adapter) or alone (MODE=single); bench/admin-events.mjs connects one client and sends, after a warm-up, N `join` +
# N `leave` (acked; the relay's room events) and N events of an unknown name (acked with the
# no-sink error: the path of every event bound upstream, with the cheapest sink). Each segment
# is bracketed by callgrind_control --zero/--dump. Cases:
#   none      no --admin-ui
#   idle      --admin-ui readonly, nobody connected
#   ui        --admin-ui readonly, an admin connected
#   events    --admin-ui readonly --admin-ui-events true, an admin connected
# Prints: mode case segment events instructions instructions/event.
#
# Usage: bench/admin-events.sh [GATEWAY_BIN]   (default target/release/sio-gateway)
# Needs valgrind, redis-server and the tests' npm packages (socket.io-client: npm ci --prefix tests).
# Env: N [2000] CASES ["none idle ui events"] MODE [cluster] PORT [17611] REDIS_PORT [16611]
#   KEEP: a directory to keep the callgrind dumps in (for callgrind_annotate)
# Not a test: never part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/sio-gateway}
[ -x "$BIN" ] || { echo "error: $BIN is not an executable (cargo build --release -p sio-gateway)" >&2; exit 2; }
N=${N:-2000} CASES=${CASES:-"none idle ui events"} MODE=${MODE:-cluster}
PORT=${PORT:-17611} REDIS_PORT=${REDIS_PORT:-16611}
dir=$(mktemp -d)
redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes --logfile "$dir/redis.log" >/dev/null
trap 'redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
sleep 0.5
cluster=(--redis "redis://127.0.0.1:$REDIS_PORT" --cluster-secret bench-cluster-secret-0123456789)
[ "$MODE" = single ] && cluster=()
echo "mode case segment events instructions instructions/event"
for c in $CASES; do
  case $c in
    none) args=() admin=0 ;;
    idle) args=(--admin-ui readonly --admin-ui-no-auth true) admin=0 ;;
    ui) args=(--admin-ui readonly --admin-ui-no-auth true) admin=1 ;;
    events) args=(--admin-ui readonly --admin-ui-no-auth true --admin-ui-events true) admin=1 ;;
    *) echo "error: unknown case $c" >&2; exit 2 ;;
  esac
  # The tunables the gateway would re-exec itself with (heap.rs): set here, so it does not
  # (an exec of /proc/self/exe escapes valgrind).
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1 valgrind --tool=callgrind --callgrind-out-file="$dir/cg.$c" --dump-instr=no \
    "$BIN" --listen "127.0.0.1:$PORT" "${cluster[@]}" --node-id bench \
    --log-level warn --event-rate 0 "${args[@]}" \
    >"$dir/gw.$c.log" 2>&1 &
  vg=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  node bench/admin-events.mjs "http://127.0.0.1:$PORT" "$vg" "$N" "$admin" >"$dir/segments.$c"
  kill -INT "$vg"; wait "$vg" || true
  i=0
  while read -r seg events; do
    i=$((i + 1))
    ir=$(awk '/^summary:/ {print $2}' "$dir/cg.$c.$i")
    echo "$MODE $c $seg $events $ir $((ir / events))"
  done <"$dir/segments.$c"
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$dir"/cg."$c".* "$KEEP"/; fi
  rm -f "$dir"/cg."$c"*
done
