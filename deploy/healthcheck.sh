#!/bin/bash
# Container health probe for sio-gateway (the image has no curl): GET /healthz over bash's
# /dev/tcp on the port of SIO_GATEWAY_LISTEN (default 0.0.0.0:3000; a wildcard address is probed
# on loopback). Exit 0 if the gateway answers HTTP 200, 1 otherwise. Exercised against a real
# gateway by tests/js/deploy-image.test.mjs.
set -u
listen=${SIO_GATEWAY_LISTEN:-0.0.0.0:3000}
port=${listen##*:}
host=${listen%:*}
host=${host#[}
host=${host%]}
case $host in
  "" | 0.0.0.0 | "::") host=127.0.0.1 ;;
esac
# (the group keeps the 2>/dev/null from applying to the whole script, as `exec 2>...` would)
{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || { echo "unhealthy: cannot connect to $host:$port" >&2; exit 1; }
printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
IFS= read -r -t 3 status <&3 || { echo "unhealthy: no answer from $host:$port" >&2; exit 1; }
exec 3<&-
case $status in
  "HTTP/1."?" 200"*) exit 0 ;;
  *) echo "unhealthy: ${status%$'\r'}" >&2; exit 1 ;;
esac
