#!/usr/bin/env bash
# Floor benchmark: one sio-gateway node against `sio-bench floor-server`, the cheapest
# Socket.IO broadcast server (crates/bench/src/floor.rs): one write(2) per delivery and no
# task woken ("floor"), and the same with writes coalesced every $COALESCE_MS ms per member
# ("floor-coalesced"). What the floor cannot reach on this machine, no server with the same
# write pattern can: the gateway's targets are read against it (BENCHMARKS.md).
#
# Same pinning as compare.sh: the server on core $SERVER_CPU, the generator on $GEN_CPU;
# single node, no Redis, client-originated broadcasts (the relay's `publish`).
#
# Usage: bench/floor.sh              (~7 min on 2 cores after the build)
# Env (defaults in brackets): TARGETS ["gateway floor floor-coalesced"] COALESCE_MS [20]
#   IDLE_CONNS [10000] RECEIVERS [3000] RATES ["10 33 100 333"] DURATION [10]
#   RAMP_START [33] RAMP_FACTOR [1.5] RAMP_MAX [5000] RAMP_P99_MS [50]
#   SERVER_CPU [0] GEN_CPU [1] BUILD [1] OUT [mktemp dir] GATEWAY_ARGS [""]
# Not a test: never part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=${TARGETS:-"gateway floor floor-coalesced"}
COALESCE_MS=${COALESCE_MS:-20}
IDLE_CONNS=${IDLE_CONNS:-10000}
RECEIVERS=${RECEIVERS:-3000}
RATES=${RATES:-"10 33 100 333"}
DURATION=${DURATION:-10}
RAMP_START=${RAMP_START:-33}
RAMP_FACTOR=${RAMP_FACTOR:-1.5}
RAMP_MAX=${RAMP_MAX:-5000}
RAMP_P99_MS=${RAMP_P99_MS:-50}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
BUILD=${BUILD:-1}
GATEWAY_ARGS=${GATEWAY_ARGS:-}
OUT=${OUT:-$(mktemp -d /tmp/sio-floor.XXXXXX)}
mkdir -p "$OUT"
GATEWAY_BIN=target/release/sio-gateway
BENCH_BIN=target/release/sio-bench
ulimit -n 20000 2>/dev/null || true

log() { echo "==> $*" >&2; }
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true; SERVER=; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
  log "cargo build --release -p sio-bench -p sio-gateway"
  cargo build --release -q -p sio-bench -p sio-gateway
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
start() { # kind port
  case $1 in
    gateway)
      # shellcheck disable=SC2086
      taskset -c "$SERVER_CPU" "$GATEWAY_BIN" --listen "127.0.0.1:$2" --event-rate 0 --log-level warn \
        $GATEWAY_ARGS >>"$OUT/$1.log" 2>&1 & ;;
    floor) taskset -c "$SERVER_CPU" "$BENCH_BIN" floor-server --quiet --listen "127.0.0.1:$2" & ;;
    floor-coalesced)
      taskset -c "$SERVER_CPU" "$BENCH_BIN" floor-server --quiet --listen "127.0.0.1:$2" \
        --coalesce-ms "$COALESCE_MS" & ;;
  esac
  SERVER=$!
  disown "$SERVER" 2>/dev/null || true
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not start" >&2
  return 1
}
bench() { # name args...
  local name=$1; shift
  log "$name: sio-bench $*"
  taskset -c "$GEN_CPU" "$BENCH_BIN" --json --quiet "$@" >"$OUT/$name.json" 2>"$OUT/$name.err" ||
    echo "   failed: $(tail -3 "$OUT/$name.err")" >&2
}

for kind in $TARGETS; do
  port=$(free_port); start "$kind" "$port"
  bench "$kind-idle" idle --url "http://127.0.0.1:$port" --connections "$IDLE_CONNS" --pid "$SERVER" --settle 3
  cleanup
  port=$(free_port); start "$kind" "$port"
  for rate in $RATES; do
    bench "$kind-fanout-$rate" fanout --url "http://127.0.0.1:$port" --pid "$SERVER" --receivers "$RECEIVERS" \
      --rate "$rate" --duration "$DURATION" --origin client --room bench
  done
  bench "$kind-ramp" fanout --url "http://127.0.0.1:$port" --pid "$SERVER" --receivers "$RECEIVERS" \
    --rate "$RAMP_START" --duration "$DURATION" --origin client --room bench \
    --ramp --ramp-factor "$RAMP_FACTOR" --ramp-max "$RAMP_MAX" --max-p99-ms "$RAMP_P99_MS"
  cleanup
done

{
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
  echo "- one server process on core $SERVER_CPU, generator on core $GEN_CPU; $RECEIVERS receivers, client origin, ${DURATION}s per rate; floor-coalesced: --coalesce-ms $COALESCE_MS"
  echo
  node - "$OUT" "$TARGETS" "$RATES" <<'JS'
const fs = require("fs"), path = require("path");
const [dir, targets, rates] = [process.argv[2], process.argv[3].split(" "), process.argv[4].split(" ")];
const load = (n) => { try { return JSON.parse(fs.readFileSync(path.join(dir, n + ".json"), "utf8")); } catch { return undefined; } };
const f = (v, d) => (v == null || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
console.log(`| metric | ${targets.join(" | ")} |\n|---|${targets.map(() => "---:").join("|")}|`);
const row = (label, get) => console.log(`| ${label} | ${targets.map((t) => get(t)).join(" | ")} |`);
row("idle RSS per connection (KB)", (t) => f(load(`${t}-idle`)?.bytes_per_connection / 1000, 2));
for (const r of rates) {
  const s = (t) => load(`${t}-fanout-${r}`)?.steps?.[0];
  row(`${r}/s: deliveries/s (loss %)`, (t) => s(t) ? `${f(s(t).deliveries_per_s, 0)} (${f(s(t).loss_ratio * 100, 2)})` : "–");
  row(`${r}/s: latency p50 / p99 (ms)`, (t) => s(t)?.latency ? `${f(s(t).latency.p50_ms, 1)} / ${f(s(t).latency.p99_ms, 1)}` : "–");
  row(`${r}/s: server CPU per delivery (µs)`, (t) => f(s(t)?.server_cpu_us_per_delivery, 2));
}
row("ramp: highest lossless deliveries/s", (t) => f(load(`${t}-ramp`)?.highest_lossless_deliveries_per_s, 0));
row(`ramp: … with p99 ≤ ${load(`${targets[0]}-ramp`)?.max_p99_ms ?? "?"} ms`, (t) => f(load(`${t}-ramp`)?.highest_within_p99_deliveries_per_s, 0));
JS
} | tee "$OUT/report.md"
echo "raw results: $OUT" >&2
