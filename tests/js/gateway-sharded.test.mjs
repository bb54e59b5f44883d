// sio-gateway with --redis-pubsub sharded on a real Redis Cluster (3 primaries + 3 replicas):
// three gateway nodes and a Node.js socket.io server on createShardedAdapter, stock
// socket.io-clients. The relay's join/publish, the HTTP API (emit, presence, socketsJoin,
// disconnect) and the metrics (per-shard subscriptions, receive counters) in sharded mode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startGateway, track, waitFor, sleep, scrapeMetrics, metricSum } from "../lib/harness.mjs";
import { startNodePeer, connect, ask, received } from "./fixtures/adapter-cluster.mjs";
import { redisCluster } from "./fixtures/redis-cluster.mjs";

const API_KEY = "sharded-api-key-0123";
const SECRET = "sharded-cluster-secret-0123";

async function api(node, method, p, body) {
  const r = await fetch(node.url + "/api/v1" + p, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

const subs = (rc, channel) => Object.values(rc.shardNumSub(channel)).reduce((a, b) => a + b, 0);

test("gateway nodes in sharded mode beside a Node.js createShardedAdapter node", { timeout: 90_000 }, async (t) => {
  const rc = await redisCluster(t);
  const gws = [];
  for (const id of ["g1", "g2", "g3"]) {
    gws.push(track(t, await startGateway(
      ["--redis", rc.url, "--redis-pubsub", "sharded", "--node-id", id, "--api-key", API_KEY, "--cluster-secret", SECRET],
      { name: id, waitReady: true },
    )));
  }
  const peer = track(t, await startNodePeer(rc.url, { env: { SHARDED: "dynamic" } }));
  const clients = [];
  for (const g of gws) clients.push(track(t, await connect(g.url)));
  const n = track(t, await connect(peer.url));
  const [ga, gb, gc] = clients;

  await waitFor(() => subs(rc, "socket.io#/#") === 4, { what: "3 gateways + Node on socket.io#/#" });

  // Relay: join, then publish to the room from a gateway client and from Node.
  assert.deepEqual(await ga.timeout(5000).emitWithAck("join", "room1"), { ok: true });
  assert.equal((await ask(n, "join", "room1")).ok, true);
  await waitFor(() => subs(rc, "socket.io#/#room1#") === 2, { what: "room1 subscribed by g1 and Node" });
  const before = await Promise.all(gws.map(async (g) => metricSum(await scrapeMetrics(`${g.url}/metrics`), "sio_gateway_adapter_messages_received_total", 'type="broadcast"')));
  assert.equal((await gb.timeout(5000).emitWithAck("publish", { room: "room1", event: "chat", data: "from-gb" })).ok, true);
  await received(ga, "chat", (d) => d === "from-gb");
  await received(n, "chat", (d) => d === "from-gb");
  await ask(n, "to-room", { room: "room1", event: "chat", data: "from-node" });
  await received(ga, "chat", (d) => d === "from-node");

  // HTTP API emit to the room, from the node without members.
  assert.equal((await api(gws[2], "POST", "/emit", { rooms: ["room1"], event: "chat", data: "from-api" })).status, 200);
  await received(ga, "chat", (d) => d === "from-api");
  await received(n, "chat", (d) => d === "from-api");
  await sleep(300);
  for (const s of [gb, gc]) assert.deepEqual(s.events.filter(([e]) => e === "chat"), [], "non-members get nothing");
  // g2 and g3 have no member in room1: they received no broadcast for it.
  const after = await Promise.all(gws.map(async (g) => metricSum(await scrapeMetrics(`${g.url}/metrics`), "sio_gateway_adapter_messages_received_total", 'type="broadcast"')));
  const delta = after.map((x, i) => x - before[i]);
  assert.equal(delta[1], 0, `g2 received ${delta}`);
  assert.equal(delta[2], 0, `g3 received ${delta}`);
  assert.ok(delta[0] >= 2, `g1 received ${delta}`);

  // Presence across the cluster, the Node socket included.
  let r;
  await waitFor(async () => {
    r = await api(gws[1], "GET", "/sockets?room=room1");
    return r.status === 200 && r.body.total === 2;
  }, { what: "presence of room1" });
  assert.equal(r.body.complete, true, JSON.stringify(r.body));
  assert.deepEqual(r.body.sockets.map((s) => s.id).sort(), [ga.id, n.id].sort());

  // socketsJoin through the API (applied on the gateways and on Node), then disconnect.
  assert.equal((await api(gws[0], "POST", "/sockets/join", { rooms: ["room1"], target_rooms: ["joined"] })).status, 200);
  await waitFor(async () => (await ask(n, "rooms")).includes("joined"), { what: "Node socket joined" });
  await waitFor(async () => {
    r = await api(gws[2], "GET", "/sockets?room=joined");
    return r.status === 200 && r.body.total === 2;
  }, { what: "both joined" });
  const gone = new Promise((res) => n.once("disconnect", res));
  assert.equal((await api(gws[1], "POST", "/sockets/disconnect", { rooms: [n.id] })).status, 200);
  await gone;
  assert.equal(ga.connected, true);

  // Per-shard subscription metric: every shard listed is a live primary, and g1 counts room1.
  const text = await scrapeMetrics(`${gws[0].url}/metrics`);
  const shards = Object.keys(text).filter((k) => k.startsWith("sio_gateway_adapter_shard_subscriptions{"))
    .map((k) => k.match(/shard="[^":]*:(\d+)"/)?.[1]);
  assert.ok(shards.length >= 1, JSON.stringify(text));
  const total = metricSum(text, "sio_gateway_adapter_shard_subscriptions");
  assert.ok(total >= 4, `g1 shard subscriptions: ${total} (main, response, probe, room1, its socket)`);
  const primaries = rc.primaries().map(String);
  for (const p of shards) assert.ok(primaries.includes(p), `${p} is a primary (${primaries})`);
});
