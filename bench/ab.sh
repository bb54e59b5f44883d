#!/usr/bin/env bash
# A/B of two gateway builds in one run (e.g. before and after a refactor): each build in turn,
# ROUNDS times, on NODES nodes sharing a private redis-server (cluster mode, so the adapter is on
# the path), gateways and Redis pinned to core 0 and the generator to core 1; `sio-bench fanout`
# with RECEIVERS receivers in one room (spread over the nodes), ORIGIN broadcasts (a client on
# the first node, or the emitter), at each of RATES broadcasts/s for DURATION s.
# Prints one line per run: round, build, rate, deliveries/s, loss, p50/p99 ms, CPU µs/delivery,
# and what the nodes counted as dropped during the run (`dropped_messages_total` and
# `adapter_dropped_total` by reason, summed over the nodes; `-` when nothing), so a loss says
# where it happened (a receiver's full queue, the adapter's inbound side) or that the nodes lost
# nothing they know of.
# Alternating the builds spreads a busy machine's noise over both.
#
# Usage: bench/ab.sh A_GATEWAY_BIN B_GATEWAY_BIN [SIO_BENCH_BIN]
#   (the same binary twice with different A_ARGS / B_ARGS compares two configurations)
# Env: ROUNDS [2] RATES ["10 100"] RECEIVERS [3000] DURATION [8] PORT [17511] REDIS_PORT [16511]
#   NODES [1] (ports PORT, PORT+1, ...) ORIGIN [client] (client | emitter | http)
#   A_ARGS, B_ARGS: extra gateway arguments of each side [none]
# Not a test: never part of scripts/test.sh.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,10p "$0" >&2; exit 2; }
A=$1 B=$2 BENCH=${3:-target/release/sio-bench}
for bin in "$A" "$B" "$BENCH"; do [ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 2; }; done
ROUNDS=${ROUNDS:-2} RATES=${RATES:-"10 100"} RECEIVERS=${RECEIVERS:-3000} DURATION=${DURATION:-8}
PORT=${PORT:-17511} REDIS_PORT=${REDIS_PORT:-16511} NODES=${NODES:-1} ORIGIN=${ORIGIN:-client}
ulimit -n 20000 2>/dev/null || true
dir=$(mktemp -d)
taskset -c 0 redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes --logfile "$dir/redis.log" >/dev/null
trap 'redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
sleep 0.5
echo "round build rate deliveries/s loss p50_ms p99_ms cpu_us_per_delivery drops"
# The drop counters of every node, one "metric{reason} value" line each, summed over the nodes.
drops() {
  for u in "$@"; do curl -sf "$u/metrics" || true; done \
    | awk '/^(sio_gateway_)?(dropped_messages_total|adapter_dropped_total)\{/ { sum[$1] += $2 } END { for (k in sum) print k, sum[k] }'
}
# What grew between two drops() outputs, as one word ("-" when nothing did).
drops_delta() {
  node -e 'const p=(s)=>Object.fromEntries(s.split("\n").filter(Boolean).map((l)=>{const i=l.lastIndexOf(" ");return [l.slice(0,i),Number(l.slice(i+1))]}));
    const a=p(process.argv[1]),b=p(process.argv[2]);
    const d=Object.entries(b).map(([k,v])=>[k.replace(/^sio_gateway_/,"").replace(/_total\{reason="(.*)"\}$/,":$1"),v-(a[k]||0)]).filter(([,v])=>v>0);
    console.log(d.length?d.map(([k,v])=>k+"="+v).join(","):"-")' "$1" "$2"
}
for round in $(seq "$ROUNDS"); do
  for name in A B; do
    bin=$A args=${A_ARGS:-}; [ $name = B ] && bin=$B args=${B_ARGS:-}
    pids=() urls=()
    for i in $(seq 0 $((NODES - 1))); do
      port=$((PORT + i))
      # shellcheck disable=SC2086 # the extra arguments are meant to split
      taskset -c 0 "$bin" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id "ab-$port" \
        --event-rate 0 --api-key ab-bench-key --log-level warn $args >"$dir/gw-$i.log" 2>&1 &
      pids+=(--pid $!) urls+=(--url "http://127.0.0.1:$port")
      for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    done
    metric_urls=()
    for ((i = 1; i < ${#urls[@]}; i += 2)); do metric_urls+=("${urls[i]}"); done
    for rate in $RATES; do
      before=$(drops "${metric_urls[@]}")
      line=$(taskset -c 1 "$BENCH" fanout "${urls[@]}" --redis "redis://127.0.0.1:$REDIS_PORT" \
        --receivers "$RECEIVERS" --rate "$rate" --duration "$DURATION" --origin "$ORIGIN" --room bench \
        --api-key ab-bench-key "${pids[@]}" --json --quiet 2>/dev/null \
        | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).steps[0];
            console.log([process.argv[1],process.argv[2],process.argv[3],Math.round(r.deliveries_per_s),r.loss_ratio,
              r.latency.p50_ms,r.latency.p99_ms,r.server_cpu_us_per_delivery.toFixed(2)].join(" "))})' "$round" "$name" "$rate")
      echo "$line $(drops_delta "$before" "$(drops "${metric_urls[@]}")")"
    done
    for ((i = 1; i < ${#pids[@]}; i += 2)); do kill "${pids[i]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    sleep 1
  done
done
