// Cluster faults with real processes: Redis killed and restarted under a node with
// `--readiness strict` (/readyz and redis_up follow, the change logged once, not per probe; the
// default, ready-but-degraded, is in faults-redis.test.mjs), a node drained with SIGTERM behind a real HAProxy (its clients move to the
// other nodes, the registry drops it at once, broadcasts continue), and a node killed with
// SIGKILL (it leaves the registry when its TTL runs out).
import { test } from "node:test";
import assert from "node:assert/strict";
import { startRedis, waitFor, scrapeMetrics, track, sleep } from "../lib/harness.mjs";
import { startHaproxy } from "../lib/lb.mjs";
import {
  startNode, startCluster, clusterIds, connectionsPerNode, countingClient, publishAll,
  assertAllDelivered, disconnectAll, RawPolling, waitJoined, NODE_IDS,
} from "./cluster-lib.mjs";

async function readyz(url) {
  const r = await fetch(`${url}/readyz`);
  return { status: r.status, body: await r.json() };
}

test("--readiness strict: /readyz turns 503 while Redis is down and 200 when it is back on the same port", async (t) => {
  let redis = await startRedis();
  const port = redis.port;
  const node = await startNode(redis.url, "gateway-1", ["--readiness", "strict"]);
  t.after(async () => { await node.stop(); await redis.stop(); });
  assert.equal((await readyz(node.url)).status, 200);
  // The start-up line says the mode, the Redis it uses and whether Redis answered.
  assert.match(node.output(), /sio-gateway listening node_id=gateway-1 .*advertise=http:\/\/127\.0\.0\.1:\d+ mode="cluster" redis=redis:\/\/127\.0\.0\.1:\d+ pubsub="classic PUBLISH\/SUBSCRIBE" redis_answered=true/);

  await redis.stop("SIGKILL");
  const down = await waitFor(async () => {
    const r = await readyz(node.url);
    return r.status === 503 && r;
  }, { timeoutMs: 10000, what: "readyz 503 after Redis died" });
  assert.equal(down.body.status, "unavailable");
  assert.ok(down.body.failing.some((f) => f.check === "redis"), JSON.stringify(down.body));
  assert.equal((await scrapeMetrics(`${node.url}/metrics`))["sio_gateway_redis_up"], 0);
  // The node still answers handshakes (single-node service goes on) without waiting on Redis.
  const hs = await fetch(`${node.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(hs.status, 200);
  await hs.text();

  // Every probe of a balancer answers 503 now; that is the contract working, logged once.
  for (let i = 0; i < 10; i++) assert.equal((await readyz(node.url)).status, 503);
  const lines = (re) => node.output().split("\n").filter((l) => re.test(l));
  assert.equal(lines(/not ready: \/readyz answers 503/).length, 1, node.output());
  assert.match(lines(/not ready/)[0], /WARN/);
  assert.deepEqual(lines(/ERROR.*(response failed|readyz)/), [], "no ERROR line per probe");

  redis = await startRedis({ port });
  await waitFor(async () => (await readyz(node.url)).status === 200, { timeoutMs: 20000, what: "readyz 200 after Redis returned" });
  assert.equal((await scrapeMetrics(`${node.url}/metrics`))["sio_gateway_redis_up"], 1);
  assert.equal(lines(/ready again/).length, 1);
  // The heartbeat puts the node back into the (emptied) registry.
  await waitFor(async () => (await clusterIds(node.url)).includes("gateway-1"), { what: "registry entry re-announced" });
});

test("SIGTERM drain behind HAProxy: clients move to the other nodes, registry drops the node at once, broadcasts continue; SIGKILL leaves the registry within its TTL", async (t) => {
  // A long drain period, so that the registry removal is seen while the node still runs.
  const cluster = await startCluster({ extra: ["--drain-period", "3s"] });
  t.after(() => cluster.stop());
  const lb = track(t, await startHaproxy({ variant: "sticky", backends: cluster.backends }));

  const clients = [];
  for (let i = 0; i < 9; i++) {
    clients.push(countingClient(lb.url, {
      name: `c${i}`, room: "drain", transports: i % 2 ? ["polling"] : undefined, withCredentials: true, reconnection: true,
    }));
  }
  t.after(() => { for (const c of clients) c.socket.disconnect(); });
  await waitFor(() => clients.every((c) => c.socket.connected && c.joins === 1), { timeoutMs: 15000, what: "9 clients joined" });
  const before = await connectionsPerNode(cluster.nodes);
  const vi = before.indexOf(Math.max(...before));
  const victim = cluster.nodes[vi];
  assert.ok(before[vi] > 0, `victim has clients: ${before}`);

  victim.signal("SIGTERM");
  const other = cluster.nodes[(vi + 1) % 3];
  await waitFor(async () => !(await clusterIds(other.url)).includes(NODE_IDS[vi]), { timeoutMs: 2000, what: "victim gone from the registry" });
  assert.ok(victim.running, "removed from the registry at the start of the drain, not by TTL expiry");
  const exit = await victim.exited;
  assert.equal(exit.code, 0, `drained node exits 0: ${JSON.stringify(exit)}`);

  // Everyone connected again and back in the room (the moved clients rejoined on reconnect).
  await waitFor(() => clients.every((c) => c.socket.connected && c.joins === c.connects), { timeoutMs: 20000, what: "clients reconnected and rejoined" });
  const moved = clients.filter((c) => c.connects >= 2);
  assert.equal(moved.length, before[vi], "exactly the victim's clients reconnected");
  for (const c of moved) {
    assert.ok(c.errors.every((e) => !e.includes("io server disconnect")), `${c.name}: closed at the transport level: ${c.errors}`);
  }
  const after = await connectionsPerNode(cluster.nodes);
  assert.equal(after[vi], 0);
  assert.equal(after.reduce((a, b) => a + b, 0), clients.length, `all clients on the remaining nodes: ${after}`);
  for (const c of clients) { c.got.clear(); c.total = 0; }
  await publishAll(clients, "drain", 5);
  await assertAllDelivered(clients, 5);
  await disconnectAll(clients, cluster.nodes);

  // SIGKILL: no deregistration; the entry expires with its TTL (2s, heartbeat 500ms).
  const ki = [0, 1, 2].find((i) => i !== vi);
  const killed = cluster.nodes[ki];
  const survivor = cluster.nodes[[0, 1, 2].find((i) => i !== vi && i !== ki)];
  assert.ok((await clusterIds(survivor.url)).includes(NODE_IDS[ki]));
  const t0 = Date.now();
  await killed.stop("SIGKILL");
  await waitFor(async () => !(await clusterIds(survivor.url)).includes(NODE_IDS[ki]), { timeoutMs: 5000, what: "killed node expired from the registry" });
  const gone = Date.now() - t0;
  assert.ok(gone <= 2000 + 600, `expired within the TTL (+ one heartbeat): ${gone} ms`);
  assert.deepEqual(await clusterIds(survivor.url), [NODE_IDS[[0, 1, 2].find((i) => i !== vi && i !== ki)]]);
});

test("SIGTERM drain behind a round-robin HAProxy: the drained node's clients are closed at the transport level, everyone ends up back in the room, broadcasts continue", async (t) => {
  const cluster = await startCluster({ extra: ["--drain-period", "2s"] });
  t.after(() => cluster.stop());
  const lb = track(t, await startHaproxy({ variant: "roundrobin", backends: cluster.backends }));
  const clients = [];
  for (let i = 0; i < 6; i++) {
    clients.push(countingClient(lb.url, { name: `p${i}`, room: "rr-drain", transports: ["polling"], reconnection: true }));
  }
  t.after(() => { for (const c of clients) c.socket.disconnect(); });
  const settled = (what) => waitFor(() => clients.every((c) => c.socket.connected && c.inRoom), { timeoutMs: 30000, what })
    .catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(clients.map((c) => [c.name, c.socket.connected, c.connects, c.joins, c.errors]))}`); });
  await settled("6 clients joined");
  const before = await connectionsPerNode(cluster.nodes);
  const vi = before.indexOf(Math.max(...before));
  assert.ok(before[vi] > 0);
  // Which clients live on the victim: their session keys (the Engine.IO id the client presents,
  // not its socket id) are recorded as the victim's.
  const sids = new Map(clients.map((c) => [c.socket.io.engine.id, c]));
  const onVictim = [];
  for (const [sid, c] of sids) {
    // A poll without forwarding header would be forwarded; ask the victim's own view instead:
    // the sid record in Redis names the owner.
    const owner = await ownerOf(cluster.redis.port, sid);
    if (owner === NODE_IDS[vi]) onVictim.push(c);
  }
  assert.equal(onVictim.length, before[vi], "sid records name the victim for its clients");
  cluster.nodes[vi].signal("SIGTERM");
  assert.equal((await cluster.nodes[vi].exited).code, 0);
  // Until HAProxy's health check marks the dead node DOWN it still tries it first; a POST that
  // meets the refused connection may get a 503 (HAProxy cannot replay a streamed body), which
  // the client reports as a transport error and reconnects. Wait for the balancer to settle.
  await waitFor(() => lb.output().includes(`gateways/${NODE_IDS[vi]} is DOWN`), { timeoutMs: 15000, what: "HAProxy marking the drained node DOWN" });
  await settled("clients reconnected and back in the room");
  for (const c of onVictim) {
    assert.ok(c.connects >= 2, `${c.name} reconnected`);
    assert.ok(c.errors.includes("disconnect: transport close"), `${c.name}: closed at the transport level by the drain: ${c.errors}`);
    assert.ok(!c.errors.some((e) => e.includes("io server disconnect")), `${c.name}: ${c.errors}`);
  }
  for (const c of clients) { c.got.clear(); c.total = 0; }
  await publishAll(clients, "rr-drain", 5);
  await assertAllDelivered(clients, 5);
});

/** GET the sid -> node record straight from Redis (redis-cli); it is named by the SHA-256 of
 * the session key and holds `<node-id> <signature>`: the node id is returned. */
async function ownerOf(port, sid) {
  const { execFileSync } = await import("node:child_process");
  const { createHash } = await import("node:crypto");
  const digest = createHash("sha256").update(sid).digest("hex");
  return execFileSync("redis-cli", ["-p", String(port), "GET", `sio-gateway:socket.io:sid:${digest}`]).toString().trim().split(" ")[0];
}

test("a poll passing through a node when it starts draining is released with a NOOP; the session goes on at its owner without loss", async (t) => {
  const cluster = await startCluster({ extra: ["--drain-period", "3s"] });
  t.after(() => cluster.stop());
  const [a, b, c] = cluster.nodes;
  const raw = new RawPolling(() => a.url);
  await raw.open(a.url);
  await raw.send(["0"]);
  await raw.until((p) => p.startsWith("0{"), "CONNECT ack");
  await raw.send(['21["join","through"]']);
  await raw.until((p) => p.startsWith("31"), "join ack");

  // A poll for gateway-1's session, waiting inside gateway-2's forward.
  const pending = fetch(`${b.url}${raw.q()}`).then(async (r) => ({ status: r.status, body: await r.text() }));
  // No observable "forward in flight" signal exists; give the request time to reach the owner.
  await sleep(300);
  b.signal("SIGTERM");
  const released = await pending;
  assert.deepEqual(released, { status: 200, body: "6" }, "released with a NOOP packet");
  // While it drains, gateway-2 refuses new pass-through polls (a balancer retries elsewhere);
  // with no session of its own its drain is immediate, so it may already be gone.
  const refused = await fetch(`${b.url}${raw.q()}`).catch(() => null);
  if (refused) {
    assert.equal(refused.status, 503);
    await refused.text();
  }

  // The owner dropped the abandoned poll: a new poll (directly at the owner) is accepted and
  // gets a message published afterwards.
  const peer = countingClient(c.url, { name: "peer", room: "through", transports: ["websocket"] });
  t.after(() => peer.socket.disconnect());
  await waitJoined([peer]);
  await publishAll([peer], "through", 1);
  const msg = await raw.until((p) => p.startsWith('2["msg"'), "message after the release");
  assert.equal(msg, '2["msg",{"from":"peer","n":0}]');
  assert.equal((await b.exited).code, 0);
});
