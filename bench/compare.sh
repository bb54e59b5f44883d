#!/usr/bin/env bash
# Side-by-side benchmark: sio-gateway vs Node.js socket.io 4.8 + @socket.io/redis-adapter 8.3,
# same load from sio-bench, same machine, same run. Prints a table with ratios (and writes
# the raw JSON results plus a Markdown table to $OUT).
#
# Layout: a private redis-server on a free port, NODES server processes per target (3 by
# default) joined through Redis. Servers and Redis are pinned to core $SERVER_CPU, the
# generator to core $GEN_CPU (taskset), so "CPU per delivery" compares like with like.
# If sio-gateway's --redis does not work yet (checked by a cross-node delivery probe), the
# gateway runs single node; then Node runs single node too, and the output says so.
#
# Usage: bench/compare.sh            full run (~10 min on 2 cores)
#        QUICK=1 bench/compare.sh    small sizes (~2 min)
# Env (defaults in brackets, QUICK values after the slash):
#   TARGETS ["gateway node"]  NODES [3]  BUILD [1]  OUT [mktemp dir]
#   IDLE_CONNS [10000/2000]   CONNECT_COUNT [5000/1000]  CONNECT_CONCURRENCY [50]
#   RECEIVERS [3000/1000]     LOW_RATE [10]  HIGH_RATES ["33 100 333"/"100"]  DURATION [10/3]
#   ORIGINS ["emitter client http"]  RAMP_START [33/50]  RAMP_FACTOR [1.5/2]  RAMP_MAX [5000/2000]  RAMP_P99_MS [50]
#   PAYLOAD_BYTES [0]  SERVER_CPU [0]  GEN_CPU [1]  GATEWAY_ARGS [""]  NODE_ARGS [""]
# Not a test: never part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
TARGETS=${TARGETS:-"gateway node"}
NODES=${NODES:-3}
BUILD=${BUILD:-1}
IDLE_CONNS=${IDLE_CONNS:-$(q 10000 2000)}
CONNECT_COUNT=${CONNECT_COUNT:-$(q 5000 1000)}
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-50}
RECEIVERS=${RECEIVERS:-$(q 3000 1000)}
LOW_RATE=${LOW_RATE:-10}
HIGH_RATES=${HIGH_RATES:-$(q "33 100 333" "100")}
DURATION=${DURATION:-$(q 10 3)}
ORIGINS=${ORIGINS:-"emitter client http"}
RAMP_START=${RAMP_START:-$(q 33 50)}
RAMP_FACTOR=${RAMP_FACTOR:-$(q 1.5 2)}
RAMP_MAX=${RAMP_MAX:-$(q 5000 2000)}
RAMP_P99_MS=${RAMP_P99_MS:-50}
PAYLOAD_BYTES=${PAYLOAD_BYTES:-0}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
GATEWAY_ARGS=${GATEWAY_ARGS:-}
NODE_ARGS=${NODE_ARGS:-}
API_KEY=bench-key-$$
OUT=${OUT:-$(mktemp -d /tmp/sio-compare.XXXXXX)}
mkdir -p "$OUT"
ROOM=bench

GATEWAY_BIN=$ROOT/target/release/sio-gateway
BENCH_BIN=$ROOT/target/release/sio-bench

log() { echo "==> $*" >&2; }

# ---- processes we start, cleaned up on exit -------------------------------------------
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop_pids() { # stop the given pids and forget them
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  local keep=() k
  for k in "${PIDS[@]:-}"; do
    [[ " $* " == *" $k "* ]] || keep+=("$k")
  done
  PIDS=("${keep[@]:-}")
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_http() { # url, pid: wait until the Engine.IO handshake answers 200
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || return 1
    if curl -fsS -o /dev/null "$1/socket.io/?EIO=4&transport=polling" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# ---- build and install -----------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  log "cargo build --release -p sio-bench -p sio-gateway"
  cargo build --release -q -p sio-bench
  [[ " $TARGETS " == *" gateway "* ]] && cargo build --release -q -p sio-gateway
fi
[ -x "$BENCH_BIN" ] || { echo "missing $BENCH_BIN (cargo build --release -p sio-bench)" >&2; exit 1; }
if [[ " $TARGETS " == *" node "* ]] && [ ! -d bench/node_modules/socket.io ]; then
  log "npm ci (bench/)"
  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
fi

# ---- redis -----------------------------------------------------------------------------
REDIS_PORT=$(free_port)
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
  --appendonly no --protected-mode no --loglevel warning >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
disown "$REDIS_PID" 2>/dev/null || true
PIDS+=("$REDIS_PID")
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping | grep -q PONG || { echo "redis did not start" >&2; exit 1; }

# ---- servers ---------------------------------------------------------------------------
GW_HELP=$("$GATEWAY_BIN" --help 2>/dev/null || true)
gw_flag() { [[ "$GW_HELP" == *"$1"* ]]; }

SERVER_PIDS=()
SERVER_URLS=()
start_one() { # kind port use_redis -> appends to SERVER_PIDS/URLS
  local kind=$1 port=$2 use_redis=$3 args=() pid
  if [ "$kind" = gateway ]; then
    args=(--listen "127.0.0.1:$port")
    [ "$use_redis" = 1 ] && args+=(--redis "$REDIS_URL")
    gw_flag --node-id && args+=(--node-id "gw-$port")     # distinct ids (the default is the hostname)
    gw_flag --event-rate && args+=(--event-rate 0)      # the default (100/s) would throttle the client sender
    gw_flag --api-key && args+=(--api-key "$API_KEY")   # enables POST /api/v1/emit
    gw_flag --log-level && args+=(--log-level warn)
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" "$GATEWAY_BIN" "${args[@]}" $GATEWAY_ARGS >>"$OUT/$kind-$port.log" 2>&1 &
  else
    args=(--port "$port")
    [ "$use_redis" = 1 ] && args+=(--redis "$REDIS_URL")
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" node bench/node-server.mjs "${args[@]}" $NODE_ARGS >>"$OUT/$kind-$port.log" 2>&1 &
  fi
  pid=$!
  disown "$pid" 2>/dev/null || true   # no "Killed" job notices when a busy server needs SIGKILL
  PIDS+=("$pid")
  if ! wait_http "http://127.0.0.1:$port" "$pid"; then
    echo "$kind on port $port did not start; log:" >&2
    tail -20 "$OUT/$kind-$port.log" >&2
    return 1
  fi
  SERVER_PIDS+=("$pid")
  SERVER_URLS+=("http://127.0.0.1:$port")
}
start_cluster() { # kind n use_redis
  SERVER_PIDS=(); SERVER_URLS=()
  local i
  for i in $(seq "$2"); do start_one "$1" "$(free_port)" "$3" || return 1; done
}
stop_cluster() { stop_pids "${SERVER_PIDS[@]}"; SERVER_PIDS=(); SERVER_URLS=(); }

bench() { # name args... : run sio-bench pinned to the generator core, JSON to $OUT/name.json
  local name=$1; shift
  log "$name: sio-bench $*"
  if taskset -c "$GEN_CPU" "$BENCH_BIN" --json "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"; then
    return 0
  fi
  echo "   failed: $(tail -3 "$OUT/$name.err")" >&2
  echo "{\"error\": $(tail -3 "$OUT/$name.err" | jq -Rs .)}" >"$OUT/$name.json"
}

url_args() { local u; for u in "${SERVER_URLS[@]}"; do printf -- '--url %s ' "$u"; done; }
pid_args() { local p; for p in "${SERVER_PIDS[@]}"; do printf -- '--pid %s ' "$p"; done; }

# ---- can sio-gateway run as a cluster? --------------------------------------------------
TOPOLOGY=cluster
if [[ " $TARGETS " == *" gateway "* ]]; then
  if ! gw_flag --redis; then
    TOPOLOGY=single
  else
    log "probing sio-gateway cluster delivery (2 nodes, --redis)"
    if start_cluster gateway 2 1; then
      # Receivers on both nodes, sender on the first: a working cluster loses nothing.
      # shellcheck disable=SC2046
      bench probe-gateway-cluster fanout $(url_args) --receivers 20 --rate 5 --duration 1 \
        --warmup 1 --drain-timeout 3 --origin client --room "$ROOM" --quiet || true
      lost=$(jq -r '.steps[0].lost // "error"' "$OUT/probe-gateway-cluster.json")
      [ "$lost" = 0 ] || TOPOLOGY=single
      stop_cluster
    else
      TOPOLOGY=single
    fi
  fi
fi
if [ "$TOPOLOGY" = single ]; then
  NODES=1
  echo "NOTE: sio-gateway's --redis cluster mode does not work yet (see $OUT/probe-gateway-cluster.json):" \
    "both targets run ONE node (Node.js still with the Redis adapter, the gateway in memory;" \
    "the emitter origin needs Redis and is skipped for the gateway)." | tee "$OUT/NOTE" >&2
fi

# ---- scenarios per target ----------------------------------------------------------------
for kind in $TARGETS; do
  use_redis=1
  [ "$kind" = gateway ] && [ "$TOPOLOGY" = single ] && use_redis=0
  log "=== $kind: $NODES node(s), redis=$use_redis"

  # Idle memory: one node alone.
  if ! start_cluster "$kind" 1 "$use_redis"; then echo "skipping $kind: it does not start" >&2; continue; fi
  bench "$kind-idle" idle --url "${SERVER_URLS[0]}" --connections "$IDLE_CONNS" --pid "${SERVER_PIDS[0]}" --settle 3
  stop_cluster

  if ! start_cluster "$kind" "$NODES" "$use_redis"; then echo "skipping $kind: cluster does not start" >&2; continue; fi
  # shellcheck disable=SC2046
  bench "$kind-connect" connect $(url_args) --count "$CONNECT_COUNT" --concurrency "$CONNECT_CONCURRENCY"

  for origin in $ORIGINS; do
    if [ "$origin" = emitter ] && [ "$use_redis" = 0 ]; then continue; fi
    rates="$LOW_RATE"
    [ "$origin" != http ] && rates="$LOW_RATE $HIGH_RATES"
    for rate in $rates; do
      # shellcheck disable=SC2046
      bench "$kind-fanout-$origin-$rate" fanout $(url_args) $(pid_args) --receivers "$RECEIVERS" \
        --rate "$rate" --duration "$DURATION" --origin "$origin" --redis "$REDIS_URL" --room "$ROOM" \
        --api-key "$API_KEY" --payload-bytes "$PAYLOAD_BYTES"
    done
  done

  ramp_origin=emitter
  [ "$use_redis" = 0 ] && ramp_origin=client
  # shellcheck disable=SC2046
  bench "$kind-ramp-$ramp_origin" fanout $(url_args) $(pid_args) --receivers "$RECEIVERS" \
    --rate "$RAMP_START" --duration "$DURATION" --origin "$ramp_origin" --redis "$REDIS_URL" \
    --room "$ROOM" --ramp --ramp-factor "$RAMP_FACTOR" --ramp-max "$RAMP_MAX" --max-p99-ms "$RAMP_P99_MS" --payload-bytes "$PAYLOAD_BYTES"
  stop_cluster
done

# ---- report --------------------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
  echo "topology: $TOPOLOGY, $NODES node(s) per target; servers+redis on core $SERVER_CPU, generator on core $GEN_CPU"
  echo "sizes: QUICK=$QUICK idle=$IDLE_CONNS connect=$CONNECT_COUNT receivers=$RECEIVERS rates=\"$LOW_RATE $HIGH_RATES\" duration=${DURATION}s ramp=$RAMP_START*$RAMP_FACTOR..$RAMP_MAX"
} >"$OUT/meta.txt"
node bench/report.mjs "$OUT" | tee "$OUT/report.md"
echo "raw results: $OUT" >&2
