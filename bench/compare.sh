#!/usr/bin/env bash
# Side-by-side benchmark, same load from sio-bench, same machine, same run. Targets:
#   gateway       sio-gateway (--redis: its Node-compatible Redis adapter)
#   socketioxide  plain socketioxide 0.18 + socketioxide-redis 0.4 with the same relay conventions
#                 (bench/socketioxide-peer/, its own Cargo package outside the workspace): what the
#                 gateway adds on top of its library. socketioxide-redis has its own private
#                 protocol, so the emitter origin is skipped ("–") and its ramp uses the client origin.
#   node          Node.js socket.io 4.8 + @socket.io/redis-adapter 8.3 (bench/node-server.mjs)
#   floor         `sio-bench floor-server` (crates/bench/src/floor.rs; bench/floor.sh): one
#                 process, no Redis, client origin only; not in the default TARGETS.
# Prints a table with ratios (and writes the raw JSON results plus a Markdown table to $OUT).
#
# Layout: a private redis-server on a free port, NODES server processes per target (3 by
# default) joined through Redis. Servers and Redis are pinned to core $SERVER_CPU, the
# generator to core $GEN_CPU (taskset), so "CPU per delivery" compares like with like.
# A cross-node delivery probe (2 nodes, --redis) runs first for the gateway and for
# socketioxide. If the gateway's fails, the gateway runs single node; then every target runs
# single node too, and the output says so. If socketioxide's fails, socketioxide alone runs one
# node in memory, and the output says so.
# BUILD=1 builds sio-bench and sio-gateway (cargo build --release) and, when in TARGETS, the
# peer: cargo build --release --manifest-path bench/socketioxide-peer/Cargo.toml (binary in
# bench/socketioxide-peer/target/release/; the first build takes a few minutes).
#
# Usage: bench/compare.sh            full run (~15 min on 2 cores)
#        QUICK=1 bench/compare.sh    small sizes (~2-3 min per target)
# Env (defaults in brackets, QUICK values after the slash):
#   TARGETS ["gateway socketioxide node"]  NODES [3]  BUILD [1]  OUT [mktemp dir]
#   IDLE_CONNS [10000/2000]   CONNECT_COUNT [5000/1000]  CONNECT_CONCURRENCY [50]
#   RECEIVERS [3000/1000]     LOW_RATE [10]  HIGH_RATES ["33 100 333"/"100"]  DURATION [10/3]
#   ORIGINS ["emitter client http"]  RAMP_START [33/50]  RAMP_FACTOR [1.5/2]  RAMP_MAX [5000/2000]  RAMP_P99_MS [50]
#   PAYLOAD_BYTES [0]  SERVER_CPU [0]  GEN_CPU [1]  GATEWAY_ARGS [""]  NODE_ARGS [""]  SX_ARGS [""]
#   ROUNDS [1]: run every target ROUNDS times, alternating the order (A B, B A, ...); the report
#     shows the median of the rounds and each round's value. Use it to rank two targets whose
#     difference is within one run's spread.
#   IDLE_CONNS=0 / CONNECT_COUNT=0 / RAMP=0 skip the idle, handshake or ramp step.
# Not a test: never part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
TARGETS=${TARGETS:-"gateway socketioxide node"}
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
RAMP=${RAMP:-1}
ROUNDS=${ROUNDS:-1}
PAYLOAD_BYTES=${PAYLOAD_BYTES:-0}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
GATEWAY_ARGS=${GATEWAY_ARGS:-}
NODE_ARGS=${NODE_ARGS:-}
SX_ARGS=${SX_ARGS:-}
API_KEY=bench-key-$$
OUT=${OUT:-$(mktemp -d /tmp/sio-compare.XXXXXX)}
mkdir -p "$OUT"
RDIR=$OUT   # where bench() writes: $OUT, or $OUT/round-N with ROUNDS > 1
ROOM=bench

GATEWAY_BIN=$ROOT/target/release/sio-gateway
BENCH_BIN=$ROOT/target/release/sio-bench
SX_MANIFEST=$ROOT/bench/socketioxide-peer/Cargo.toml
SX_BIN=$ROOT/bench/socketioxide-peer/target/release/socketioxide-peer
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

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
wait_tcp() { # port, pid: wait until the port accepts (the floor server has no long-polling)
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# ---- build and install -----------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  log "cargo build --release -p sio-bench -p sio-gateway"
  cargo build --release -q -p sio-bench
  if has_target gateway; then cargo build --release -q -p sio-gateway; fi
  if has_target socketioxide; then
    log "cargo build --release --manifest-path bench/socketioxide-peer/Cargo.toml"
    cargo build --release -q --locked --manifest-path "$SX_MANIFEST"
  fi
fi
[ -x "$BENCH_BIN" ] || { echo "missing $BENCH_BIN (cargo build --release -p sio-bench)" >&2; exit 1; }
if has_target socketioxide && [ ! -x "$SX_BIN" ]; then
  echo "missing $SX_BIN (cargo build --release --manifest-path bench/socketioxide-peer/Cargo.toml)" >&2
  exit 1
fi
if has_target node && [ ! -d bench/node_modules/socket.io ]; then
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
  elif [ "$kind" = socketioxide ]; then
    args=(--port "$port" --api-key "$API_KEY")
    [ "$use_redis" = 1 ] && args+=(--redis "$REDIS_URL")
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" "$SX_BIN" "${args[@]}" $SX_ARGS >>"$OUT/$kind-$port.log" 2>&1 &
  elif [ "$kind" = floor ]; then
    taskset -c "$SERVER_CPU" "$BENCH_BIN" floor-server --quiet --listen "127.0.0.1:$port" >>"$OUT/$kind-$port.log" 2>&1 &
  else
    args=(--port "$port")
    [ "$use_redis" = 1 ] && args+=(--redis "$REDIS_URL")
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" node bench/node-server.mjs "${args[@]}" $NODE_ARGS >>"$OUT/$kind-$port.log" 2>&1 &
  fi
  pid=$!
  disown "$pid" 2>/dev/null || true   # no "Killed" job notices when a busy server needs SIGKILL
  PIDS+=("$pid")
  local ready=(wait_http "http://127.0.0.1:$port" "$pid")
  [ "$kind" = floor ] && ready=(wait_tcp "$port" "$pid")
  if ! "${ready[@]}"; then
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
  if taskset -c "$GEN_CPU" "$BENCH_BIN" --json "$@" >"$RDIR/$name.json" 2>"$RDIR/$name.err"; then
    return 0
  fi
  echo "   failed: $(tail -3 "$RDIR/$name.err")" >&2
  echo "{\"error\": $(tail -3 "$RDIR/$name.err" | jq -Rs .)}" >"$RDIR/$name.json"
}

url_args() { local u; for u in "${SERVER_URLS[@]}"; do printf -- '--url %s ' "$u"; done; }
pid_args() { local p; for p in "${SERVER_PIDS[@]}"; do printf -- '--pid %s ' "$p"; done; }

# ---- can the Rust targets run as a cluster? ---------------------------------------------
probe_cluster() { # kind: 2 nodes with --redis; true when cross-node delivery lost nothing
  log "probing $1 cluster delivery (2 nodes, --redis)"
  start_cluster "$1" 2 1 || return 1
  # Receivers on both nodes, sender on the first: a working cluster loses nothing.
  # shellcheck disable=SC2046
  bench "probe-$1-cluster" fanout $(url_args) --receivers 20 --rate 5 --duration 1 \
    --warmup 1 --drain-timeout 3 --origin client --room "$ROOM" --quiet || true
  local lost
  lost=$(jq -r '.steps[0].lost // "error"' "$OUT/probe-$1-cluster.json")
  stop_cluster
  [ "$lost" = 0 ]
}
TOPOLOGY=cluster
if has_target gateway; then
  if ! gw_flag --redis || ! probe_cluster gateway; then TOPOLOGY=single; fi
fi
if [ "$TOPOLOGY" = single ]; then
  NODES=1
  echo "NOTE: sio-gateway's --redis cluster mode does not work yet (see $OUT/probe-gateway-cluster.json):" \
    "every target runs ONE node (Node.js and socketioxide still with their Redis adapters, the gateway" \
    "in memory; the emitter origin needs Redis and is skipped for the gateway)." | tee "$OUT/NOTE" >&2
fi
SX_REDIS=1
if has_target socketioxide && ! probe_cluster socketioxide; then
  SX_REDIS=0
  echo "NOTE: socketioxide + socketioxide-redis lost messages across nodes (see" \
    "$OUT/probe-socketioxide-cluster.json): socketioxide runs ONE node, in memory." | tee -a "$OUT/NOTE" >&2
fi

skip() { # name reason: a result file that says why a scenario did not run (the report shows "–")
  log "$1: skipped ($2)"
  jq -n --arg r "$2" '{skipped: $r}' >"$RDIR/$1.json"
}

# ---- scenarios per target ----------------------------------------------------------------
run_target() { # kind: every scenario of one target, results into $RDIR
  local kind=$1 use_redis nodes emitter origins origin rate rates ramp_origin
  use_redis=1 nodes=$NODES emitter=1 origins=$ORIGINS
  case $kind in
    gateway) [ "$TOPOLOGY" = single ] && use_redis=0 ;;
    socketioxide)
      emitter=0   # socketioxide-redis has its own protocol, not @socket.io/redis-emitter's
      [ "$SX_REDIS" = 0 ] && { use_redis=0; nodes=1; } ;;
    node) ;;
    floor) use_redis=0 nodes=1 emitter=0 origins=client ;;   # one process, no Redis, no HTTP API
    *) echo "unknown target $kind (gateway, socketioxide, node, floor)" >&2; return 0 ;;
  esac
  log "=== $kind: $nodes node(s), redis=$use_redis"

  # Idle memory: one node alone.
  if [ "$IDLE_CONNS" != 0 ]; then
    if ! start_cluster "$kind" 1 "$use_redis"; then echo "skipping $kind: it does not start" >&2; return 0; fi
    bench "$kind-idle" idle --url "${SERVER_URLS[0]}" --connections "$IDLE_CONNS" --pid "${SERVER_PIDS[0]}" --settle 3
    stop_cluster
  fi

  if ! start_cluster "$kind" "$nodes" "$use_redis"; then echo "skipping $kind: cluster does not start" >&2; return 0; fi
  if [ "$CONNECT_COUNT" != 0 ]; then
    # shellcheck disable=SC2046
    bench "$kind-connect" connect $(url_args) --count "$CONNECT_COUNT" --concurrency "$CONNECT_CONCURRENCY"
  fi

  for origin in $origins; do
    if [ "$origin" = emitter ] && [ "$use_redis" = 0 ]; then continue; fi
    rates="$LOW_RATE"
    [ "$origin" != http ] && rates="$LOW_RATE $HIGH_RATES"
    for rate in $rates; do
      if [ "$origin" = emitter ] && [ "$emitter" = 0 ]; then
        skip "$kind-fanout-$origin-$rate" "socketioxide-redis does not speak the @socket.io/redis-emitter protocol"
        continue
      fi
      # shellcheck disable=SC2046
      bench "$kind-fanout-$origin-$rate" fanout $(url_args) $(pid_args) --receivers "$RECEIVERS" \
        --rate "$rate" --duration "$DURATION" --origin "$origin" --redis "$REDIS_URL" --room "$ROOM" \
        --api-key "$API_KEY" --payload-bytes "$PAYLOAD_BYTES"
    done
  done

  if [ "$RAMP" = 1 ]; then
    ramp_origin=emitter
    if [ "$use_redis" = 0 ] || [ "$emitter" = 0 ]; then ramp_origin=client; fi
    # shellcheck disable=SC2046
    bench "$kind-ramp-$ramp_origin" fanout $(url_args) $(pid_args) --receivers "$RECEIVERS" \
      --rate "$RAMP_START" --duration "$DURATION" --origin "$ramp_origin" --redis "$REDIS_URL" \
      --room "$ROOM" --ramp --ramp-factor "$RAMP_FACTOR" --ramp-max "$RAMP_MAX" --max-p99-ms "$RAMP_P99_MS" --payload-bytes "$PAYLOAD_BYTES"
  fi
  stop_cluster
}

# Rounds: the targets in TARGETS order, then reversed, and so on (A B, B A, A B, ...), so
# neither the run order nor a slow drift of the machine favours one target. With ROUNDS > 1
# each round's results go to $OUT/round-N and the report shows the median of the rounds.
for round in $(seq "$ROUNDS"); do
  RDIR=$OUT
  [ "$ROUNDS" -gt 1 ] && { RDIR=$OUT/round-$round; mkdir -p "$RDIR"; log "##### round $round of $ROUNDS"; }
  order=$TARGETS
  if [ $((round % 2)) = 0 ]; then order=$(printf '%s\n' $TARGETS | tac | xargs); fi
  for kind in $order; do run_target "$kind"; done
done

# ---- report --------------------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
  echo "topology: $TOPOLOGY, $NODES node(s) per target$(has_target socketioxide && [ "$SX_REDIS" = 0 ] && echo " (socketioxide: 1, in memory)")$(has_target floor && echo " (floor: 1 process, no Redis, client origin only)"); servers+redis on core $SERVER_CPU, generator on core $GEN_CPU"
  echo "rounds: $ROUNDS (order alternates each round, starting with: $TARGETS)"
  echo "sizes: QUICK=$QUICK idle=$IDLE_CONNS connect=$CONNECT_COUNT receivers=$RECEIVERS rates=\"$LOW_RATE $HIGH_RATES\" duration=${DURATION}s ramp=$RAMP_START*$RAMP_FACTOR..$RAMP_MAX"
} >"$OUT/meta.txt"
node bench/report.mjs "$OUT" | tee "$OUT/report.md"
echo "raw results: $OUT" >&2
