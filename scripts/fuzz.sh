#!/usr/bin/env bash
# The long fuzzing run (issue 14 item 5), not part of scripts/test.sh:
#   1. each cargo-fuzz target in crates/wire/fuzz (every sio-wire decoder that reads bytes from
#      Redis) for a fixed number of executions, on the stable toolchain;
#   2. the random-frame fuzzer (tests/js/fuzz-frames.test.mjs) against a real gateway binary over
#      WebSocket and HTTP long-polling, with many frames.
# Exits non-zero on the first crash; a libFuzzer crash input is kept under
# crates/wire/fuzz/artifacts/<target>/ (replay: cargo fuzz run --sanitizer none <target> <file>),
# a frame-fuzzer failure prints its FUZZ_SEED (replay: FUZZ_SEED=<seed> FUZZ_FRAMES=<n> ...).
#
# Stable Rust only: `--sanitizer none` keeps cargo-fuzz off the nightly-only -Zsanitizer flag
# (the SanitizerCoverage instrumentation libFuzzer steers by is stable rustc flags; panics and
# failed asserts still abort as crashes). Installs cargo-fuzz from crates.io when missing.
#
# Usage: scripts/fuzz.sh
# Env (defaults in brackets): RUNS [10000000] executions per cargo-fuzz target;
#   TARGETS ["decode_redis_message placeholder_json"]; FUZZ_FRAMES [100000] frames per transport
#   for the frame fuzzer; FUZZ_SEED [random]; SKIP_CARGO_FUZZ / SKIP_FRAMES [unset] skip a part.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=${RUNS:-10000000}
TARGETS=${TARGETS:-"decode_redis_message placeholder_json"}
export FUZZ_FRAMES=${FUZZ_FRAMES:-100000}

die() { echo "error: $*" >&2; exit 2; }
command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (https://rustup.rs)"

if [ -z "${SKIP_CARGO_FUZZ:-}" ]; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (cargo install --locked cargo-fuzz)"
    cargo install --locked cargo-fuzz
  fi
  cd "$ROOT/crates/wire/fuzz"
  echo "==> cargo fuzz build --sanitizer none -O"
  cargo fuzz build --sanitizer none -O
  for t in $TARGETS; do
    mkdir -p "corpus/$t"
    echo "==> cargo fuzz run $t: $RUNS executions"
    start=$(date +%s)
    log=$(mktemp)
    # -print_final_stats: executions and exec/s in the log; -rss_limit_mb: a decoder that
    # allocates without bound is a finding too.
    set +e
    cargo fuzz run --sanitizer none -O "$t" -- -runs="$RUNS" -print_final_stats=1 \
      -rss_limit_mb=2048 -max_len=4096 2>&1 | tee "$log" \
      | grep -E '^(#[0-9]+ +(pulse|DONE)|Done|stat::)|panicked|ERROR|SUMMARY'
    rc=${PIPESTATUS[0]}
    set -e
    secs=$(( $(date +%s) - start ))
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    rm -f "$log"
    if [ "$rc" -ne 0 ]; then
      echo "==> $t: CRASH (exit $rc); the input is in crates/wire/fuzz/artifacts/$t/" >&2
      exit 1
    fi
    echo "==> $t: ${execs:-?} executions in ${secs} s, 0 crashes"
  done
  cd "$ROOT"
fi

if [ -z "${SKIP_FRAMES:-}" ]; then
  command -v node >/dev/null || die "node not found: install Node.js >= 20"
  echo "==> cargo build (the gateway binary)"
  cargo build --workspace --bins --locked
  # SIO_TEST_GATEWAY_BIN where cargo put it (the harness falls back to target/debug/).
  eval "$(scripts/find-bins.sh 2>/dev/null | grep SIO_TEST_GATEWAY_BIN || true)"
  [ -d tests/node_modules ] || (cd tests && npm ci --no-audit --no-fund --loglevel=error)
  echo "==> frame fuzzer: FUZZ_FRAMES=$FUZZ_FRAMES per transport"
  # No per-test timeout: the frame count decides how long it runs.
  (cd tests && FUZZ_LONG=1 node --test --test-timeout=0 js/fuzz-frames.test.mjs)
fi
echo "==> fuzz: 0 crashes"
