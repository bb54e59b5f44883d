#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need
# (Debian packages, npm packages by lockfile, pinned pip packages), builds the
# workspace, then runs the Rust tests, the Node.js client tests and the
# python-socketio tests. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v promtool >/dev/null || need_apt+=(prometheus)
# throwaway CA and certificates for the https webhook tests (tests/lib/tls.mjs)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

echo "==> npm ci (tests/)"
(cd tests && npm ci --no-audit --no-fund --loglevel=error)

echo "==> pip install -r tests/requirements.txt"
python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt 2>&1 | grep -v 'Running pip as the' || true

echo "==> cargo build"
cargo build --workspace --bins --locked
# the adapter's test server (tests/js/adapter-*.test.mjs)
cargo build -p sio-redis-adapter --examples --locked

status=0
summary=()
run() {
  local name=$1; shift
  echo "==> $name"
  if "$@"; then summary+=("$name: ok"); else summary+=("$name: FAILED"); status=1; fi
}

run "rust tests" cargo nextest run --workspace --locked --no-fail-fast
run "node client tests" bash -c "cd tests && node --test --test-concurrency=2 --test-timeout=180000 js/"
run "python client tests" python3 -m pytest -q --timeout=120 tests/python

echo
printf '%s\n' "${summary[@]}"
exit $status
