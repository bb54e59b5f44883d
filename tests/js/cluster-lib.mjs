// Helpers shared by the cluster-*.test.mjs files: a private Redis with three real sio-gateway
// nodes (gateway-1..3, the ids the deploy/ load balancer configs know), a raw Engine.IO
// long-polling client (to send each request to the node of our choice), and socket.io-client
// helpers that count every message.
import assert from "node:assert/strict";
import { io as ioc } from "socket.io-client";
import { startRedis, startGateway, waitFor, scrapeMetrics, metricSum, once } from "../lib/harness.mjs";

export const SECRET = "cluster-secret-for-tests-0123456789";
export const API_KEY = "cluster-api-key-123";
export const NODE_IDS = ["gateway-1", "gateway-2", "gateway-3"];

/** Start one cluster node on `redisUrl` (on `port`, if given); resolves once /readyz answers 200. */
export function startNode(redisUrl, id, extra = [], { port } = {}) {
  return startGateway(
    ["--redis", redisUrl, "--node-id", id, "--cluster-secret", SECRET, "--api-key", API_KEY,
      "--cluster-heartbeat", "500ms", "--cluster-node-ttl", "2s", ...extra],
    { name: id, waitReady: true, port },
  );
}

/** A private Redis and three nodes. `stop()` ends everything (nodes first). */
export async function startCluster({ extra = [] } = {}) {
  const redis = await startRedis();
  const nodes = [];
  try {
    for (const id of NODE_IDS) nodes.push(await startNode(redis.url, id, extra));
  } catch (e) {
    for (const n of nodes) await n.stop();
    await redis.stop();
    throw e;
  }
  return {
    redis,
    nodes,
    backends: nodes.map((n, i) => ({ id: NODE_IDS[i], host: "127.0.0.1", port: n.port })),
    async stop() {
      for (const n of nodes) await n.stop();
      await redis.stop();
    },
  };
}

/** GET /api/v1/cluster on `url`: the ids of the live nodes. */
export async function clusterIds(url) {
  const r = await fetch(`${url}/api/v1/cluster`, { headers: { authorization: `Bearer ${API_KEY}` } });
  assert.equal(r.status, 200, `GET /api/v1/cluster -> ${r.status}`);
  return (await r.json()).nodes.map((n) => n.id);
}

/** Sum of a metric over several nodes. */
export async function metricOver(nodes, name, filter = "") {
  let sum = 0;
  for (const n of nodes) {
    if (n.running) sum += metricSum(await scrapeMetrics(`${n.url}/metrics`), name, filter);
  }
  return sum;
}

/** Live Socket.IO connections of each node (the `connections` gauge summed over labels). */
export async function connectionsPerNode(nodes) {
  const out = [];
  for (const n of nodes) {
    if (!n.running) { out.push(0); continue; }
    const text = await (await fetch(`${n.url}/metrics`)).text();
    out.push(text.split("\n").filter((l) => l.startsWith("sio_gateway_connections{")).reduce((s, l) => s + Number(l.split(" ").pop()), 0));
  }
  return out;
}

/** Disconnect `clients` and wait until the nodes have no connection left. */
export async function disconnectAll(clients, nodes) {
  for (const c of clients) c.socket.disconnect();
  await waitFor(async () => (await connectionsPerNode(nodes)).every((x) => x === 0), { what: "every node back to 0 connections" });
}

// ---------------------------------------------------------------- raw Engine.IO long-polling

const SEP = "\x1e";

/**
 * An Engine.IO v4 / Socket.IO v5 client over long-polling whose every request goes to the node
 * `pick()` returns, so a session can hop between nodes without any balancer.
 */
export class RawPolling {
  constructor(pick) {
    this.pick = pick;
    this.sid = null;
    this.inbox = []; // decoded Socket.IO packets received (strings)
  }

  q() {
    return `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(this.sid)}`;
  }

  async open(url) {
    const r = await fetch(`${url ?? this.pick()}/socket.io/?EIO=4&transport=polling`);
    assert.equal(r.status, 200, "handshake");
    const body = await r.text();
    assert.ok(body.startsWith("0{"), body);
    this.sid = JSON.parse(body.slice(1)).sid;
    this.handshakeNode = r.headers.get("x-sio-node");
    this.cookie = r.headers.get("set-cookie");
    return this;
  }

  /** POST Socket.IO packets (each wrapped in an Engine.IO message). */
  send(packets, url = this.pick()) {
    return this.sendEngine(packets.map((p) => `4${p}`), url);
  }

  /** POST raw Engine.IO packets; returns the response text. */
  async sendEngine(packets, url = this.pick()) {
    const r = await fetch(url + this.q(), { method: "POST", body: packets.join(SEP), headers: { "content-type": "text/plain;charset=UTF-8" } });
    const text = await r.text();
    if (r.status !== 200) throw Object.assign(new Error(`POST -> ${r.status} ${text}`), { status: r.status });
    return text;
  }

  /** One GET poll; answers pings, returns the Socket.IO packets (engine type 4, prefix removed). */
  async poll(url = this.pick()) {
    const r = await fetch(url + this.q());
    const text = await r.text();
    if (r.status !== 200) throw Object.assign(new Error(`GET -> ${r.status} ${text}`), { status: r.status });
    const out = [];
    for (const p of text.split(SEP)) {
      if (p === "2") await this.sendEngine(["3"]);
      else if (p.startsWith("4")) out.push(p.slice(1));
      else if (p === "1") throw new Error("session closed by the server");
    }
    this.inbox.push(...out);
    return out;
  }

  /** Poll until a packet satisfies `pred`; returns it. */
  async until(pred, what, timeoutMs = 8000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.inbox.find(pred);
      if (hit) {
        this.inbox.splice(this.inbox.indexOf(hit), 1);
        return hit;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; inbox: ${JSON.stringify(this.inbox)}`);
      await this.poll();
    }
  }
}

// ---------------------------------------------------------------- socket.io-client helpers

/**
 * A socket.io-client that records everything: `got` counts `msg` events by sender, `errors`
 * collects connect_error / disconnect reasons. It (re)joins `room` on every connect.
 */
export function countingClient(url, { name, room, transports, withCredentials = false, reconnection = false }) {
  const s = ioc(url, { transports, withCredentials, reconnection, forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 1000, timeout: 5000 });
  const st = { name, socket: s, got: new Map(), total: 0, errors: [], joins: 0, connects: 0, inRoom: false };
  s.on("msg", (m) => {
    st.got.set(`${m.from}:${m.n}`, (st.got.get(`${m.from}:${m.n}`) ?? 0) + 1);
    st.total++;
  });
  s.on("connect", async () => {
    st.connects++;
    if (!room) return;
    const ack = await s.timeout(5000).emitWithAck("join", room).catch((e) => ({ ok: false, error: e.message }));
    if (ack.ok && s.connected) { st.joins++; st.inRoom = true; }
    else st.errors.push(`join: ${ack.error}`);
  });
  s.on("connect_error", (e) => st.errors.push(`connect_error: ${e.message}`));
  s.on("disconnect", (reason) => { st.inRoom = false; st.errors.push(`disconnect: ${reason}`); });
  return st;
}

/** Wait until every client is connected and joined its room (`joins` reached `n`). */
export function waitJoined(clients, n = 1, timeoutMs = 15000) {
  return waitFor(() => clients.every((c) => c.socket.connected && c.joins >= n), {
    timeoutMs, what: `${clients.length} clients connected and joined`,
  }).catch((e) => {
    throw new Error(`${e.message}: ${JSON.stringify(clients.map((c) => [c.name, c.socket.connected, c.connects, c.joins, c.errors]))}`);
  });
}

/** Each client publishes `k` messages to `room`; resolves once every publish was acked ok. */
export async function publishAll(clients, room, k) {
  await Promise.all(clients.map(async (c) => {
    for (let n = 0; n < k; n++) {
      const ack = await c.socket.timeout(5000).emitWithAck("publish", { room, event: "msg", data: { from: c.name, n } });
      assert.deepEqual(ack, { ok: true }, `${c.name} publish ${n}`);
    }
  }));
}

/** Every client got every other client's `k` messages exactly once. */
export async function assertAllDelivered(clients, k, timeoutMs = 10000) {
  const expected = (clients.length - 1) * k;
  await waitFor(() => clients.every((c) => c.total >= expected), {
    timeoutMs, what: `every client receiving ${expected} messages (got ${clients.map((c) => c.total).join(",")})`,
  }).catch((e) => {
    throw new Error(`${e.message}; errors: ${JSON.stringify(clients.map((c) => c.errors))}`);
  });
  for (const c of clients) {
    assert.equal(c.total, expected, `${c.name}: total`);
    for (const o of clients) {
      if (o === c) continue;
      for (let n = 0; n < k; n++) assert.equal(c.got.get(`${o.name}:${n}`), 1, `${c.name} got ${o.name}:${n} once`);
    }
  }
}

export { once };
