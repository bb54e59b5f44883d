// Interoperability of sio-redis-adapter with the real Node.js @socket.io/redis-adapter:
// three of our nodes (examples/test-node) and one Node.js socket.io node on one private Redis,
// a socket.io-client on each. Every operation is issued from both sides and checked on all.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startRedis, track, waitFor } from "../lib/harness.mjs";
import { startTestNode, startNodePeer, connect, ask, received } from "./fixtures/adapter-cluster.mjs";

async function cluster(t) {
  const redis = track(t, await startRedis());
  const nodes = [];
  for (let i = 0; i < 3; i++) nodes.push(track(t, await startTestNode(redis.url)));
  nodes.push(track(t, await startNodePeer(redis.url)));
  const clients = [];
  for (const n of nodes) clients.push(track(t, await connect(n.url)));
  return { redis, nodes, clients };
}

/** Events named `name` received by `socket` before the marker broadcast `marker` arrived. */
async function beforeMarker(socket, name, marker) {
  await received(socket, "marker", (m) => m === marker);
  const idx = socket.events.findIndex(([n, m]) => n === "marker" && m === marker);
  return socket.events.slice(0, idx).filter(([n]) => n === name);
}

test("adapter interop: broadcasts, rooms, except, requests between our nodes and a Node.js node", { timeout: 60000 }, async (t) => {
  const { nodes, clients } = await cluster(t);
  const [a, b, c, n] = clients; // a, b, c on our nodes; n on the Node.js node

  await t.test("broadcast to all from every node reaches every client", async () => {
    for (const [i, sender] of clients.entries()) {
      assert.equal((await ask(sender, "to-room", { event: "all", data: `from-${i}` })).ok, true);
      for (const r of clients) await received(r, "all", (d) => d === `from-${i}`);
    }
  });

  await t.test("binary payloads cross in both directions", async () => {
    await ask(a, "bin-all");
    for (const r of clients) {
      const [, buf, text] = await received(r, "bin");
      assert.deepEqual([...new Uint8Array(buf)], [1, 2, 3]);
      assert.equal(text, "text");
    }
    await ask(n, "to-room", { event: "bin2", data: Buffer.from([4, 5]) });
    for (const r of [a, b, c]) {
      const [, buf] = await received(r, "bin2");
      assert.deepEqual([...new Uint8Array(buf)], [4, 5]);
    }
  });

  await t.test("room broadcast reaches members only, from our node and from Node", async () => {
    assert.equal((await ask(a, "join", "r1")).ok, true);
    assert.equal((await ask(n, "join", "r1")).ok, true);
    await ask(b, "to-room", { room: "r1", event: "room-msg", data: "rust" });
    await ask(n, "to-room", { room: "r1", event: "room-msg", data: "node" });
    for (const r of [a, n]) {
      await received(r, "room-msg", (d) => d === "rust");
      await received(r, "room-msg", (d) => d === "node");
    }
    // Non-members: nothing before a later marker (same publisher order on one Redis).
    await ask(b, "to-room", { event: "marker", data: "m1" });
    for (const r of [b, c]) assert.deepEqual(await beforeMarker(r, "room-msg", "m1"), []);
  });

  await t.test("except excludes room members on every node", async () => {
    await ask(c, "to-room", { event: "ex", data: "x1", except: ["r1"] });
    await ask(n, "to-room", { event: "ex", data: "x2", except: ["r1"] });
    for (const r of [b, c]) {
      await received(r, "ex", (d) => d === "x1");
      await received(r, "ex", (d) => d === "x2");
    }
    await ask(c, "to-room", { event: "marker", data: "m2" });
    for (const r of [a, n]) assert.deepEqual(await beforeMarker(r, "ex", "m2"), []);
  });

  await t.test("socket.broadcast excludes the sender only", async () => {
    await ask(a, "to-room", { event: "bc", data: "b1", fromSocket: true });
    for (const r of [b, c, n]) await received(r, "bc", (d) => d === "b1");
    await ask(b, "to-room", { event: "marker", data: "m3" });
    assert.deepEqual(await beforeMarker(a, "bc", "m3"), []);
  });

  await t.test("fetchSockets both ways", async () => {
    const all = clients.map((s) => s.id).sort();
    const ours = await ask(a, "fetch", {});
    assert.equal(ours.complete, true);
    assert.deepEqual([...ours.ids].sort(), all);
    // io.fetch_sockets() (socketioxide API) sees every socket, the Node peer's included
    // (under a stand-in Sid the handle maps back to its real id).
    assert.deepEqual([...ours.sioIds].sort(), all);
    const oursInRoom = await ask(c, "fetch", { room: "r1" });
    assert.deepEqual([...oursInRoom.sioIds].sort(), [a.id, n.id].sort());
    const node = await ask(n, "fetch", {});
    assert.deepEqual([...node.ids].sort(), all);
    const inRoom = await ask(n, "fetch", { room: "r1" });
    assert.deepEqual([...inRoom.ids].sort(), [a.id, n.id].sort());
    const inRoomOurs = await ask(b, "fetch", { room: "r1" });
    assert.deepEqual([...inRoomOurs.ids].sort(), [a.id, n.id].sort());
  });

  await t.test("allRooms both ways", async () => {
    const ours = await ask(b, "all-rooms");
    assert.ok(ours.includes("r1"), JSON.stringify(ours));
    assert.ok(ours.includes(n.id), "Node socket-id room listed");
    const node = await ask(n, "all-rooms");
    assert.ok(node.includes("r1"));
    assert.ok(node.includes(a.id), "our socket-id room listed by Node");
  });

  await t.test("socketsJoin from our node and from Node apply on every node", async () => {
    assert.equal((await ask(b, "join-all", { room: "j1" })).ok, true);
    assert.equal((await ask(n, "join-all", { room: "j2", from: "r1" })).ok, true);
    for (const s of clients) await waitFor(async () => (await ask(s, "rooms")).includes("j1"), { what: `j1 on ${s.id}` });
    for (const s of [a, n]) await waitFor(async () => (await ask(s, "rooms")).includes("j2"), { what: `j2 on ${s.id}` });
    assert.equal((await ask(b, "rooms")).includes("j2"), false);
    // The joined room works for broadcasts from Node to our sockets (room channel subscribed).
    await waitFor(async () => {
      await ask(n, "to-room", { room: "j2", event: "j2-msg", data: "hi" });
      return a.events.some(([e]) => e === "j2-msg");
    }, { what: "j2 broadcast reaches our socket" });
  });

  await t.test("serverSideEmit with ack from Node is answered by our nodes, and ours by everyone", async () => {
    const fromNode = await ask(n, "server-side-emit", ["hello-sse", 1]);
    assert.equal(fromNode.error, undefined, JSON.stringify(fromNode));
    assert.equal(fromNode.responses.length, 3);
    const ports = fromNode.responses.map((r) => r.port).sort();
    assert.deepEqual(ports, nodes.slice(0, 3).map((x) => x.port).sort());
    for (const s of [a, b, c]) await received(s, "sse", (d) => Array.isArray(d) && d[0] === "hello-sse");
    const fromOurs = await ask(a, "server-side-emit", ["hello-sse", 2]);
    assert.equal(fromOurs.complete, true);
    assert.equal(fromOurs.responses.length, 3);
    assert.ok(fromOurs.responses.some((r) => r.node === "node"), JSON.stringify(fromOurs));
    await received(n, "sse", (d) => Array.isArray(d) && d[0] === "hello-sse" && d[1] === 2);
  });

  await t.test("broadcast with acks collects acks from clients on every node", async () => {
    for (const [i, s] of clients.entries()) s.on("ask", (d, cb) => cb(`ack-${i}-${d}`));
    const fromOurs = await ask(b, "broadcast-ack", { event: "ask", data: "q1", timeoutMs: 3000 });
    assert.deepEqual([...fromOurs].sort(), ["ack-0-q1", "ack-1-q1", "ack-2-q1", "ack-3-q1"]);
    const fromNode = await ask(n, "broadcast-ack", { event: "ask", data: "q2", timeoutMs: 3000 });
    assert.deepEqual([...fromNode].sort(), ["ack-0-q2", "ack-1-q2", "ack-2-q2", "ack-3-q2"]);
  });

  await t.test("RemoteSocket operations (io.fetch_sockets) on a socket of another of our nodes", async () => {
    await ask(c, "join", "pre");
    const r = await ask(a, "remote-ops", { target: c.id, room: "post" });
    assert.equal(r.found, true);
    assert.ok(r.rooms.includes("pre"), JSON.stringify(r));
    assert.equal(r.rooms.includes(c.id), false, "own id room left out, as socketioxide does");
    await received(c, "remote-hello", (d) => d === "hi");
    await waitFor(async () => (await ask(c, "rooms")).includes("post"), { what: "remote join applied" });
  });

  await t.test("RemoteSocket operations (io.fetch_sockets) on a socket of the Node peer", async () => {
    assert.equal(n.id.length, 20, "a Node socket id, too long for a socketioxide Sid");
    await ask(n, "join", "npre");
    const hello = received(n, "remote-hello", (d) => d === "hi");
    const r = await ask(b, "remote-ops", { target: n.id, room: "npost" });
    assert.equal(r.found, true);
    assert.ok(r.rooms.includes("npre"), JSON.stringify(r));
    await hello;
    await waitFor(async () => (await ask(n, "rooms")).includes("npost"), { what: "remote join applied on the Node peer" });
    // The Node peer sees the room too, and a room broadcast from our node reaches it there.
    const inRoom = await ask(a, "fetch", { room: "npost" });
    assert.deepEqual(inRoom.ids, [n.id]);
    const gone = new Promise((res) => n.once("disconnect", res));
    const d = await ask(c, "remote-ops", { target: n.id, disconnect: true });
    assert.equal(d.found, true);
    await gone;
    n.connect();
    await new Promise((res) => n.once("connect", res));
  });

  await t.test("disconnectSockets from Node and from our node", async () => {
    await ask(b, "join", "dc1");
    await ask(n, "join", "dc2");
    const bGone = new Promise((r) => b.once("disconnect", r));
    await ask(n, "disconnect-all", { room: "dc1" });
    await bGone;
    const nGone = new Promise((r) => n.once("disconnect", r));
    await ask(c, "disconnect-all", { room: "dc2" });
    await nGone;
    assert.equal(a.connected, true);
    assert.equal(c.connected, true);
  });
});

test("adapter interop: Node peer answering on the requester's own response channel", { timeout: 30000 }, async (t) => {
  const redis = track(t, await startRedis());
  const ours = track(t, await startTestNode(redis.url));
  const node = track(t, await startNodePeer(redis.url, { env: { SPECIFIC_RESPONSE_CHANNEL: "1" } }));
  const a = track(t, await connect(ours.url));
  const n = track(t, await connect(node.url));
  await ask(n, "join", "spec");
  // fetchSockets, allRooms and broadcast acks all travel back on socket.io-response#/#<our uid>#.
  const f = await ask(a, "fetch", {});
  assert.equal(f.complete, true);
  assert.deepEqual([...f.ids].sort(), [a.id, n.id].sort());
  assert.ok((await ask(a, "all-rooms")).includes("spec"));
  n.on("ask", (d, cb) => cb(`n-${d}`));
  a.on("ask", (d, cb) => cb(`a-${d}`));
  const acks = await ask(a, "broadcast-ack", { event: "ask", data: 1, timeoutMs: 3000 });
  assert.deepEqual([...acks].sort(), ["a-1", "n-1"]);
});
