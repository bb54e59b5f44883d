#!/usr/bin/env bash
# Sharded pub/sub benchmark (issue 16): the same many-room load on
#   (a) one Redis, classic pub/sub;
#   (b) a 3-primary Redis Cluster, classic pub/sub (PUBLISH is copied to every shard);
#   (c) the same cluster, --redis-pubsub sharded (SPUBLISH: each room channel on one shard).
# Three sio-gateway nodes each time; sio-bench opens $RECEIVERS clients spread over the nodes and
# over $ROOMS rooms (receiver i joins bench-<i mod ROOMS>) and publishes $RATE broadcasts/s as a
# backend emitter, round-robin over the rooms (each reaches RECEIVERS/ROOMS clients). Receiver i
# connects to node i mod 3: with ROOMS a multiple of 3 every room lives on one node ("rooms
# local"), otherwise every room has members on every node ("rooms spread").
# Reported per configuration: deliveries/s, loss, p99, each Redis process's CPU seconds over the
# run, and the bytes each gateway node received from Redis over the run (ss -ti bytes_received
# of its sockets to the Redis ports).
#
# Usage: bench/sharded.sh          (~2 min after the build)
# Env [defaults]: RECEIVERS [3000] ROOMS [1000] RATE [1000] DURATION [10] CONFIGS ["a b c"]
#   BUILD [1] OUT [mktemp dir] GATEWAY_BIN / BENCH_BIN [target/release/...]
# Not a test: never part of scripts/test.sh. Needs redis-server/redis-cli >= 7 and ss.
set -euo pipefail
cd "$(dirname "$0")/.."

RECEIVERS=${RECEIVERS:-3000}
ROOMS=${ROOMS:-1000}
RATE=${RATE:-1000}
DURATION=${DURATION:-10}
CONFIGS=${CONFIGS:-"a b c"}
BUILD=${BUILD:-1}
OUT=${OUT:-$(mktemp -d /tmp/sio-sharded.XXXXXX)}
mkdir -p "$OUT"
GATEWAY_BIN=${GATEWAY_BIN:-target/release/sio-gateway}
BENCH_BIN=${BENCH_BIN:-target/release/sio-bench}
ulimit -n 20000 2>/dev/null || true

log() { echo "==> $*" >&2; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
  log "cargo build --release -p sio-bench -p sio-gateway"
  cargo build --release -q -p sio-bench -p sio-gateway
fi

free_port() { # below 55536 and port + 10000 free too: a cluster node listens on both
  python3 -c '
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randint(20000, 55000)
    if free(p) and free(p + 10000):
        print(p); break'
}
cpu_s() { # pid -> utime+stime seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}
redis_bytes() { # gateway pid, redis ports... -> bytes received on its sockets to those ports
  local pid=$1; shift
  local ports=" $* "
  ss -tinpH state established 2>/dev/null | awk -v pid="pid=$pid," -v ports="$ports" '
    /^[0-9]/ { peer=$4; hit=(index($0, pid) > 0); n=split(peer, a, ":"); p=a[n]; want=(hit && index(ports, " " p " ") > 0); next }
    { if (want && match($0, /bytes_received:[0-9]+/)) { sum += substr($0, RSTART+15, RLENGTH-15) } }
    END { print sum+0 }'
}

start_redis() { # port [cluster]
  local args=(--port "$1" --bind 127.0.0.1 --save "" --appendonly no --protected-mode no --dir "$OUT")
  [ "${2:-}" = cluster ] && args+=(--cluster-enabled yes --cluster-config-file "$OUT/nodes-$1.conf")
  redis-server "${args[@]}" >>"$OUT/redis-$1.log" 2>&1 &
  PIDS+=($!)
  REDIS_PIDS+=($!)
  for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis on $1 did not start" >&2; exit 1
}

run_config() { # a|b|c
  local cfg=$1 url pubsub=classic bench_extra=()
  REDIS_PIDS=(); local ports=()
  rm -f "$OUT"/nodes-*.conf
  if [ "$cfg" = a ]; then
    ports=("$(free_port)"); start_redis "${ports[0]}"
    url="redis://127.0.0.1:${ports[0]}"
  else
    for _ in 1 2 3; do ports+=("$(free_port)"); done
    for p in "${ports[@]}"; do start_redis "$p" cluster; done
    redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null
    for _ in $(seq 100); do
      redis-cli -p "${ports[0]}" cluster info | grep -q cluster_state:ok && break; sleep 0.1
    done
    url="redis-cluster://127.0.0.1:${ports[0]}"
  fi
  if [ "$cfg" = c ]; then pubsub=sharded; bench_extra=(--sharded); fi
  local gw_pids=() urls=()
  for i in 1 2 3; do
    local port; port=$(free_port)
    "$GATEWAY_BIN" --listen "127.0.0.1:$port" --redis "$url" --redis-pubsub "$pubsub" --node-id "g$i" \
      --event-rate 0 --log-level warn >>"$OUT/gateway-$cfg-$i.log" 2>&1 &
    PIDS+=($!); gw_pids+=($!); urls+=(--url "http://127.0.0.1:$port")
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  local pid_args=(); for p in "${gw_pids[@]}"; do pid_args+=(--pid "$p"); done
  # Counters around the whole sio-bench run (connects, warm-up, the step, the drain).
  local cpu0=() bytes0=()
  for p in "${REDIS_PIDS[@]}"; do cpu0+=("$(cpu_s "$p")"); done
  for p in "${gw_pids[@]}"; do bytes0+=("$(redis_bytes "$p" "${ports[@]}")"); done
  log "config $cfg: $RECEIVERS receivers in $ROOMS rooms, $RATE broadcasts/s for ${DURATION}s ($url, $pubsub)"
  "$BENCH_BIN" fanout --json --quiet "${urls[@]}" --receivers "$RECEIVERS" --rooms "$ROOMS" --room bench \
    --rate "$RATE" --duration "$DURATION" --origin emitter --redis "$url" "${bench_extra[@]}" \
    "${pid_args[@]}" >"$OUT/fanout-$cfg.json"
  local cpus=() bytes=()
  for i in "${!REDIS_PIDS[@]}"; do cpus+=("$(awk -v a="${cpu0[$i]}" -v b="$(cpu_s "${REDIS_PIDS[$i]}")" 'BEGIN{printf "%.2f", b-a}')"); done
  for i in "${!gw_pids[@]}"; do
    bytes+=("$(awk -v a="${bytes0[$i]}" -v b="$(redis_bytes "${gw_pids[$i]}" "${ports[@]}")" 'BEGIN{printf "%.2f", (b-a)/1048576}')")
  done
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const s = r.steps[r.steps.length - 1];
    const [cfg, cpus, bytes] = process.argv.slice(2);
    const name = { a: "(a) one Redis, classic", b: "(b) 3-primary cluster, classic", c: "(c) 3-primary cluster, sharded" }[cfg];
    console.log(`| ${name} | ${Math.round(s.deliveries_per_s)} | ${(s.loss_ratio * 100).toFixed(3)}% | ${s.latency.p99_ms.toFixed(1)} | ${cpus} | ${bytes} |`);
  ' "$OUT/fanout-$cfg.json" "$cfg" "${cpus[*]}" "${bytes[*]}" >>"$OUT/table.md"
  cleanup
}

echo "| configuration | deliveries/s | loss | p99 ms | Redis CPU s per process | MiB from Redis per gateway node |" >"$OUT/table.md"
echo "|---|---|---|---|---|---|" >>"$OUT/table.md"
for c in $CONFIGS; do run_config "$c"; done
cat "$OUT/table.md"
log "results in $OUT"
