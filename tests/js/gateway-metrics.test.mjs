// Operations endpoints with real clients: /metrics parses as Prometheus text (checked by
// promtool when available), counters move with traffic, the connections gauge follows the
// transport across an upgrade, /metrics can live on its own listener; /healthz, /readyz and
// the chat page with its locally served socket.io client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { io } from "socket.io-client";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  startGateway, startProcess, freePort, track, once, waitFor, scrapeMetrics, metricSum, GATEWAY_BIN,
} from "../lib/harness.mjs";

const connected = async (s) => { if (!s.connected) await once(s, "connect"); return s; };
function client(t, url, opts = {}) {
  const s = io(url, { forceNew: true, reconnection: false, ...opts });
  track(t, s);
  return s;
}

test("metrics move with traffic and follow transport upgrades", async (t) => {
  const gw = track(t, await startGateway(["--namespace", "/,/chat"]));
  const text = await (await fetch(gw.url + "/metrics")).text();
  const promtool = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  if (!promtool.error) {
    // promtool exits 0 for valid exposition (it may print lint hints, which are fine).
    assert.equal(promtool.status, 0, `promtool: ${promtool.stdout}${promtool.stderr}`);
  }
  for (const family of [
    "sio_gateway_connections_total", "sio_gateway_events_received_total", "sio_gateway_events_sent_total",
    "sio_gateway_redis_up", "sio_gateway_broadcast_fanout_seconds_count", "sio_gateway_auth_failures_total",
  ]) assert.ok(text.includes(family), `exports ${family}`);

  const before = await scrapeMetrics(gw.url + "/metrics");
  const up = client(t, gw.url, { transports: ["polling", "websocket"] });
  await connected(up);
  const polling = await connected(client(t, gw.url, { transports: ["polling"], upgrade: false }));
  const ws = await connected(client(t, gw.url + "/chat", { transports: ["websocket"] }));
  if (up.io.engine.transport.name !== "websocket") await once(up.io.engine, "upgrade");

  // The client reports its upgrade when it has sent the UPGRADE packet; the server switches
  // when it has read it. Wait for the server's view rather than racing it.
  const m1 = await waitFor(async () => {
    const m = await scrapeMetrics(gw.url + "/metrics");
    return m['sio_gateway_connections{namespace="/",transport="websocket"}'] === 1 ? m : null;
  }, { what: "upgraded client counted as websocket" });
  assert.equal(m1['sio_gateway_connections{namespace="/",transport="websocket"}'], 1, "upgraded client counted as websocket");
  assert.equal(m1['sio_gateway_connections{namespace="/",transport="polling"}'], 1);
  assert.equal(m1['sio_gateway_connections{namespace="/chat",transport="websocket"}'], 1);
  assert.equal(metricSum(m1, "sio_gateway_connections_total") - metricSum(before, "sio_gateway_connections_total"), 3);

  // Deliveries: one publish to a room with two other members = 2 events sent.
  await up.emitWithAck("join", "m");
  await polling.emitWithAck("join", "m");
  const third = await connected(client(t, gw.url, { transports: ["websocket"] }));
  await third.emitWithAck("join", "m");
  const got = Promise.all([once(polling, "e"), once(third, "e")]);
  assert.deepEqual(await up.emitWithAck("publish", { room: "m", event: "e", data: 1 }), { ok: true });
  await got;
  const m2 = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m2, "sio_gateway_events_sent_total") - metricSum(m1, "sio_gateway_events_sent_total"), 2);
  assert.equal(metricSum(m2, "sio_gateway_broadcasts_total", 'origin="client"'), 1);
  assert.equal(metricSum(m2, "sio_gateway_events_received_total") - metricSum(m1, "sio_gateway_events_received_total"), 4);
  assert.equal(m2.sio_gateway_broadcast_fanout_seconds_count, 1);
  assert.equal(m2.sio_gateway_redis_up, 0, "single node: no Redis");

  ws.disconnect();
  await waitFor(async () => {
    const m = await scrapeMetrics(gw.url + "/metrics");
    return metricSum(m, "sio_gateway_disconnections_total", 'reason="client_disconnect"') >= 1 &&
      m['sio_gateway_connections{namespace="/chat",transport="websocket"}'] === 0;
  }, { what: "disconnect counted" });
});

test("dynamic namespace children are counted under their pattern", async (t) => {
  const gw = track(t, await startGateway(["--namespace", "/,/tenant-*"]));
  await Promise.all(["/tenant-a", "/tenant-b", "/tenant-b"].map((n) =>
    connected(client(t, gw.url + n, { transports: ["websocket"] }))));
  await connected(client(t, gw.url, { transports: ["polling"], upgrade: false }));
  // The gauge moves in the namespace's connect handler, which may run just after the client
  // saw CONNECT: wait for it rather than race it.
  let m;
  await waitFor(async () => {
    m = await scrapeMetrics(gw.url + "/metrics");
    return m['sio_gateway_connections{namespace="/tenant-*",transport="websocket"}'] === 3
      && m['sio_gateway_connections{namespace="/",transport="polling"}'] === 1;
  }, { what: "3 websockets under /tenant-* and 1 polling client under /", timeoutMs: 5000 });
  assert.ok(!Object.keys(m).some((k) => k.includes("tenant-a")), "no per-tenant series");
});

test("--metrics-listen serves /metrics on its own port only", async (t) => {
  const mport = await freePort();
  const gw = track(t, await startGateway(["--metrics-listen", `127.0.0.1:${mport}`]));
  await waitFor(async () => (await fetch(`http://127.0.0.1:${mport}/metrics`).catch(() => ({}))).status === 200,
    { what: "metrics listener" });
  const text = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
  assert.match(text, /sio_gateway_connections_total/);
  assert.equal((await fetch(gw.url + "/metrics")).status, 404);
});

test("GET /metrics on the client port cannot make the node walk its socket table per request", { timeout: 120_000 }, async (t) => {
  // An anonymous client hammers /metrics (on the client port by default). The connections
  // gauge is recounted from socketioxide's socket table: with thousands of sockets a walk
  // is not free, so recounts are paced to 1 % of a core and scrapes in between serve the
  // last count. Without the pacing every one of the scrapes below walks the table.
  const gw = track(t, await startGateway(["--conn-rate-per-ip", "0", "--max-connections", "10000"]));
  const N = 3000;
  const sockets = [];
  for (let i = 0; i < N; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 100); j++) {
      const s = client(t, gw.url, { transports: ["websocket"] });
      sockets.push(s);
      batch.push(connected(s));
    }
    await Promise.all(batch);
  }
  const recounts = (m) => metricSum(m, "sio_gateway_connections_recounts_total");
  const before = recounts(await scrapeMetrics(gw.url + "/metrics"));
  const SCRAPES = 400;
  for (let i = 0; i < SCRAPES; i += 20) {
    await Promise.all(Array.from({ length: 20 }, () => fetch(gw.url + "/metrics").then((r) => r.text())));
  }
  const walked = recounts(await scrapeMetrics(gw.url + "/metrics")) - before;
  assert.ok(walked < SCRAPES / 2, `${walked} recounts for ${SCRAPES + 1} scrapes of ${N} sockets`);
  // Paced, not frozen: the gauge catches up with what changed.
  for (const s of sockets.slice(0, 500)) s.disconnect();
  await waitFor(async () => {
    const m = await scrapeMetrics(gw.url + "/metrics");
    return m['sio_gateway_connections{namespace="/",transport="websocket"}'] === N - 500;
  }, { what: "the gauge counts the sockets left", timeoutMs: 20_000 });
});

test("health, readiness and the chat page", async (t) => {
  const gw = track(t, await startGateway(["--node-id", "page-node"]));
  const h = await fetch(gw.url + "/healthz");
  assert.equal(h.status, 200);
  const r = await fetch(gw.url + "/readyz");
  assert.equal(r.status, 200);
  assert.equal((await r.json()).node_id, "page-node");
  const page = await fetch(gw.url + "/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /text\/html/);
  // Review 8: not framed by other sites, not sniffed, not cached (it carries a node's cookie).
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  assert.equal(page.headers.get("content-security-policy"), "frame-ancestors 'none'");
  assert.equal(page.headers.get("cache-control"), "no-store");
  const html = await page.text();
  // tests/node_modules has socket.io-client installed, so the page uses the local copy.
  assert.match(html, /<script src="\/socket\.io\.min\.js">/);
  assert.match(html, /emit\("publish"/);
  // The page's own script at least parses (no browser here to run it).
  const inline = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  assert.equal(inline.length, 1);
  assert.doesNotThrow(() => new Function(inline[0]));
  const js = await fetch(gw.url + "/socket.io.min.js");
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type"), /javascript/);
  assert.match(await js.text(), /Socket\.IO v4/);

  // Without a local bundle the page points to the public CDN: run a copy of the binary from a
  // directory with no node_modules anywhere above it or its working directory.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-cdn-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, "sio-gateway");
  try { fs.linkSync(GATEWAY_BIN, bin); } catch { fs.copyFileSync(GATEWAY_BIN, bin); fs.chmodSync(bin, 0o755); }
  const port = await freePort();
  const p = track(t, startProcess(bin, ["--listen", `127.0.0.1:${port}`], { cwd: dir, name: "gw-cdn" }));
  const html2 = await waitFor(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => null);
    return res && res.status === 200 ? res.text() : null;
  }, { what: "cdn page" });
  assert.match(html2, /<script src="https:\/\/cdn\.socket\.io\/4\.\d+\.\d+\/socket\.io\.min\.js">/);
  assert.equal((await fetch(`http://127.0.0.1:${port}/socket.io.min.js`)).status, 404);
  assert.ok(p.running);
});

test("every handshake carries the sticky-session cookie and node header", async (t) => {
  const gw = track(t, await startGateway(["--node-id", "node-7", "--sticky-cookie", "my_node"]));
  const r = await fetch(gw.url + "/socket.io/?EIO=4&transport=polling");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("set-cookie"), /^my_node=node-7; Path=\/; HttpOnly/);
  assert.equal(r.headers.get("x-sio-node"), "node-7");
  // Requests within a session do not re-set it.
  const sid = JSON.parse((await r.text()).slice(1)).sid;
  const r2 = await fetch(gw.url + `/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "40" });
  assert.equal(r2.status, 200);
  assert.equal(r2.headers.get("set-cookie"), null);
  // Websocket-only handshakes (101) carry it too: a raw upgrade request shows the headers.
  const { default: net } = await import("node:net");
  const head = await new Promise((resolve, reject) => {
    const s = net.connect(gw.port, "127.0.0.1");
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      if (buf.includes("\r\n\r\n")) { s.destroy(); resolve(buf.split("\r\n\r\n")[0]); }
    });
    s.on("error", reject);
    s.write("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  });
  assert.match(head, /^HTTP\/1\.1 101/);
  assert.match(head, /set-cookie: my_node=node-7/i);
});

test("--cors-origin: listed origins get CORS headers on Socket.IO requests, others do not", async (t) => {
  const gw = track(t, await startGateway(["--cors-origin", "http://app.example"]));
  const pre = await fetch(gw.url + "/socket.io/?EIO=4&transport=polling", {
    method: "OPTIONS",
    headers: { Origin: "http://app.example", "Access-Control-Request-Method": "POST" },
  });
  assert.ok(pre.status < 300, `preflight ${pre.status}`);
  assert.equal(pre.headers.get("access-control-allow-origin"), "http://app.example");
  assert.equal(pre.headers.get("access-control-allow-credentials"), "true");
  const hs = await fetch(gw.url + "/socket.io/?EIO=4&transport=polling", { headers: { Origin: "http://app.example" } });
  assert.equal(hs.status, 200);
  assert.equal(hs.headers.get("access-control-allow-origin"), "http://app.example");
  const other = await fetch(gw.url + "/socket.io/?EIO=4&transport=polling", { headers: { Origin: "http://evil.example" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  // Without --cors-origin: no CORS headers at all (same-origin only).
  const plain = track(t, await startGateway([]));
  const r = await fetch(plain.url + "/socket.io/?EIO=4&transport=polling", { headers: { Origin: "http://app.example" } });
  assert.equal(r.headers.get("access-control-allow-origin"), null);
});
