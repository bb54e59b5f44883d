#!/usr/bin/env bash
# The cost of room history on the publish path (issue 17), one sio-gateway node (release), in
# the same run: sio-bench fanout with RECEIVERS receivers at each of RATES broadcasts/s, client
# origin, into a room WITHOUT history (`bench`) and one WITH (`h:bench`, --history 'h:*=1000/10m');
# then the time to recover 1,000 missed messages (bench/history-recover.mjs), on one node and
# across two nodes + Redis (published on node 1, recovered on node 2).
# Usage: bench/history.sh   (RECEIVERS [3000]  RATES ["10 100 334"]  DURATION [5]  BUILD [1])
# Not a test: never part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
RECEIVERS=${RECEIVERS:-3000}
RATES=${RATES:-"10 100 334"}
DURATION=${DURATION:-5}
if [ "${BUILD:-1}" = 1 ]; then cargo build --release -q -p sio-gateway -p sio-bench; fi
GW=${CARGO_TARGET_DIR:-target}/release/sio-gateway
BENCH=${CARGO_TARGET_DIR:-target}/release/sio-bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_up() { for _ in $(seq 100); do curl -sf "$1/healthz" >/dev/null && return 0; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }

if [ "${SKIP_FANOUT:-0}" = 1 ]; then RATES=""; fi
P=$(free_port)
"$GW" --listen 127.0.0.1:$P --history 'h:*=1000/10m' --event-rate 0 --max-buffer 1024 --log-level warn &
pids+=($!); GWPID=$!
wait_up http://127.0.0.1:$P
echo "| broadcasts/s | room | deliveries/s | lost | p50 / p99 (ms) | server CPU per delivery (µs) |"
echo "|---:|---|---:|---:|---|---:|"
for rate in $RATES; do
  for room in bench h:bench; do
    out=$("$BENCH" --json --quiet fanout --url http://127.0.0.1:$P --receivers "$RECEIVERS" --rate "$rate" \
      --duration "$DURATION" --origin client --room "$room" --pid "$GWPID")
    node -e '
      const r = JSON.parse(process.argv[1]); const s = r.steps[r.steps.length - 1];
      const h = process.argv[3] === "h:bench" ? "history" : "no history";
      console.log(`| ${process.argv[2]} | ${h} | ${Math.round(s.deliveries_per_s)} | ${s.lost} | ${s.latency.p50_ms.toFixed(1)} / ${s.latency.p99_ms.toFixed(1)} | ${s.server_cpu_us_per_delivery?.toFixed(1) ?? "-"} |`);
    ' "$out" "$rate" "$room"
  done
done
echo
echo "recover 1,000 missed messages, one node:"
node bench/history-recover.mjs --url http://127.0.0.1:$P --n 1000 --runs 5

R=$(free_port)
redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning &
pids+=($!)
sleep 0.5
P1=$(free_port); P2=$(free_port)
for p in $P1 $P2; do
  "$GW" --listen 127.0.0.1:$p --redis redis://127.0.0.1:$R --node-id "n$p" --history 'h:*=5000/10m' \
    --event-rate 0 --max-buffer 1024 --log-level warn &
  pids+=($!)
done
wait_up http://127.0.0.1:$P1; wait_up http://127.0.0.1:$P2
echo "recover 1,000 missed messages, 2 nodes + Redis (published on node 1, recovered on node 2):"
node bench/history-recover.mjs --url http://127.0.0.1:$P1 --recover-url http://127.0.0.1:$P2 --n 1000 --runs 5
