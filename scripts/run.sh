#!/usr/bin/env bash
# Run one sio-gateway node (single node, in-memory adapter) on http://0.0.0.0:3000, the README's
# first command. The chat page's socket.io-client bundle is installed once from the registry by
# lockfile (web/package-lock.json, `npm ci --prefix web`) and served by the gateway itself, so
# the page works without internet access in the browser. Extra arguments go to the gateway:
#   scripts/run.sh --listen 127.0.0.1:4000 --log-level debug
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "scripts/run.sh: $*" >&2; exit 1; }
command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs)"
bundle=web/node_modules/socket.io-client/dist/socket.io.min.js
if [ ! -s "$bundle" ]; then
  command -v npm >/dev/null || die "npm is missing: it installs the chat page's socket.io-client (web/package-lock.json); install Node.js >= 20"
  echo "==> npm ci --prefix web (the chat page's socket.io-client, by lockfile)" >&2
  npm ci --prefix web --no-audit --no-fund --ignore-scripts --loglevel=error
  [ -s "$bundle" ] || die "npm ci did not install $bundle"
fi
# An explicit --client-js or SIO_GATEWAY_CLIENT_JS of the caller wins (flags beat env).
export SIO_GATEWAY_CLIENT_JS="${SIO_GATEWAY_CLIENT_JS:-$PWD/$bundle}"
exec cargo run --release --locked -p sio-gateway -- "$@"
