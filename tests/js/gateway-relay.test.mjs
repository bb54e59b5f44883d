// Single-node gateway driven by the stock socket.io-client 4.x over every transport
// combination: connect/disconnect, acks, join/leave and room delivery (members get it, the
// sender and non-members do not), namespace-wide publish, binary payloads, custom and
// pattern namespaces, unknown namespace, reserved names and the "no sink" path.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startGateway, track, once, sleep, scrapeMetrics, metricSum } from "../lib/harness.mjs";

const TRANSPORTS = {
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"], upgrade: false },
  upgrade: { transports: ["polling", "websocket"] },
};

function client(t, url, opts = {}, nsp = "/") {
  const s = io(url + nsp, { forceNew: true, reconnection: false, ...opts });
  track(t, s);
  return s;
}

async function connected(s) {
  if (!s.connected) await once(s, "connect");
  return s;
}

/** Collect every `event` received by a socket. */
function collect(s, event) {
  const got = [];
  s.on(event, (...args) => got.push(args.length === 1 ? args[0] : args));
  return got;
}

for (const [name, opts] of Object.entries(TRANSPORTS)) {
  test(`relay over ${name}: acks, rooms, sender excluded, binary`, async (t) => {
    const gw = track(t, await startGateway([]));
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => connected(client(t, gw.url, opts))));
    if (name === "upgrade") {
      // The upgrade really happens: every client ends on websocket.
      await Promise.all([a, b, c].map(async (s) => {
        if (s.io.engine.transport.name !== "websocket") await once(s.io.engine, "upgrade");
      }));
    } else {
      assert.equal(a.io.engine.transport.name, opts.transports[0]);
    }

    assert.deepEqual(await a.emitWithAck("join", "room1"), { ok: true });
    assert.deepEqual(await b.emitWithAck("join", "room1"), { ok: true });
    // c stays outside room1.
    const gotA = collect(a, "chat");
    const gotB = collect(b, "chat");
    const gotC = collect(c, "chat");

    const ack = await a.emitWithAck("publish", { room: "room1", event: "chat", data: { text: "hi", n: 1 } });
    assert.deepEqual(ack, { ok: true });
    await waitLen(gotB, 1);
    assert.deepEqual(gotB[0], { text: "hi", n: 1 });

    // Binary payload, nested and top-level, arrives as a Buffer.
    const bin = Buffer.from([0, 1, 2, 250, 255]);
    await a.emitWithAck("publish", { room: "room1", event: "chat", data: { file: bin, name: "x" } });
    await a.emitWithAck("publish", { room: "room1", event: "chat", data: bin });
    await waitLen(gotB, 3);
    assert.ok(Buffer.isBuffer(gotB[1].file), "nested binary stays binary");
    assert.deepEqual([...gotB[1].file], [...bin]);
    assert.equal(gotB[1].name, "x");
    assert.ok(Buffer.isBuffer(gotB[2]), "top-level binary stays binary");
    assert.deepEqual([...gotB[2]], [...bin]);

    // Leave: b no longer receives room1 traffic.
    assert.deepEqual(await b.emitWithAck("leave", "room1"), { ok: true });
    await a.emitWithAck("publish", { room: "room1", event: "chat", data: "after-leave" });
    // Namespace-wide publish reaches b and c but not the sender; it also acts as a barrier
    // proving that the "after-leave" message (sent before) was not delivered to b.
    await a.emitWithAck("publish", { event: "chat", data: "everyone" });
    await waitLen(gotC, 1);
    await waitLen(gotB, 4);
    assert.equal(gotB[3], "everyone");
    assert.equal(gotC[0], "everyone");
    assert.equal(gotB.length, 4);
    assert.equal(gotC.length, 1, "non-member c never got room traffic");
    assert.equal(gotA.length, 0, "the sender is excluded");

    // Clean disconnect.
    const disc = once(a, "disconnect");
    a.disconnect();
    const [reason] = [].concat(await disc);
    assert.equal(reason, "io client disconnect");
  });
}

async function waitLen(arr, n, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (arr.length < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} messages, got ${arr.length}: ${JSON.stringify(arr)}`);
    await sleep(10);
  }
}

test("refusals: reserved names, bad payloads, no sink, rules", async (t) => {
  const gw = track(t, await startGateway(["--can-join", "public:*", "--can-publish", "public:*"]));
  const a = await connected(client(t, gw.url, TRANSPORTS.websocket));
  const r1 = await a.emitWithAck("publish", { room: "public:x", event: "disconnect", data: 1 });
  assert.equal(r1.ok, false);
  assert.match(r1.error, /reserved/);
  const r2 = await a.emitWithAck("publish", "not an object");
  assert.equal(r2.ok, false);
  assert.match(r2.error, /publish expects/);
  const r3 = await a.emitWithAck("somethingElse", { x: 1 });
  assert.equal(r3.ok, false);
  assert.match(r3.error, /no upstream sink/);
  a.emit("fireAndForget", 1); // no ack asked: just dropped and counted
  const r4 = await a.emitWithAck("join", "private:x");
  assert.equal(r4.ok, false);
  assert.match(r4.error, /not allowed to join/);
  assert.deepEqual(await a.emitWithAck("join", "public:x"), { ok: true });
  const r5 = await a.emitWithAck("publish", { event: "chat", data: 1 });
  assert.equal(r5.ok, false, "namespace-wide publish is checked against the namespace path");
  assert.match(r5.error, /not allowed to publish/);
  const r6 = await a.emitWithAck("join", "");
  assert.equal(r6.ok, false);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="no_sink"'), 2);
  assert.equal(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="forbidden"'), 2);
  assert.ok(metricSum(m, "sio_gateway_dropped_messages_total", 'reason="invalid"') >= 3);
  // The connection survived all of it.
  assert.ok(a.connected);
});

test("namespaces: custom, pattern, unknown refused with connect_error", async (t) => {
  const gw = track(t, await startGateway(["--namespace", "/", "--namespace", "/chat,/tenant-*"]));
  const chatA = await connected(client(t, gw.url, TRANSPORTS.websocket, "/chat"));
  const chatB = await connected(client(t, gw.url, TRANSPORTS.polling, "/chat"));
  const rootC = await connected(client(t, gw.url, TRANSPORTS.websocket, "/"));
  const gotB = collect(chatB, "hello");
  const gotC = collect(rootC, "hello");
  assert.deepEqual(await chatA.emitWithAck("publish", { event: "hello", data: "in /chat" }), { ok: true });
  await waitLen(gotB, 1);
  assert.equal(gotB[0], "in /chat");

  // Pattern namespace: two tenants are isolated from each other.
  const t1a = await connected(client(t, gw.url, TRANSPORTS.websocket, "/tenant-acme"));
  const t1b = await connected(client(t, gw.url, TRANSPORTS.websocket, "/tenant-acme"));
  const t2 = await connected(client(t, gw.url, TRANSPORTS.websocket, "/tenant-other"));
  const got1 = collect(t1b, "hello");
  const got2 = collect(t2, "hello");
  await t1a.emitWithAck("publish", { event: "hello", data: "acme only" });
  await waitLen(got1, 1);
  await t2.emitWithAck("publish", { event: "ping2", data: 0 }); // barrier on the other tenant
  assert.equal(got2.length, 0);
  assert.equal(gotC.length, 0, "root namespace saw nothing from /chat or tenants");

  // Unknown namespace: a clear connect_error, and the gateway keeps serving.
  const bad = client(t, gw.url, TRANSPORTS.websocket, "/nope");
  const err = await once(bad, "connect_error");
  assert.equal(err.message, "Invalid namespace");
  const bad2 = client(t, gw.url, TRANSPORTS.polling, "/tenant");
  assert.equal((await once(bad2, "connect_error")).message, "Invalid namespace");
  assert.deepEqual(await chatA.emitWithAck("join", "still-alive"), { ok: true });
});

test("an event sent the instant CONNECT arrives is never missed", async (t) => {
  const gw = track(t, await startGateway(["--event-rate", "0"]));
  const acks = await Promise.all(Array.from({ length: 40 }, (_, i) => new Promise((resolve, reject) => {
    const s = io(gw.url, { forceNew: true, reconnection: false, transports: [i % 2 ? "websocket" : "polling"] });
    track(t, s);
    const timer = setTimeout(() => reject(new Error(`client ${i}: no ack for its first event`)), 5000);
    // Emitted synchronously from the connect callback: reaches the server right behind CONNECT.
    s.on("connect", () => s.emit("join", `first-${i}`, (r) => { clearTimeout(timer); resolve(r); }));
  })));
  assert.ok(acks.every((r) => r.ok === true));
});
