// Issue 13 item 1 (and 8c): data holding forged Socket.IO binary placeholders
// (`{"_placeholder":true,"num":N}`) must never be relayed, whichever way it comes in: a client's
// `publish` (raw Engine.IO frames, the way an attacker sends it), the HTTP API, or a
// @socket.io/redis-emitter broadcast through Redis. Stock socket.io-client receivers stay
// connected and get nothing malformed; legit binary still arrives exactly once. Also: a lone
// UTF-16 surrogate in a published string is relayed (as U+FFFD) instead of refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { Emitter } from "@socket.io/redis-emitter";
import { startGateway, startRedis, track, once, waitFor, scrapeMetrics, metricSum, sleep } from "../lib/harness.mjs";
import { redisClient } from "./fixtures/adapter-cluster.mjs";

const ROOM = "victims";
const KEY = "security-payload-api-key";

function client(t, url, opts = {}) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"], ...opts });
  track(t, s);
  return s;
}
const connected = async (s) => { if (!s.connected) await once(s, "connect"); return s; };

/** `n` stock clients in `room`, each recording every event and every disconnect. */
async function receivers(t, url, n, room = ROOM) {
  const rs = await Promise.all(Array.from({ length: n }, () => connected(client(t, url))));
  for (const r of rs) {
    r.got = [];
    r.drops = [];
    r.onAny((ev, ...args) => r.got.push([ev, ...args]));
    r.on("disconnect", (reason) => r.drops.push(reason));
    assert.deepEqual(await r.emitWithAck("join", room), { ok: true });
  }
  return rs;
}

/** Every receiver got `marker` (so anything sent before it was processed) and none dropped. */
async function allStillHere(rs, marker) {
  await waitFor(() => rs.every((r) => r.got.some(([ev]) => ev === marker) || r.drops.length), {
    what: `marker ${marker} at every receiver`,
  });
  for (const [i, r] of rs.entries()) {
    assert.deepEqual(r.drops, [], `receiver ${i} was disconnected`);
    assert.ok(r.connected, `receiver ${i} is connected`);
  }
}

/**
 * A raw Engine.IO v4 / Socket.IO v5 websocket client: what an attacker scripts, no parser
 * in the way. `send(packet, ...binaries)` writes the text frame and then each binary frame.
 */
async function rawClient(t, url) {
  const ws = new WebSocket(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
  track(t, { close: () => ws.terminate() });
  const texts = [];
  ws.on("message", (d, isBinary) => {
    if (isBinary) return;
    const s = d.toString();
    if (s === "2") ws.send("3"); // ping -> pong
    texts.push(s);
  });
  await once(ws, "open");
  await waitFor(() => texts.some((s) => s.startsWith("0{")), { what: "engine.io open" });
  ws.send("40");
  await waitFor(() => texts.some((s) => s.startsWith("40")), { what: "socket.io connect" });
  return {
    ws,
    send(packet, ...binaries) {
      ws.send("4" + packet);
      for (const b of binaries) ws.send(b, { binary: true });
    },
    /** The first argument of the ack with this id (`43<id>[arg]`). */
    async ack(id) {
      const prefix = `43${id}[`;
      const s = await waitFor(() => texts.find((x) => x.startsWith(prefix)), { what: `ack ${id}` });
      return JSON.parse(s.slice(prefix.length - 1))[0];
    },
  };
}

const ph = (num) => ({ _placeholder: true, num });

test("forged placeholders in a client publish: error ack, 20 receivers unharmed, binary still works", { timeout: 60000 }, async (t) => {
  const gw = track(t, await startGateway());
  const rs = await receivers(t, gw.url, 20);
  const attacker = await rawClient(t, gw.url);
  const sender = await connected(client(t, gw.url));

  // The report's packet: one attachment, placeholders 0 and 3 (out of range).
  const forged = { room: ROOM, event: "e", data: { a: ph(0), b: ph(3) } };
  attacker.send(`51-7${JSON.stringify(["publish", forged])}`, Buffer.from([1, 2, 3]));
  const ack = await attacker.ack(7);
  assert.equal(ack.ok, false);
  assert.match(ack.error, /_placeholder/);

  // A fake placeholder beside a real binary (receivers would get the binary twice).
  const alias = { room: ROOM, event: "e", data: { real: ph(0), fake: ph(0) } };
  attacker.send(`51-8${JSON.stringify(["publish", alias])}`, Buffer.from([4, 5]));
  assert.equal((await attacker.ack(8)).ok, false);
  // Key order swapped (JS reads it as a placeholder, socketioxide does not), no binary at all.
  const swapped = { room: ROOM, event: "e", data: [{ num: 0, _placeholder: true }] };
  attacker.send(`29${JSON.stringify(["publish", swapped])}`);
  assert.equal((await attacker.ack(9)).ok, false);

  // A legit binary publish (Buffer) arrives exactly once, intact, at every receiver.
  const payload = { file: Buffer.from([9, 8, 7]), name: "x.bin" };
  assert.deepEqual(await sender.emitWithAck("publish", { room: ROOM, event: "bin", data: payload }), { ok: true });
  assert.deepEqual(await sender.emitWithAck("publish", { room: ROOM, event: "marker", data: 1 }), { ok: true });
  await allStillHere(rs, "marker");
  for (const r of rs) {
    assert.equal(r.got.filter(([ev]) => ev === "e").length, 0, "no forged event relayed");
    const bins = r.got.filter(([ev]) => ev === "bin");
    assert.equal(bins.length, 1);
    assert.deepEqual([...new Uint8Array(bins[0][1].file)], [9, 8, 7]);
    assert.equal(bins[0][1].name, "x.bin");
  }
  // The attacker is still connected too (refused, not punished), and it was all counted.
  assert.equal(attacker.ws.readyState, WebSocket.OPEN);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="invalid"'), 3);
});

test("one forged publish per second does not put receivers in a reconnect loop", { timeout: 60000 }, async (t) => {
  const gw = track(t, await startGateway());
  const rs = await receivers(t, gw.url, 20);
  const attacker = await rawClient(t, gw.url);
  for (let i = 0; i < 3; i++) {
    attacker.send(`51-${20 + i}${JSON.stringify(["publish", { room: ROOM, event: "e", data: { a: ph(0), b: ph(3) } }])}`, Buffer.from([i]));
    assert.equal((await attacker.ack(20 + i)).ok, false);
    await sleep(300);
  }
  const sender = await connected(client(t, gw.url));
  assert.deepEqual(await sender.emitWithAck("publish", { room: ROOM, event: "marker", data: 2 }), { ok: true });
  await allStillHere(rs, "marker");
});

test("HTTP API: placeholder-shaped data is a 400 with a clear message", { timeout: 30000 }, async (t) => {
  const gw = track(t, await startGateway(["--api-key", KEY]));
  const rs = await receivers(t, gw.url, 3);
  const emit = (body) => fetch(gw.url + "/api/v1/emit", {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  for (const body of [
    { rooms: ROOM, event: "e", data: ph(0) },
    { rooms: ROOM, event: "e", data: { deep: [ph(5)] } },
    { rooms: ROOM, event: "e", args: ["x", { _placeholder: true }] },
  ]) {
    const r = await emit(body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match((await r.json()).error, /_placeholder/);
  }
  const ok = await emit({ rooms: ROOM, event: "marker", data: { placeholder: true, num: 0 } });
  assert.equal(ok.status, 200);
  await allStillHere(rs, "marker");
  for (const r of rs) assert.equal(r.got.filter(([ev]) => ev === "e").length, 0);
});

test("redis-emitter broadcast with placeholder-shaped data: not relayed, counted", { timeout: 60000 }, async (t) => {
  const redis = track(t, await startRedis());
  const gw = track(t, await startGateway(
    ["--redis", redis.url, "--node-id", "sec-1", "--cluster-secret", "security-payload-secret-0123456789"],
    { waitReady: true },
  ));
  const rs = await receivers(t, gw.url, 20);
  const rc = track(t, await redisClient(redis.url));
  const emitter = new Emitter(rc);
  const decodeErrors = async () =>
    metricSum(await scrapeMetrics(gw.url + "/metrics"), "sio_gateway_adapter_decode_errors_total");
  const before = await decodeErrors();

  emitter.to(ROOM).emit("e", Buffer.from([1]), ph(5)); // out of range beside a real binary
  emitter.to(ROOM).emit("e", Buffer.from([2]), ph(0)); // would alias the real binary
  emitter.to(ROOM).emit("e", { x: ph(0) }); // no binary at all
  emitter.to(ROOM).emit("bin", Buffer.from([3, 4]));
  emitter.to(ROOM).emit("marker", 3);
  await allStillHere(rs, "marker");
  for (const r of rs) {
    assert.equal(r.got.filter(([ev]) => ev === "e").length, 0, "no forged broadcast relayed");
    const bins = r.got.filter(([ev]) => ev === "bin");
    assert.equal(bins.length, 1);
    assert.deepEqual([...new Uint8Array(bins[0][1])], [3, 4]);
  }
  await waitFor(async () => (await decodeErrors()) - before === 3, { what: "3 refused broadcasts counted" });
});

test("lone surrogate in a published string: ok, relayed with U+FFFD in its place", { timeout: 30000 }, async (t) => {
  const gw = track(t, await startGateway());
  const [r] = await receivers(t, gw.url, 1);
  const sender = await connected(client(t, gw.url));
  const cut = "😀".slice(0, 1); // "\ud83d", what cutting an emoji in half leaves
  const data = { text: "a" + cut, pair: "b😀", low: "\ude00c" };
  assert.deepEqual(await sender.emitWithAck("publish", { room: ROOM, event: "s", data }), { ok: true });
  const [, got] = await waitFor(() => r.got.find(([ev]) => ev === "s"), { what: "relayed string" });
  assert.deepEqual(got, { text: "a\ufffd", pair: "b😀", low: "\ufffdc" });
});
