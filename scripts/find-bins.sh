#!/usr/bin/env bash
# Where cargo put the test binaries (CARGO_TARGET_DIR, .cargo/config.toml, or ./target), as
# `export` lines for the test runners: SIO_TEST_GATEWAY_BIN, SIO_EMIT_BIN, SIO_BENCH_BIN,
# SIO_TEST_NODE_BIN. Exits 2 with a clear message when one is missing (build first).
# Used by scripts/test.sh: eval "$(scripts/find-bins.sh)".
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
missing=0
for pair in SIO_TEST_GATEWAY_BIN=debug/sio-gateway SIO_EMIT_BIN=debug/sio-emit \
  SIO_BENCH_BIN=debug/sio-bench SIO_TEST_NODE_BIN=debug/examples/test-node; do
  var=${pair%%=*}; bin=$target_dir/${pair#*=}
  if [ -x "$bin" ]; then
    printf 'export %s=%q\n' "$var" "$bin"
  else
    echo "error: $bin is missing (target directory $target_dir): run cargo build --workspace --bins && cargo build -p sio-redis-adapter --examples" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 2
