#!/bin/sh
# Render an nginx template of this directory: substitutes ONLY the load balancer variables
# (LB_LISTEN, GATEWAY_1..GATEWAY_9), leaving nginx's own $variables untouched. Same result as the
# official nginx image's /docker-entrypoint.d/20-envsubst-on-templates.sh with
# NGINX_ENVSUBST_FILTER='^(LB_LISTEN|GATEWAY_[0-9]+)$', and as tests/lib/lb.mjs renderTemplate().
#   LB_LISTEN=8080 GATEWAY_1=10.0.0.1:3000 GATEWAY_2=... GATEWAY_3=... \
#     deploy/nginx/render.sh deploy/nginx/sio-gateway-sticky.conf.template > /etc/nginx/conf.d/sio-gateway.conf
set -eu
[ $# -eq 1 ] || { echo "usage: $0 TEMPLATE > OUTPUT" >&2; exit 2; }
vars='${LB_LISTEN}'
for i in 1 2 3 4 5 6 7 8 9; do vars="$vars \${GATEWAY_$i}"; done
exec envsubst "$vars" < "$1"
