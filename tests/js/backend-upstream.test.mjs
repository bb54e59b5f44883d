// Upstream sinks with real clients: events that are not join/leave/publish go to a Redis
// Stream (private redis-server; read back by a real consumer group with XREADGROUP from a
// separate redis-cli process; the client's ack carries the entry id) or to an HTTP webhook
// (node http server; the response body is the ack; also over https with a private CA given by
// SIO_GATEWAY_WEBHOOK_CA_FILE, and an untrusted certificate answered with an error ack). Rate
// limits apply before the sink; a sink that fails answers an error ack and is counted. A slow
// webhook backend flooded by clients at the rate limit sees at most
// --upstream-webhook-concurrency calls at once, the node's descriptors stay bounded, and the
// events with no room are answered `backend busy` and counted. Events over
// --upstream-max-event-bytes are refused with an error ack, counted, and never reach Redis.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { io, Manager } from "socket.io-client";
import { startGateway, startRedis, track, once, waitFor, scrapeMetrics, metricSum, freePort } from "../lib/harness.mjs";
import { makeTls, startHttpsBackend } from "../lib/tls.mjs";

const run = promisify(execFile);
const KEY_STREAM = "sio:events";

function client(t, url, opts = {}) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"], ...opts });
  track(t, s);
  return s;
}
async function connected(s) {
  if (!s.connected) await once(s, "connect");
  return s;
}
/** redis-cli in its own process; raw (non-tty) output lines. */
async function cli(port, ...args) {
  const { stdout } = await run("redis-cli", ["-p", String(port), ...args]);
  return stdout.trim().split("\n");
}

test("redis-stream: XADD with MAXLEN ~, ack after the write with the entry id, a consumer group reads the entries", { timeout: 90_000 }, async (t) => {
  const redis = track(t, await startRedis());
  assert.deepEqual(await cli(redis.port, "XGROUP", "CREATE", KEY_STREAM, "workers", "$", "MKSTREAM"), ["OK"]);
  const gw = track(t, await startGateway([
    "--upstream", "redis-stream", "--upstream-redis", redis.url, "--upstream-stream", KEY_STREAM,
    "--upstream-maxlen", "1000", "--node-id", "node-up-1",
  ]));
  const s = await connected(client(t, gw.url));
  const ack1 = await s.emitWithAck("order", { item: 42, note: "é" });
  assert.equal(ack1.ok, true);
  assert.match(ack1.id, /^\d+-\d+$/);
  const ack2 = await s.emitWithAck("chat-msg", "plain");
  assert.ok(ack2.id > ack1.id || ack2.id.length > ack1.id.length);
  // Without an ack the event still lands.
  s.emit("ping-backend", [1, 2]);

  // A real consumer in another process reads the group.
  let lines = [];
  for (let i = 0; i < 50; i++) {
    lines = lines.concat(await cli(redis.port, "XREADGROUP", "GROUP", "workers", "w1", "COUNT", "10", "STREAMS", KEY_STREAM, ">"));
    if (lines.filter((l) => l === "event").length >= 3) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // Raw output: stream name, then per entry: id, field, value, field, value...
  const entries = [];
  for (let i = 0; i < lines.length; i++) {
    if (/^\d+-\d+$/.test(lines[i])) {
      const e = { id: lines[i] };
      for (let j = i + 1; j + 1 < lines.length && !/^\d+-\d+$/.test(lines[j]) && lines[j] !== KEY_STREAM; j += 2) e[lines[j]] = lines[j + 1];
      entries.push(e);
    }
  }
  assert.equal(entries.length, 3, lines.join("|"));
  assert.deepEqual(entries.map((e) => e.event), ["order", "chat-msg", "ping-backend"]);
  const [e1] = entries;
  assert.equal(e1.id, ack1.id);
  assert.equal(e1.node, "node-up-1");
  assert.equal(e1.nsp, "/");
  assert.equal(e1.sid, s.id);
  assert.equal(e1.user, "");
  assert.deepEqual(JSON.parse(e1.data), { item: 42, note: "é" });
  assert.deepEqual(JSON.parse(entries[2].data), [1, 2]);
  assert.equal(entries[1].id, ack2.id);
  // The group acknowledges: nothing pending afterwards.
  assert.deepEqual(await cli(redis.port, "XACK", KEY_STREAM, "workers", ...entries.map((e) => e.id)), ["3"]);
  assert.deepEqual((await cli(redis.port, "XPENDING", KEY_STREAM, "workers"))[0], "0");

  // Redis gone: the ack says so, the event is counted as failed.
  await redis.stop();
  const failed = await s.timeout(15000).emitWithAck("order", { item: 43 });
  assert.equal(failed.ok, false);
  assert.match(failed.error, /^upstream unavailable: /);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="upstream_failed"'), 1);
});

test("redis-stream: the event rate limit applies before the sink", { timeout: 90_000 }, async (t) => {
  const redis = track(t, await startRedis());
  const gw = track(t, await startGateway([
    "--upstream", "redis-stream", "--upstream-redis", redis.url, "--event-rate", "0.1", "--event-burst", "2",
  ]));
  const s = await connected(client(t, gw.url));
  const acks = [];
  for (let i = 0; i < 4; i++) acks.push(await s.emitWithAck("e", i));
  assert.deepEqual(acks.map((a) => a.ok), [true, true, false, false]);
  assert.equal(acks[2].error, "rate limited");
  assert.deepEqual(await cli(redis.port, "XLEN", "sio:upstream"), ["2"]);
});

// Review 8 finding 4: --upstream-maxlen caps the stream's entries, not their bytes; one client
// sending 900 KB events at the default rate filled Redis with 1.23 GB in 20 s. Events over
// --upstream-max-event-bytes (default 64 KiB) are now refused with an error ack and counted.
test("redis-stream: events over --upstream-max-event-bytes (default 64 KiB) get an error ack, are counted and never reach Redis; smaller ones arrive", { timeout: 90_000 }, async (t) => {
  const redis = track(t, await startRedis());
  const gw = track(t, await startGateway([
    "--upstream", "redis-stream", "--upstream-redis", redis.url, "--upstream-stream", KEY_STREAM,
  ]));
  const s = await connected(client(t, gw.url));
  const CAP = 64 * 1024;
  // Event name + JSON of the data: {"blob":"..."} is 11 bytes besides the blob.
  const over = { blob: "x".repeat(CAP - 11 - "report".length + 1) };
  const under = { blob: "x".repeat(CAP - 11 - "report".length) };
  const refused = [];
  for (let i = 0; i < 20; i++) refused.push(await s.emitWithAck("report", over));
  for (const a of refused) {
    assert.equal(a.ok, false, JSON.stringify(a).slice(0, 200));
    assert.match(a.error, /too large/);
  }
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="upstream_too_large"'), 20);
  // Nothing of them in Redis: no stream at all yet.
  assert.deepEqual(await cli(redis.port, "XLEN", KEY_STREAM), ["0"]);
  const ok = await s.emitWithAck("report", under);
  assert.equal(ok.ok, true, JSON.stringify(ok).slice(0, 200));
  assert.deepEqual(await cli(redis.port, "XLEN", KEY_STREAM), ["1"]);
  const usage = Number((await cli(redis.port, "MEMORY", "USAGE", KEY_STREAM))[0]);
  assert.ok(usage < 2 * CAP, `the stream holds one event under the cap: ${usage} bytes`);
});

test("redis-stream: --upstream-max-event-bytes 0 leaves only --max-payload", { timeout: 90_000 }, async (t) => {
  const redis = track(t, await startRedis());
  const gw = track(t, await startGateway([
    "--upstream", "redis-stream", "--upstream-redis", redis.url, "--upstream-stream", KEY_STREAM,
    "--upstream-max-event-bytes", "0",
  ]));
  const s = await connected(client(t, gw.url));
  const a = await s.emitWithAck("report", { blob: "x".repeat(200_000) });
  assert.equal(a.ok, true, JSON.stringify(a).slice(0, 200));
  assert.deepEqual(await cli(redis.port, "XLEN", KEY_STREAM), ["1"]);
});

test("webhook sink: the POSTed event, the response body as the ack, errors as error acks", { timeout: 90_000 }, async (t) => {
  const seen = [];
  const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (d) => (data += d));
    req.on("end", () => {
      const body = JSON.parse(data);
      seen.push(body);
      if (body.event === "boom") { res.writeHead(500); res.end("backend exploded"); return; }
      if (body.event === "quiet") { res.writeHead(204); res.end(); return; }
      if (body.event === "slow") return; // never answers
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true, echo: body.data, from: "backend" }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => { server.closeAllConnections(); server.close(); });
  const url = `http://127.0.0.1:${server.address().port}/events`;
  const gw = track(t, await startGateway(["--upstream", "webhook", "--upstream-webhook", url, "--upstream-webhook-timeout", "500ms", "--node-id", "n-web"]));
  const s = await connected(client(t, gw.url));

  assert.deepEqual(await s.emitWithAck("ask", { q: 1 }), { ok: true, echo: { q: 1 }, from: "backend" });
  assert.deepEqual(seen[0], { node: "n-web", nsp: "/", sid: s.id, user: null, event: "ask", data: { q: 1 } });
  assert.deepEqual(await s.emitWithAck("quiet", 1), { ok: true });
  assert.deepEqual(await s.emitWithAck("boom", 1), { ok: false, error: "upstream refused the event: backend answered 500 Internal Server Error: backend exploded" });
  assert.deepEqual(await s.emitWithAck("slow", 1), { ok: false, error: "upstream unavailable: timed out after 500ms" });

  const gwDown = track(t, await startGateway(["--upstream", "webhook", "--upstream-webhook", `http://127.0.0.1:${await freePort()}/x`]));
  const s2 = await connected(client(t, gwDown.url));
  const a = await s2.emitWithAck("ask", 1);
  assert.equal(a.ok, false);
  assert.match(a.error, /^upstream unavailable: backend unreachable/);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="upstream_failed"'), 2);
});

test("webhook sink over https: round trip with the CA from SIO_GATEWAY_WEBHOOK_CA_FILE; an untrusted certificate is an error ack, the gateway keeps serving", { timeout: 90_000 }, async (t) => {
  const tls = makeTls(t);
  const be = await startHttpsBackend(t, tls.server, (b) =>
    b.event === "boom" ? [500, { message: "exploded" }] : [200, { ok: true, echo: b.data, over: "https" }]);
  const url = be.url("/events");

  // Trusted through the env var (the flag and the TOML key are the same option).
  const gw = track(t, await startGateway(["--upstream", "webhook", "--upstream-webhook", url, "--node-id", "n-tls"],
    { env: { SIO_GATEWAY_WEBHOOK_CA_FILE: tls.caFile } }));
  const s = await connected(client(t, gw.url));
  assert.deepEqual(await s.timeout(10000).emitWithAck("ask", { q: "tls" }), { ok: true, echo: { q: "tls" }, over: "https" });
  assert.deepEqual(be.seen[0], { node: "n-tls", nsp: "/", sid: s.id, user: null, event: "ask", data: { q: "tls" } });
  const boom = await s.timeout(10000).emitWithAck("boom", 1);
  assert.equal(boom.ok, false);
  assert.match(boom.error, /^upstream refused the event: backend answered 500/);

  // No CA option: the handshake fails, the client gets an error ack at once.
  const gw2 = track(t, await startGateway(["--upstream", "webhook", "--upstream-webhook", url, "--upstream-webhook-timeout", "3s"]));
  const a = await connected(client(t, gw2.url));
  const b = await connected(client(t, gw2.url));
  const started = Date.now();
  assert.deepEqual(await a.timeout(10000).emitWithAck("ask", 1),
    { ok: false, error: "upstream unavailable: backend unreachable: TLS handshake failed" });
  assert.ok(Date.now() - started < 3000, "answered at once, not after the timeout");
  await waitFor(() => /webhook TLS handshake failed.*UnknownIssuer/.test(gw2.output()), { what: "TLS reason in the log" });
  assert.equal(be.seen.length, 2, "nothing reached the backend through the untrusting gateway");
  // The relay still works on the same connections, and the next event gets the same answer.
  assert.deepEqual(await a.timeout(5000).emitWithAck("join", "r"), { ok: true });
  assert.deepEqual(await b.timeout(5000).emitWithAck("join", "r"), { ok: true });
  const got = once(b, "hello");
  assert.deepEqual(await a.timeout(5000).emitWithAck("publish", { room: "r", event: "hello", data: "still here" }), { ok: true });
  assert.equal(await got, "still here");
  assert.equal((await a.timeout(10000).emitWithAck("ask", 2)).error, "upstream unavailable: backend unreachable: TLS handshake failed");
  const m = await scrapeMetrics(gw2.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="upstream_failed"'), 2);
  assert.ok(gw2.running);
});

/**
 * A backend that holds every request `holdMs` before answering `{ok:true, echo}`; counts the
 * requests in flight at once (until answered or abandoned by the gateway) and the connections.
 */
async function slowBackend(t, holdMs) {
  const be = { inflight: 0, maxInflight: 0, total: 0, conns: 0, maxConns: 0, ports: [] };
  const server = http.createServer((req, res) => {
    let data = "";
    let done = false;
    const finish = () => { if (!done) { done = true; be.inflight--; } };
    be.inflight++;
    be.total++;
    be.maxInflight = Math.max(be.maxInflight, be.inflight);
    be.ports.push(req.socket.remotePort);
    req.on("data", (d) => (data += d));
    res.on("close", finish);
    setTimeout(() => {
      if (done) return;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true, echo: JSON.parse(data || "null")?.data ?? null }));
    }, holdMs);
  });
  server.on("connection", (c) => {
    be.conns++;
    be.maxConns = Math.max(be.maxConns, be.conns);
    c.on("close", () => be.conns--);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => { server.closeAllConnections(); server.close(); });
  be.url = `http://127.0.0.1:${server.address().port}/events`;
  return be;
}

const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

// Security review: each upstream event was its own HTTP call with no bound; against a slow
// backend every call in flight was a new connection held up to the timeout, ~500 descriptors
// per client at the allowed 100 events/s, until the node ran out ("Too many open files").
test("webhook sink: clients flooding a slow backend at the rate limit: at most --upstream-webhook-concurrency calls at once, descriptors bounded, the rest acked `backend busy` and counted", { timeout: 120_000 }, async (t) => {
  const HOLD = 3000, CONC = 8, CLIENTS = 4, SECONDS = 4;
  const be = await slowBackend(t, HOLD);
  const gw = track(t, await startGateway(["--upstream", "webhook", "--upstream-webhook", be.url,
    "--upstream-webhook-concurrency", String(CONC)]));
  const socks = [];
  for (let i = 0; i < CLIENTS; i++) socks.push(await connected(client(t, gw.url)));
  const fdsBefore = fdCount(gw.pid);

  // Each client: 10 events every 100 ms, the default --event-rate (100/s).
  const acks = [];
  const timers = socks.map((s, i) => setInterval(() => {
    for (let k = 0; k < 10; k++) {
      acks.push(s.timeout(20000).emitWithAck("order", { i, k }).catch((e) => ({ ok: false, error: `no ack: ${e.message}` })));
    }
  }, 100));
  let peakFds = fdsBefore;
  const sampler = setInterval(() => { peakFds = Math.max(peakFds, fdCount(gw.pid)); }, 50);
  t.after(() => { timers.forEach(clearInterval); clearInterval(sampler); });
  await sleep(SECONDS * 1000);
  timers.forEach(clearInterval);
  const results = await Promise.all(acks);
  clearInterval(sampler);

  const ok = results.filter((r) => r.ok === true);
  const busy = results.filter((r) => r.ok === false && r.error.startsWith("backend busy: "));
  const timedOut = results.filter((r) => r.ok === false && r.error === "upstream unavailable: timed out after 5s");
  const other = results.filter((r) => !ok.includes(r) && !busy.includes(r) && !timedOut.includes(r));
  console.log(`sent=${results.length} ok=${ok.length} busy=${busy.length} timed_out=${timedOut.length} other=${other.length} ` +
    `backend: total=${be.total} max_in_flight=${be.maxInflight} max_conns=${be.maxConns}; node fds: before=${fdsBefore} peak=${peakFds}`);
  assert.ok(be.maxInflight <= CONC, `the backend had ${be.maxInflight} requests in flight at once, at most ${CONC}`);
  assert.ok(be.maxConns <= 2 * CONC, `the backend had ${be.maxConns} connections open at once, at most ${2 * CONC}`);
  assert.ok(peakFds - fdsBefore <= 2 * CONC + 16, `the node's descriptors went from ${fdsBefore} to ${peakFds}`);
  assert.deepEqual(other.slice(0, 3), [], "every ack is ok, `backend busy` or a timeout");
  assert.ok(ok.length >= CONC, `${ok.length} events answered by the backend`);
  assert.ok(busy.length > results.length / 2, `${busy.length} of ${results.length} refused as busy`);
  assert.ok(busy.some((r) => r.error === `backend busy: no free slot within 2.5s (${CONC} calls of this node in flight)`), busy[0]?.error);
  assert.ok(busy.some((r) => r.error === "backend busy: 16 events of this connection (all its namespaces) already at the backend; wait for their acks"), busy[0]?.error);
  let m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="upstream_busy"'), busy.length);
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="upstream_failed"'), timedOut.length);
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="rate_limited"'), 0);

  // After the flood an honest client is served, twice on the same kept-alive connection.
  await waitFor(() => be.inflight === 0, { timeoutMs: 15000, what: "the backend idle" });
  const honest = await connected(client(t, gw.url));
  const portsBefore = be.ports.length;
  assert.deepEqual(await honest.timeout(10000).emitWithAck("order", { honest: 1 }), { ok: true, echo: { honest: 1 } });
  assert.deepEqual(await honest.timeout(10000).emitWithAck("order", { honest: 2 }), { ok: true, echo: { honest: 2 } });
  const [p1, p2] = be.ports.slice(portsBefore);
  // Kept alive: the second call goes on the first one's connection, or on another the pool
  // kept from the flood (which idle one the pool hands out depends on when the first went
  // back to it), never on a new one.
  const kept = new Set(be.ports.slice(0, portsBefore));
  assert.ok(p2 === p1 || kept.has(p2), `the second call (port ${p2}) used a kept-alive connection (first ${p1})`);

  // One connection: 16 events at the backend or waiting; the 17th is refused at once, and
  // events sent without an ack are refused and counted the same.
  const one = await connected(client(t, gw.url));
  for (let i = 0; i < 16; i++) one.timeout(20000).emitWithAck("order", i).catch(() => {});
  await waitFor(() => be.inflight === CONC, { what: `${CONC} of them at the backend` });
  await sleep(300);
  const started = Date.now();
  assert.deepEqual(await one.timeout(5000).emitWithAck("order", 17),
    { ok: false, error: "backend busy: 16 events of this connection (all its namespaces) already at the backend; wait for their acks" });
  assert.ok(Date.now() - started < 1000, "refused at once");
  for (let i = 0; i < 5; i++) one.emit("order", `no ack ${i}`);
  await waitFor(async () => {
    m = await scrapeMetrics(gw.url + "/metrics");
    return metricSum(m, "sio_gateway_dropped_messages_total", 'reason="upstream_busy"') === busy.length + 6;
  }, { what: "the 6 refusals counted" });
  assert.ok(be.maxInflight <= CONC);
});

// Review of the cap above: it was per namespace socket, so one connection opening /, /t-1,
// /t-2 and /t-3 held 64 of the node's 64 slots, and honest clients got `backend busy`.
test("webhook sink: a connection's 16 are for all its namespaces together; an honest client still gets a slot", { timeout: 60_000 }, async (t) => {
  const be = await slowBackend(t, 3000);
  const gw = track(t, await startGateway(["--namespace", "/,/t-1,/t-2,/t-3", "--upstream", "webhook",
    "--upstream-webhook", be.url, "--upstream-webhook-concurrency", "32"]));
  const manager = new Manager(gw.url, { transports: ["websocket"], reconnection: false });
  const socks = ["/", "/t-1", "/t-2", "/t-3"].map((n) => manager.socket(n));
  t.after(() => { socks.forEach((s) => s.disconnect()); manager.engine?.close(); });
  await Promise.all(socks.map(connected));
  const acks = [];
  for (const s of socks) for (let i = 0; i < 16; i++) acks.push(s.timeout(20000).emitWithAck("order", i));
  await waitFor(() => be.inflight === 16, { what: "16 of the hog's events at the backend" });
  await sleep(300);
  assert.equal(be.inflight, 16, "not more: the other namespaces' events were refused");
  const honest = await connected(client(t, gw.url));
  assert.deepEqual(await honest.timeout(10000).emitWithAck("order", "mine"), { ok: true, echo: "mine" });
  const results = await Promise.all(acks);
  assert.equal(results.filter((r) => r.ok === true).length, 16);
  assert.equal(results.filter((r) => r.error === "backend busy: 16 events of this connection (all its namespaces) already at the backend; wait for their acks").length, 48);
});

test("config: redis-stream without a Redis URL is refused at start-up", { timeout: 90_000 }, async () => {
  const { GATEWAY_BIN } = await import("../lib/harness.mjs");
  const e = await run(GATEWAY_BIN, ["--upstream", "redis-stream", "--listen", "127.0.0.1:0"]).catch((err) => err);
  assert.notEqual(e.code, 0);
  assert.match(e.stderr, /upstream.*needs --upstream-redis URL or --redis URL/);
});
