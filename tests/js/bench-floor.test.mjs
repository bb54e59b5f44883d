// `sio-bench floor-server` (the benchmark's reference server, crates/bench/src/floor.rs)
// driven by the stock socket.io-client over websocket: its figures in BENCHMARKS.md only
// mean something if it does the same job as the gateway's relay. Room and namespace-wide
// publish (sender excluded, non-members excluded), join/leave acks, error acks, unknown
// namespace, heartbeats, and a clear refusal of long-polling.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { io } from "socket.io-client";
import { ROOT, freePort, startProcess, waitForPort, waitFor, track, once, sleep } from "../lib/harness.mjs";

const BENCH_BIN = process.env.SIO_BENCH_BIN || path.join(ROOT, "target/debug/sio-bench");

async function startFloor(t, args = []) {
  const port = await freePort();
  const proc = startProcess(BENCH_BIN, ["floor-server", "--listen", `127.0.0.1:${port}`, ...args], {
    name: `floor:${port}`,
  });
  track(t, proc);
  await waitForPort(port);
  return `http://127.0.0.1:${port}`;
}

async function client(t, url, nsp = "/") {
  const s = io(url + nsp, { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  await once(s, "connect");
  return s;
}

function collect(s, event) {
  const got = [];
  s.on(event, (data) => got.push(data));
  return got;
}

test("floor-server: publish reaches room members and the namespace, never the sender", async (t) => {
  const url = await startFloor(t);
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => client(t, url)));
  assert.match(a.id, /^[0-9a-f]{16}$/);

  assert.deepEqual(await a.emitWithAck("join", "room1"), { ok: true });
  assert.deepEqual(await b.emitWithAck("join", ["room1", "room2"]), { ok: true });
  const got = { a: collect(a, "chat"), b: collect(b, "chat"), c: collect(c, "chat") };

  assert.deepEqual(
    await a.emitWithAck("publish", { room: "room1", event: "chat", data: { text: "hi", n: [1, 2] } }),
    { ok: true },
  );
  // Namespace-wide: everyone but the sender.
  assert.deepEqual(await c.emitWithAck("publish", { event: "chat", data: "all" }), { ok: true });
  await waitFor(() => got.b.length >= 2 && got.a.length >= 1, { what: "both publishes delivered" });
  await sleep(200); // and nothing more: what must not arrive has had time to
  assert.deepEqual(got.b, [{ text: "hi", n: [1, 2] }, "all"]);
  assert.deepEqual(got.a, ["all"], "sender excluded from its own room publish");
  assert.deepEqual(got.c, [], "non-member and sender of the namespace publish");

  // After leave, b no longer gets room1.
  assert.deepEqual(await b.emitWithAck("leave", "room1"), { ok: true });
  await a.emitWithAck("publish", { room: "room1", event: "chat", data: 2 });
  await c.emitWithAck("publish", { room: "room2", event: "chat", data: 3 });
  await waitFor(() => got.b.length >= 3, { what: "room2 publish delivered" });
  await sleep(200); // room1's publish (sent first) must not arrive after b left
  assert.deepEqual(got.b, [{ text: "hi", n: [1, 2] }, "all", 3]);

  // Bad input gets a clear error ack, and the connection stays usable.
  const bad = await a.emitWithAck("publish", { room: "room1", data: 1 });
  assert.equal(bad.ok, false);
  assert.match(bad.error, /publish expects/);
  const unknown = await a.emitWithAck("nope", 1);
  assert.deepEqual(unknown, { ok: false, error: "no handler for `nope`" });
  assert.ok(a.connected);
});

test("floor-server: unknown namespace, heartbeats, long-polling refused", async (t) => {
  const url = await startFloor(t, ["--ping-interval", "200"]);
  const s = io(url + "/other", { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  const err = await once(s, "connect_error");
  assert.equal(err.message, "Invalid namespace");

  const c = await client(t, url);
  let pings = 0;
  c.io.engine.on("ping", () => pings++);
  // Pings every 200 ms, each answered; the session outlives several of them.
  await waitFor(() => pings >= 3, { timeoutMs: 5000, what: "three pings" });
  assert.ok(c.connected);

  const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(r.status, 400);
  assert.match(await r.text(), /no long-polling/);
});
