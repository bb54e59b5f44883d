// Limits with real clients: oversize payloads (websocket and polling) fail clearly for the
// offender while others keep being served; --max-connections refuses with a connect_error;
// --event-rate drops excess events with an error ack and counts them; malformed Engine.IO
// requests get a 4xx and do not hurt the node.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { startGateway, track, once, waitFor, scrapeMetrics, metricSum } from "../lib/harness.mjs";

function client(t, url, opts = {}) {
  const s = io(url, { forceNew: true, reconnection: false, ...opts });
  track(t, s);
  return s;
}
const connected = async (s) => { if (!s.connected) await once(s, "connect"); return s; };

for (const transport of ["websocket", "polling"]) {
  test(`oversize payload over ${transport}: offender cut, others unaffected`, async (t) => {
    const gw = track(t, await startGateway(["--max-payload", "10000"]));
    const opts = transport === "websocket" ? { transports: ["websocket"] } : { transports: ["polling"], upgrade: false };
    const big = await connected(client(t, gw.url, opts));
    const other = await connected(client(t, gw.url, opts));
    const peer = await connected(client(t, gw.url, opts));
    assert.deepEqual(await other.emitWithAck("join", "r"), { ok: true });
    assert.deepEqual(await peer.emitWithAck("join", "r"), { ok: true });
    assert.deepEqual(await big.emitWithAck("join", "r"), { ok: true });
    let leaked = false;
    peer.on("big", () => { leaked = true; });

    // Just under the limit works.
    const okData = "x".repeat(9000);
    assert.deepEqual(await big.emitWithAck("publish", { room: "r", event: "fits", data: okData }), { ok: true });

    const disc = once(big, "disconnect", 5000);
    big.emit("publish", { room: "r", event: "big", data: "y".repeat(50000) });
    const [reason] = [].concat(await disc);
    assert.match(reason, /transport (close|error)/, "the offender's transport is closed");

    // Others keep working, and the oversize message was never relayed.
    const got = once(peer, "after");
    assert.deepEqual(await other.emitWithAck("publish", { room: "r", event: "after", data: 1 }), { ok: true });
    assert.equal(await got, 1);
    assert.equal(leaked, false);
    // A fresh client can still connect.
    await connected(client(t, gw.url, opts));
  });
}

test("max connections: the extra client gets a clear connect_error", async (t) => {
  const gw = track(t, await startGateway(["--max-connections", "2"]));
  const a = await connected(client(t, gw.url, { transports: ["websocket"] }));
  await connected(client(t, gw.url, { transports: ["polling"] }));
  const c = client(t, gw.url, { transports: ["websocket"] });
  const err = await once(c, "connect_error");
  assert.match(err.message, /max connections/);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_connections_refused_total", 'reason="max_connections"'), 1);
  // A slot frees up when someone leaves.
  a.disconnect();
  await waitFor(async () => {
    const d = client(t, gw.url, { transports: ["websocket"] });
    const r = await Promise.race([once(d, "connect").then(() => true), once(d, "connect_error").then(() => false)]);
    return r;
  }, { what: "slot freed" });
});

test("event rate: excess events are dropped with an error ack and counted", async (t) => {
  const gw = track(t, await startGateway(["--event-rate", "1", "--event-burst", "5"]));
  const a = await connected(client(t, gw.url, { transports: ["websocket"] }));
  const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => a.emitWithAck("join", `r${i}`)));
  const ok = acks.filter((x) => x.ok).length;
  const limited = acks.filter((x) => !x.ok && /rate limited/.test(x.error)).length;
  assert.ok(ok >= 5 && ok <= 7, `burst allowed (${ok})`);
  assert.equal(ok + limited, 20);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="rate_limited"'), limited);
  assert.ok(a.connected, "rate limiting does not disconnect");
});

function rawHttp(port, request) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let data = "";
    s.setTimeout(5000, () => { s.destroy(); reject(new Error("raw request timed out")); });
    s.on("data", (d) => { data += d; });
    s.on("end", () => resolve(data));
    s.on("error", reject);
    s.write(request);
  });
}

test("malformed Engine.IO requests get a 4xx and the node keeps serving", async (t) => {
  const gw = track(t, await startGateway([]));
  const base = gw.url + "/socket.io/";
  const cases = [
    ["GET", "?EIO=9&transport=polling"], // unsupported protocol
    ["GET", "?EIO=4&transport=carrier-pigeon"], // unknown transport
    ["GET", "?EIO=4&transport=polling&sid=doesnotexist"], // unknown session
    ["POST", "?EIO=4&transport=polling&sid=doesnotexist"],
    ["GET", "?transport=polling"], // no EIO
  ];
  for (const [method, q] of cases) {
    const r = await fetch(base + q, { method, body: method === "POST" ? "4garbage" : undefined });
    assert.ok(r.status >= 400 && r.status < 500, `${method} ${q} -> ${r.status}`);
  }
  // A valid session that posts garbage packets.
  const hs = await (await fetch(base + "?EIO=4&transport=polling")).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const bad = await fetch(base + `?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "9\u001e\u0000zz" });
  assert.ok(bad.status >= 200 && bad.status < 500, `garbage body -> ${bad.status}`);
  // Broken HTTP on the raw socket.
  const raw = await rawHttp(gw.port, "GARBAGE /socket.io/ HTTP/9.9\r\n\r\n");
  assert.match(raw, /^HTTP\/1\.1 4\d\d/);
  // Still alive and serving.
  assert.equal((await fetch(gw.url + "/healthz")).status, 200);
  const s = await connected(client(t, gw.url, { transports: ["websocket"] }));
  assert.deepEqual(await s.emitWithAck("join", "x"), { ok: true });
  assert.ok(gw.running);
});

test("--conn-rate-per-ip: new sessions over the rate get 429, existing sessions are unaffected", async (t) => {
  const gw = track(t, await startGateway(["--conn-rate-per-ip", "0.5"])); // burst 1
  const first = await connected(client(t, gw.url, { transports: ["polling"], upgrade: false }));
  const hs = await fetch(gw.url + "/socket.io/?EIO=4&transport=polling");
  assert.equal(hs.status, 429);
  assert.match((await hs.json()).message, /too many new connections/);
  const refused = client(t, gw.url, { transports: ["polling"] });
  const err = await once(refused, "connect_error");
  assert.ok(err, "socket.io-client sees the refusal as connect_error");
  // The existing polling session keeps working (its requests carry a sid).
  assert.deepEqual(await first.emitWithAck("join", "still-ok"), { ok: true });
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.ok(metricSum(m, "sio_gateway_connections_refused_total", 'reason="ip_rate"') >= 2);
  assert.ok(metricSum(m, "sio_gateway_http_requests_total", 'status="429"') >= 2);
});

test("--max-rooms: joins beyond the cap get an error ack; re-joining and leaving work", async (t) => {
  const gw = track(t, await startGateway(["--max-rooms", "3"]));
  const a = await connected(client(t, gw.url, { transports: ["websocket"] }));
  for (const r of ["r1", "r2", "r3"]) assert.deepEqual(await a.emitWithAck("join", r), { ok: true });
  const over = await a.emitWithAck("join", "r4");
  assert.equal(over.ok, false);
  assert.match(over.error, /too many rooms \(max 3/);
  assert.deepEqual(await a.emitWithAck("join", "r2"), { ok: true }, "re-joining a room is not a new room");
  assert.deepEqual(await a.emitWithAck("leave", "r1"), { ok: true });
  assert.deepEqual(await a.emitWithAck("join", "r4"), { ok: true }, "a slot freed by leave");
});

test("a client that stops reading: its queue is bounded, messages to it are dropped and counted, senders are not failed", async (t) => {
  const gw = track(t, await startGateway(["--max-buffer", "4", "--event-rate", "0", "--max-payload", "2000000"]));
  // A raw Engine.IO/Socket.IO websocket client that joins a room, then never reads again.
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/socket.io/?EIO=4&transport=websocket`);
  t.after(() => ws.terminate());
  const joined = new Promise((resolve, reject) => {
    ws.on("error", reject);
    ws.on("message", (m) => {
      const msg = m.toString();
      if (msg.startsWith("0")) ws.send("40");
      else if (msg.startsWith("40")) ws.send('421["join","slow"]');
      else if (msg.startsWith("431")) resolve();
    });
  });
  await joined;
  ws._socket.pause(); // stop reading: the kernel buffers fill, then the gateway's queue

  const sender = await connected(client(t, gw.url, { transports: ["websocket"] }));
  const reader = await connected(client(t, gw.url, { transports: ["websocket"] }));
  assert.deepEqual(await reader.emitWithAck("join", "slow"), { ok: true });
  let got = 0;
  reader.on("blob", () => { got += 1; });
  const blob = "z".repeat(200000);
  let dropped = 0;
  for (let i = 0; i < 400 && dropped === 0; i++) {
    const ack = await sender.emitWithAck("publish", { room: "slow", event: "blob", data: blob });
    assert.deepEqual(ack, { ok: true }, "the sender's publish succeeds although one recipient is stuck");
    if (i % 20 === 19) {
      const m = await scrapeMetrics(gw.url + "/metrics");
      dropped = metricSum(m, "sio_gateway_dropped_messages_total", 'reason="slow_client"');
    }
  }
  assert.ok(dropped > 0, "messages to the stuck client were dropped and counted");
  // The healthy reader got every message that was sent.
  const m = await scrapeMetrics(gw.url + "/metrics");
  const sent = metricSum(m, "sio_gateway_broadcasts_total", 'origin="client"');
  await waitFor(() => got === sent, { what: `reader got all ${sent} messages (has ${got})`, timeoutMs: 10000 });
});
