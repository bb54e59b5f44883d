// Sharded pub/sub (createShardedAdapter protocol) on a real Redis Cluster (3 primaries + 3
// replicas): three of our nodes (examples/test-node --pubsub sharded) and one Node.js socket.io
// server on @socket.io/redis-adapter's createShardedAdapter, a stock socket.io-client on each.
// Every operation is issued from both sides and checked on all; then: a node with no member in
// a room receives nothing for it (PUBSUB SHARDNUMSUB per shard + its receive counter), and bad
// input on a sharded channel is counted, never crashes the node, never stops other rooms.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { ROOT, track, waitFor, sleep } from "../lib/harness.mjs";
import { startTestNode, startNodePeer, connect, ask, received } from "./fixtures/adapter-cluster.mjs";
import { redisCluster, cli } from "./fixtures/redis-cluster.mjs";

const SIO_EMIT = process.env.SIO_EMIT_BIN || path.join(ROOT, "target/debug/sio-emit");

/** `sio-emit --pubsub sharded` on the cluster. */
const sioEmit = (rc, ...args) =>
  execFileSync(SIO_EMIT, ["--redis", rc.url, "--pubsub", "sharded", ...args], { timeout: 15000 }).toString();

/** Subscribers of a sharded channel, summed over the primaries. */
const subs = (rc, channel) => Object.values(rc.shardNumSub(channel)).reduce((a, b) => a + b, 0);

/** Events `name` that `socket` got, after waiting `ms` for stragglers. */
async function quietFor(socket, name, ms = 300) {
  await sleep(ms);
  return socket.events.filter(([n]) => n === name);
}

test("sharded adapter interop on a Redis Cluster: our nodes and a Node.js createShardedAdapter node", { timeout: 90000 }, async (t) => {
  const rc = await redisCluster(t);
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    nodes.push(track(t, await startTestNode(rc.url, { args: ["--pubsub", "sharded", "--request-timeout", "3000"] })));
  }
  nodes.push(track(t, await startNodePeer(rc.url, { env: { SHARDED: "dynamic" } })));
  const clients = [];
  for (const n of nodes) clients.push(track(t, await connect(n.url)));
  const [a, b, c, n] = clients; // a, b, c on our nodes; n on the Node.js node

  await t.test("every node is counted on the namespace channel (SHARDNUMSUB), on one shard", async () => {
    await waitFor(() => subs(rc, "socket.io#/#") === 4, { what: "4 subscribers of socket.io#/#" });
    const per = rc.shardNumSub("socket.io#/#");
    assert.equal(Object.values(per).filter((x) => x > 0).length, 1, JSON.stringify(per));
    // Nothing on the classic channels.
    for (const p of rc.primaries()) assert.equal(cli(p, "pubsub", "numsub", "socket.io-request#/#").split("\n")[1], "0");
  });

  await t.test("broadcast to all from every node reaches every client", async () => {
    for (const [i, sender] of clients.entries()) {
      assert.equal((await ask(sender, "to-room", { event: "all", data: `from-${i}` })).ok, true);
      for (const r of clients) await received(r, "all", (d) => d === `from-${i}`);
    }
  });

  await t.test("binary payloads cross in both directions (msgpack messages)", async () => {
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

  await t.test("room broadcasts go through the room's own channel, to members only", async () => {
    assert.equal((await ask(a, "join", "r1")).ok, true);
    assert.equal((await ask(n, "join", "r1")).ok, true);
    // Node subscribes without waiting: wait for both subscriptions on the room's shard.
    await waitFor(() => subs(rc, "socket.io#/#r1#") === 2, { what: "2 subscribers of socket.io#/#r1#" });
    await ask(b, "to-room", { room: "r1", event: "room-msg", data: "rust" });
    await ask(n, "to-room", { room: "r1", event: "room-msg", data: "node" });
    for (const r of [a, n]) {
      await received(r, "room-msg", (d) => d === "rust");
      await received(r, "room-msg", (d) => d === "node");
    }
    for (const r of [b, c]) assert.deepEqual(await quietFor(r, "room-msg"), []);
  });

  await t.test("except excludes room members on every node", async () => {
    await ask(c, "to-room", { event: "ex", data: "x1", except: ["r1"] });
    await ask(n, "to-room", { event: "ex", data: "x2", except: ["r1"] });
    for (const r of [b, c]) {
      await received(r, "ex", (d) => d === "x1");
      await received(r, "ex", (d) => d === "x2");
    }
    for (const r of [a, n]) assert.deepEqual(await quietFor(r, "ex"), []);
  });

  await t.test("a single socket addressed by its id, both ways", async () => {
    await ask(n, "to-room", { room: a.id, event: "direct", data: "to-a" });
    await received(a, "direct", (d) => d === "to-a");
    await ask(b, "to-room", { room: n.id, event: "direct", data: "to-n" });
    await received(n, "direct", (d) => d === "to-n");
    for (const r of [b, c]) assert.deepEqual(await quietFor(r, "direct"), []);
  });

  await t.test("fetchSockets both ways", async () => {
    const all = clients.map((s) => s.id).sort();
    const ours = await ask(a, "fetch", {});
    assert.equal(ours.complete, true, JSON.stringify(ours));
    assert.deepEqual([...ours.ids].sort(), all);
    assert.deepEqual([...ours.sioIds].sort(), all);
    const oursInRoom = await ask(c, "fetch", { room: "r1" });
    assert.deepEqual([...oursInRoom.ids].sort(), [a.id, n.id].sort());
    const node = await ask(n, "fetch", {});
    assert.equal(node.error, undefined, JSON.stringify(node));
    assert.deepEqual([...node.ids].sort(), all);
    const inRoom = await ask(n, "fetch", { room: "r1" });
    assert.deepEqual([...inRoom.ids].sort(), [a.id, n.id].sort());
  });

  await t.test("allRooms from our node (through fetchSockets: no such message in the protocol)", async () => {
    const ours = await ask(b, "all-rooms");
    assert.ok(ours.includes("r1"), JSON.stringify(ours));
    assert.ok(ours.includes(n.id), "Node socket-id room listed");
  });

  await t.test("socketsJoin / socketsLeave from our node and from Node apply on every node", async () => {
    assert.equal((await ask(b, "join-all", { room: "j1" })).ok, true);
    assert.equal((await ask(n, "join-all", { room: "j2", from: "r1" })).ok, true);
    for (const s of clients) await waitFor(async () => (await ask(s, "rooms")).includes("j1"), { what: `j1 on ${s.id}` });
    for (const s of [a, n]) await waitFor(async () => (await ask(s, "rooms")).includes("j2"), { what: `j2 on ${s.id}` });
    assert.equal((await ask(b, "rooms")).includes("j2"), false);
    // The joined room's channel is subscribed where it has members (a's node and Node).
    await waitFor(() => subs(rc, "socket.io#/#j2#") === 2, { what: "j2 subscribed on 2 nodes" });
    await ask(c, "to-room", { room: "j2", event: "j2-msg", data: "hi" });
    await received(a, "j2-msg");
    await received(n, "j2-msg");
    // Leave, from both sides.
    assert.equal((await ask(n, "leave-all", { room: "j1", from: "r1" })).ok, true);
    assert.equal((await ask(c, "leave-all", { room: "j2" })).ok, true);
    for (const s of [a, n]) {
      await waitFor(async () => {
        const r = await ask(s, "rooms");
        return !r.includes("j1") && !r.includes("j2");
      }, { what: `j1/j2 left on ${s.id}` });
    }
    assert.ok((await ask(b, "rooms")).includes("j1"));
    await waitFor(() => subs(rc, "socket.io#/#j2#") === 0, { what: "j2 channel unsubscribed everywhere" });
  });

  await t.test("serverSideEmit with ack, both ways", async () => {
    const fromNode = await ask(n, "server-side-emit", ["hello-sse", 1]);
    assert.equal(fromNode.error, undefined, JSON.stringify(fromNode));
    assert.equal(fromNode.responses.length, 3);
    assert.deepEqual(fromNode.responses.map((r) => r.port).sort(), nodes.slice(0, 3).map((x) => x.port).sort());
    for (const s of [a, b, c]) await received(s, "sse", (d) => Array.isArray(d) && d[0] === "hello-sse");
    const fromOurs = await ask(a, "server-side-emit", ["hello-sse", 2]);
    assert.equal(fromOurs.complete, true, JSON.stringify(fromOurs));
    assert.equal(fromOurs.responses.length, 3);
    assert.ok(fromOurs.responses.some((r) => r.node === "node"), JSON.stringify(fromOurs));
    await received(n, "sse", (d) => Array.isArray(d) && d[0] === "hello-sse" && d[1] === 2);
  });

  await t.test("broadcast with acks collects acks from clients on every node, both ways", async () => {
    for (const [i, s] of clients.entries()) s.on("ask", (d, cb) => cb(`ack-${i}-${d}`));
    const fromOurs = await ask(b, "broadcast-ack", { event: "ask", data: "q1", timeoutMs: 3000 });
    assert.deepEqual([...fromOurs].sort(), ["ack-0-q1", "ack-1-q1", "ack-2-q1", "ack-3-q1"]);
    const fromNode = await ask(n, "broadcast-ack", { event: "ask", data: "q2", timeoutMs: 3000 });
    assert.deepEqual([...fromNode].sort(), ["ack-0-q2", "ack-1-q2", "ack-2-q2", "ack-3-q2"]);
  });

  await t.test("a node with no member in a room receives nothing for it", async () => {
    await ask(c, "join", "only-c");
    await waitFor(() => subs(rc, "socket.io#/#only-c#") === 1, { what: "only-c subscribed once" });
    const before = await Promise.all(nodes.slice(0, 3).map((x) => x.stats()));
    for (let i = 0; i < 20; i++) await ask(a, "to-room", { room: "only-c", event: "oc", data: i });
    await waitFor(() => c.events.filter(([e]) => e === "oc").length === 20, { what: "20 deliveries to c" });
    await sleep(300);
    const after = await Promise.all(nodes.slice(0, 3).map((x) => x.stats()));
    const got = after.map((s, i) => s.stats.received.broadcast - before[i].stats.received.broadcast);
    assert.deepEqual(got, [0, 0, 20], `broadcasts received per node: ${got}`);
    assert.deepEqual(await quietFor(n, "oc", 0), []);
  });

  await t.test("bad input on sharded channels is counted, and other rooms go on", async () => {
    const before = await Promise.all(nodes.slice(0, 3).map((x) => x.stats()));
    const owner = rc.ownerOf("socket.io#/#r1#");
    // Garbage, a truncated message, another version's message type; on the room and main channels.
    for (const bad of ["\x01garbage", '{"type":3,"data":{"packet"', '{"type":99,"uid":"x","nsp":"/"}']) {
      cli(owner, "spublish", "socket.io#/#r1#", bad);
      cli(rc.ownerOf("socket.io#/#"), "spublish", "socket.io#/#", bad);
    }
    await ask(b, "to-room", { room: "r1", event: "after-bad", data: 1 });
    await ask(n, "to-room", { room: "only-c", event: "after-bad", data: 2 });
    await received(a, "after-bad", (d) => d === 1);
    await received(c, "after-bad", (d) => d === 2);
    for (const x of nodes) assert.equal(x.running, true);
    const after = await Promise.all(nodes.slice(0, 3).map((x) => x.stats()));
    const errors = after.map((s, i) => s.stats.decode_errors - before[i].stats.decode_errors);
    // Every node: 2 bad ones on the main channel; a (member of r1): 2 more on the room channel.
    assert.deepEqual(errors, [4, 2, 2], `decode errors per node: ${errors}`);
    assert.equal((await ask(n, "fetch", {})).ids.length, 4, "the Node peer is fine too");
  });

  await t.test("sio-emit --pubsub sharded reaches our nodes and the Node node", async () => {
    sioEmit(rc, "--to", "r1", "emit", "from-emit", '"e1"');
    await received(a, "from-emit", (d) => d === "e1");
    await received(n, "from-emit", (d) => d === "e1");
    for (const r of [b, c]) assert.deepEqual(await quietFor(r, "from-emit"), []);
    sioEmit(rc, "emit", "from-emit-all", "2");
    for (const r of clients) await received(r, "from-emit-all", (d) => d === 2);
    sioEmit(rc, "--to", n.id, "--to", b.id, "join", "emit-joined");
    for (const s of [n, b]) await waitFor(async () => (await ask(s, "rooms")).includes("emit-joined"), { what: `emitter join on ${s.id}` });
    assert.equal((await ask(a, "rooms")).includes("emit-joined"), false);
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
