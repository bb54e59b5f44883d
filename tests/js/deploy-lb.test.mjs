// The load balancer configs of deploy/ (HAProxy and nginx, sticky and round-robin) run for real
// with the Debian haproxy/nginx binaries in front of three small Node backends that stand in for
// gateway-1..3: each answers with its id, sets `sio_node=<id>` like the gateway's handshake does,
// and echoes WebSocket messages prefixed with its id. What is checked is the balancers' part:
// round robin spreads, the sticky cookie pins, a dead pinned node fails over, WebSocket upgrades
// pass, X-Forwarded-For is set, idle timeouts exceed pingInterval + pingTimeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import { execFileSync } from "node:child_process";
import { WebSocket, WebSocketServer } from "ws";
import { freePort, track, once, waitFor } from "../lib/harness.mjs";
import {
  startHaproxy, startNginx, renderTemplate, NODE_IDS, HAPROXY_CONFIGS, NGINX_TEMPLATES, DEPLOY,
} from "../lib/lb.mjs";

/** A stand-in gateway node: HTTP answers {id, xff, cookie}; WebSocket echoes "<id>:<msg>". */
async function startBackend(id) {
  const port = await freePort();
  const hits = [];
  const server = http.createServer((req, res) => {
    if (req.url === "/readyz" || req.url === "/healthz") { res.end("ok"); return; } // LB health checks
    hits.push(req.url);
    const headers = { "content-type": "application/json" };
    if (!/sio_node=/.test(req.headers.cookie || "")) headers["set-cookie"] = `sio_node=${id}; Path=/; HttpOnly; SameSite=Lax`;
    res.writeHead(200, headers);
    res.end(JSON.stringify({ id, xff: req.headers["x-forwarded-for"] || null, cookie: req.headers.cookie || null }));
  });
  const wss = new WebSocketServer({ server });
  wss.on("connection", (ws) => ws.on("message", (m) => ws.send(`${id}:${m}`)));
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  const sockets = new Set();
  server.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  return {
    id, host: "127.0.0.1", port, hits,
    async stop() {
      for (const c of wss.clients) c.terminate();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(() => r()));
    },
  };
}

async function get(url, cookie) {
  const r = await fetch(url, { headers: cookie ? { cookie } : {} });
  assert.equal(r.status, 200, `GET ${url} -> ${r.status}`);
  return { body: await r.json(), setCookie: r.headers.get("set-cookie") };
}

async function wsEcho(url, cookie) {
  const ws = new WebSocket(url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket", {
    headers: cookie ? { cookie } : {},
  });
  try {
    await once(ws, "open");
    ws.send("hello");
    const [data] = await once(ws, "message"); // (data, isBinary)
    return String(data);
  } finally {
    ws.terminate();
  }
}

const LBS = [
  ["haproxy", startHaproxy],
  ["nginx", startNginx],
];

for (const [name, start] of LBS) {
  test(`${name} round-robin: spreads requests over the 3 nodes, ignores sio_node, passes WebSocket and X-Forwarded-For`, async (t) => {
    const backends = await Promise.all(NODE_IDS.map(startBackend));
    track(t, ...backends);
    const lb = track(t, await start({ variant: "roundrobin", backends }));

    const seen = [];
    for (let i = 0; i < 9; i++) seen.push((await get(`${lb.url}/socket.io/?EIO=4&transport=polling&i=${i}`)).body.id);
    for (const id of NODE_IDS) assert.ok(seen.includes(id), `${id} never chosen: ${seen}`);

    // No stickiness: the cookie does not pin.
    const pinned = new Set();
    for (let i = 0; i < 9; i++) pinned.add((await get(`${lb.url}/x?i=${i}`, "sio_node=gateway-2")).body.id);
    assert.ok(pinned.size > 1, `round robin must not follow the cookie, got only ${[...pinned]}`);

    const { body } = await get(`${lb.url}/xff`);
    assert.match(body.xff || "", /127\.0\.0\.1/, "X-Forwarded-For carries the client address");

    const echo = await wsEcho(lb.url);
    assert.match(echo, /^gateway-[123]:hello$/);

    if (lb.statsUrl) {
      // HAProxy's Prometheus exporter (frontend stats): the three nodes pass the /readyz check.
      const text = await waitFor(async () => {
        const body = await (await fetch(`${lb.statsUrl}/metrics`)).text();
        return /^haproxy_backend_active_servers\{proxy="gateways"\} 3$/m.test(body) ? body : false;
      }, { what: "haproxy_backend_active_servers 3" });
      for (const id of NODE_IDS) assert.match(text, new RegExp(`^haproxy_server_status\\{proxy="gateways",server="${id}",state="UP"\\} 1$`, "m"));
      assert.equal((await fetch(`${lb.statsUrl}/stats`)).status, 200);
    }
  });

  test(`${name} sticky: the gateway's sio_node cookie pins the client, WebSocket included; a dead pinned node fails over`, async (t) => {
    const backends = await Promise.all(NODE_IDS.map(startBackend));
    track(t, ...backends);
    const lb = track(t, await start({ variant: "sticky", backends }));

    // Handshake without cookie: some node answers and names itself; the balancer keeps the
    // gateway's Set-Cookie as is (HAProxy `preserve`, nginx passes it through).
    const first = await get(`${lb.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(first.setCookie, `sio_node=${first.body.id}; Path=/; HttpOnly; SameSite=Lax`);
    const cookie = `sio_node=${first.body.id}`;
    for (let i = 0; i < 6; i++) {
      const r = await get(`${lb.url}/socket.io/?EIO=4&transport=polling&sid=abc&i=${i}`, cookie);
      assert.equal(r.body.id, first.body.id, "follow-up requests stay on the node that set the cookie");
      assert.equal(r.body.cookie, cookie, "the cookie reaches the gateway unchanged");
    }

    for (let i = 0; i < 9; i++) {
      assert.equal((await get(`${lb.url}/p?i=${i}`, "sio_node=gateway-2")).body.id, "gateway-2");
    }
    assert.equal(await wsEcho(lb.url, "sio_node=gateway-2"), "gateway-2:hello");
    assert.equal(await wsEcho(lb.url, "sio_node=gateway-3"), "gateway-3:hello");
    assert.match((await get(`${lb.url}/xff`, "sio_node=gateway-1")).body.xff || "", /127\.0\.0\.1/);

    // gateway-2 goes away: its clients are answered by another node (HAProxy `option
    // redispatch`, nginx `backup` servers) instead of getting errors.
    await backends[1].stop();
    const after = await get(`${lb.url}/after`, "sio_node=gateway-2");
    assert.notEqual(after.body.id, "gateway-2");
  });
}

test("nginx templates: tests/lib/lb.mjs renders exactly like deploy/nginx/render.sh (envsubst), leaving nginx $variables alone", (t) => {
  const env = { LB_LISTEN: "127.0.0.1:1234", GATEWAY_1: "a:1", GATEWAY_2: "b:2", GATEWAY_3: "c:3" };
  for (const file of Object.values(NGINX_TEMPLATES)) {
    const text = fs.readFileSync(file, "utf8");
    const mine = renderTemplate(text, env);
    assert.doesNotMatch(mine, /\$\{?(LB_LISTEN|GATEWAY_\d)/, "every LB variable substituted");
    assert.match(mine, /\$http_upgrade/, "nginx variables untouched");
    let theirs;
    try {
      theirs = execFileSync(`${DEPLOY}/nginx/render.sh`, [file], { env: { PATH: process.env.PATH, ...env } }).toString();
    } catch (e) {
      if (e.code === "ENOENT" || /envsubst: not found|envsubst: command not found/.test(String(e.stderr))) {
        t.skip("envsubst (gettext-base) not installed");
        return;
      }
      throw e;
    }
    assert.equal(mine, theirs, `${file}: render mismatch`);
  }
});

test("load balancer idle timeouts exceed pingInterval + pingTimeout (>= 60 s)", () => {
  const seconds = (v, unit) => Number(v) * ({ s: 1, m: 60, h: 3600 }[unit || "s"] ?? NaN);
  for (const file of Object.values(HAPROXY_CONFIGS)) {
    const text = fs.readFileSync(file, "utf8");
    for (const k of ["client", "server", "tunnel"]) {
      const m = text.match(new RegExp(`^\\s*timeout ${k} (\\d+)([smh]?)\\s*$`, "m"));
      assert.ok(m, `${file}: timeout ${k} missing`);
      assert.ok(seconds(m[1], m[2]) >= 60, `${file}: timeout ${k} ${m[1]}${m[2]} < 60 s`);
    }
  }
  for (const file of Object.values(NGINX_TEMPLATES)) {
    const text = fs.readFileSync(file, "utf8");
    for (const k of ["proxy_read_timeout", "proxy_send_timeout"]) {
      const m = text.match(new RegExp(`^\\s*${k} (\\d+)([smh]?);`, "m"));
      assert.ok(m, `${file}: ${k} missing`);
      assert.ok(seconds(m[1], m[2]) >= 60, `${file}: ${k} < 60 s`);
    }
  }
});
