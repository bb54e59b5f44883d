// Graceful drain: on SIGTERM the node turns /readyz to 503, refuses new handshakes with 503,
// closes existing clients at the transport level spread over --drain-period (clients report
// "transport close", not "io server disconnect"), exits 0, and the clients reconnect by
// themselves to the node that replaces it on the same address.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { io } from "socket.io-client";
import { startGateway, freePort, track, once, waitFor } from "../lib/harness.mjs";

const DRAIN_MS = 1500;

test("SIGTERM drains over the period, clients see 'transport close' and reconnect", async (t) => {
  const port = await freePort();
  const gw = track(t, await startGateway(["--drain-period", `${DRAIN_MS}ms`], { port }));
  const url = gw.url;
  const variants = [
    { transports: ["websocket"] },
    { transports: ["polling"], upgrade: false },
    { transports: ["polling", "websocket"] },
    { transports: ["websocket"] },
    { transports: ["polling"], upgrade: false },
    { transports: ["polling", "websocket"] },
  ];
  const clients = variants.map((opts) => {
    const s = io(url, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200, ...opts });
    track(t, s);
    return s;
  });
  await Promise.all(clients.map((s) => (s.connected ? null : once(s, "connect"))));
  // Wait until the upgrading clients are on websocket, so all three close paths are exercised.
  await waitFor(() => clients[2].io.engine.transport.name === "websocket" &&
    clients[5].io.engine.transport.name === "websocket", { what: "upgrade" });

  const reasons = [];
  const times = [];
  for (const s of clients) {
    s.once("disconnect", (reason) => { reasons.push(reason); times.push(Date.now()); });
  }
  assert.equal((await fetch(url + "/readyz")).status, 200);

  const t0 = Date.now();
  gw.signal("SIGTERM");
  // Readiness flips to 503 with a JSON reason while the node is still alive.
  const ready = await waitFor(async () => {
    const r = await fetch(url + "/readyz");
    return r.status === 503 ? r : null;
  }, { what: "readyz 503", timeoutMs: 2000, intervalMs: 20 });
  const body = await ready.json();
  assert.equal(body.reason, "draining");
  // A new Engine.IO handshake is refused with 503.
  const hs = await fetch(url + "/socket.io/?EIO=4&transport=polling");
  assert.equal(hs.status, 503);
  // And a new socket.io client cannot connect.
  const late = io(url, { forceNew: true, reconnection: false, transports: ["polling"] });
  track(t, late);
  await once(late, "connect_error");

  const exit = await gw.exited;
  const elapsed = Date.now() - t0;
  assert.equal(exit.code, 0, `exit code\n${gw.output()}`);
  assert.equal(reasons.length, clients.length, `all clients disconnected: ${reasons}`);
  for (const r of reasons) assert.equal(r, "transport close");
  // Spread over the period rather than all at once (loose bounds: no timing assertions
  // tighter than the mechanism itself).
  const spread = Math.max(...times) - Math.min(...times);
  assert.ok(spread >= DRAIN_MS / 3, `disconnects spread over the drain period (spread ${spread} ms)`);
  assert.ok(elapsed >= DRAIN_MS * 0.8, `process waited for the drain period (${elapsed} ms)`);

  // A replacement node on the same address: the clients come back on their own.
  const gw2 = track(t, await startGateway([], { port }));
  await waitFor(() => clients.every((s) => s.connected), { what: "clients reconnected", timeoutMs: 10000 });
  // And they are usable: a room round trip on the new node.
  assert.deepEqual(await clients[0].emitWithAck("join", "after"), { ok: true });
  assert.deepEqual(await clients[1].emitWithAck("join", "after"), { ok: true });
  const got = once(clients[1], "back");
  await clients[0].emitWithAck("publish", { room: "after", event: "back", data: 42 });
  assert.equal(await got, 42);
  assert.ok(gw2.running);
});

test("SIGINT with no clients exits 0 promptly", async (t) => {
  const gw = track(t, await startGateway(["--drain-period", "30s"]));
  gw.signal("SIGINT");
  const exit = await gw.exited;
  assert.equal(exit.code, 0);
});

test("one file descriptor per connection (no dup per connection): a node holds as many clients as its fd limit allows", async (t) => {
  const gw = track(t, await startGateway([]));
  const fds = () => fs.readdirSync(`/proc/${gw.pid}/fd`).length;
  const before = fds();
  const N = 200;
  const clients = [];
  for (let i = 0; i < N; i++) {
    const s = io(gw.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
    track(t, s);
    clients.push(s);
  }
  await Promise.all(clients.map((s) => (s.connected ? null : once(s, "connect"))));
  const grown = fds() - before;
  assert.ok(grown >= N && grown <= N + 20, `descriptors grew by ${grown} for ${N} websocket connections`);
});
