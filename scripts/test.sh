#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need (Debian packages,
# cargo-nextest, npm packages by lockfile, pinned pip packages in a project virtualenv at
# tests/.venv), builds the workspace, then runs the Rust tests, the Node.js client tests and the
# python-socketio tests against the binaries cargo built (wherever CARGO_TARGET_DIR puts them).
# Prints counts per runner; the last line reads `N passed, N failed`. Exits non-zero if anything
# fails or a prerequisite is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { echo "error: $*" >&2; exit 2; }

need() { command -v "$1" >/dev/null || die "$1 not found: $2"; }
need cargo "install a Rust toolchain (https://rustup.rs), >= 1.94"
need node "install Node.js >= 20"
need npm "install npm (comes with Node.js)"
need python3 "install Python >= 3.10"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js >= 20 needed, found $(node --version)"

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
apt_install() {
  command -v apt-get >/dev/null || die "missing Debian packages ($*) and no apt-get: install them by hand"
  echo "==> installing Debian packages: $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v promtool >/dev/null || need_apt+=(prometheus)
# throwaway CA and certificates for the https webhook tests (tests/lib/tls.mjs)
command -v openssl >/dev/null || need_apt+=(openssl)
# the project virtualenv (Debian splits venv out of python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
# headless browser for the chat page tests (driven by playwright-core from tests/package-lock.json)
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then apt_install "${need_apt[@]}"; fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest (cargo install --locked cargo-nextest)"
  cargo install --locked cargo-nextest
fi

echo "==> npm ci (tests/)"
(cd tests && npm ci --no-audit --no-fund --loglevel=error)
echo "==> npm ci (web/: the chat page's socket.io-client, as scripts/run.sh installs it)"
npm ci --prefix web --no-audit --no-fund --ignore-scripts --loglevel=error

VENV=$ROOT/tests/.venv
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> python3 -m venv tests/.venv"
  python3 -m venv "$VENV"
fi
echo "==> pip install -r tests/requirements.txt (into tests/.venv)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt \
  || die "pip install into tests/.venv failed (see above)"

echo "==> cargo build"
cargo build --workspace --bins --locked
# the adapter's test server (tests/js/adapter-*.test.mjs)
cargo build -p sio-redis-adapter --examples --locked

# Where cargo put the binaries (CARGO_TARGET_DIR is honoured); stops here if one is missing.
bins=$(scripts/find-bins.sh) || die "test binaries missing (see above)"
eval "$bins"

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
status=0
summary=()
total_pass=0
total_fail=0
# run NAME LOG COUNTER CMD...: run CMD with its output shown and kept; COUNTER extracts
# "passed failed" from the log.
run() {
  local name=$1 log=$LOGS/$2 counter=$3; shift 3
  echo "==> $name"
  local rc=0
  "$@" 2>&1 | tee "$log" || rc=$?
  local counts pass fail
  counts=$($counter "$log")
  pass=${counts% *}; fail=${counts#* }
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
  if [ "$rc" -eq 0 ]; then
    summary+=("$name: ok, $pass passed, $fail failed")
  else
    summary+=("$name: FAILED, $pass passed, $fail failed"); status=1
  fi
}
# nextest: "Summary [ 1.2s] 52 tests run: 51 passed, 1 failed, 0 skipped"
count_nextest() {
  local line; line=$(grep -E 'tests? run:' "$1" | tail -1 || true)
  echo "$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line" | head -1 || true) $(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line" | head -1 || true)" \
    | awk '{print ($1==""?0:$1), ($2==""?0:$2)}'
}
# node --test (TAP): "# pass N" / "# fail N"
count_node() {
  echo "$(grep -E '^# pass [0-9]+' "$1" | tail -1 | awk '{print $3}') $(grep -E '^# fail [0-9]+' "$1" | tail -1 | awk '{print $3}')" \
    | awk '{print ($1==""?0:$1), ($2==""?0:$2)}'
}
# pytest: "3 failed, 5 passed in 1.2s" (any order)
count_pytest() {
  local line; line=$(grep -E '[0-9]+ (passed|failed)' "$1" | tail -1 || true)
  echo "$(grep -oE '[0-9]+ passed' <<<"$line" | awk '{print $1}') $(grep -oE '[0-9]+ failed' <<<"$line" | awk '{print $1}')" \
    | awk '{print ($1==""?0:$1), ($2==""?0:$2)}'
}

run "rust tests" rust.log count_nextest cargo nextest run --workspace --locked --no-fail-fast
run "node client tests" node.log count_node bash -c "cd tests && node --test --test-concurrency=2 --test-timeout=180000 js/"
run "python client tests" python.log count_pytest "$VENV/bin/python" -m pytest -q --timeout=120 tests/python

echo
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
exit $status
