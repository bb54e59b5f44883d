// Cluster mode without a load balancer: three real sio-gateway nodes on a private Redis.
// Sessions whose requests hop between nodes (raw Engine.IO long-polling, a WebSocket upgrade
// sent to another node) keep working because nodes forward to the session's owner; forged
// forwarding headers are refused; the registry, sticky hints, adapter metrics and room
// broadcasts across nodes are checked on the way.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import http from "node:http";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { waitFor, scrapeMetrics, metricSum } from "../lib/harness.mjs";
import {
  startCluster, clusterIds, metricOver, RawPolling, countingClient, waitJoined, publishAll,
  assertAllDelivered, API_KEY, NODE_IDS, once,
} from "./cluster-lib.mjs";

let cluster;
before(async () => { cluster = await startCluster(); });
after(async () => { await cluster?.stop(); });

test("registry: /api/v1/cluster lists the three nodes (API key required); readyz, redis_up and adapter metrics", async () => {
  const [a] = cluster.nodes;
  assert.equal((await fetch(`${a.url}/api/v1/cluster`)).status, 401);
  assert.equal((await fetch(`${a.url}/api/v1/cluster`, { headers: { authorization: "Bearer wrong-key-xxxx" } })).status, 401);
  const r = await fetch(`${a.url}/api/v1/cluster`, { headers: { authorization: `Bearer ${API_KEY}` } });
  const body = await r.json();
  assert.deepEqual(body.nodes.map((n) => n.id), NODE_IDS);
  for (const [i, n] of body.nodes.entries()) {
    assert.equal(n.advertise, cluster.nodes[i].url, "advertise derived from --listen");
    assert.ok(n.updated_at > 0 && n.started_at > 0);
  }
  const ready = await (await fetch(`${a.url}/readyz`)).json();
  assert.equal(ready.status, "ready");
  const m = await scrapeMetrics(`${a.url}/metrics`);
  assert.equal(m["sio_gateway_redis_up"], 1);
  for (const f of ["adapter_messages_published_total", "adapter_messages_received_total", "adapter_request_timeouts_total"]) {
    assert.ok(`sio_gateway_${f}{type="broadcast"}` in m, `${f} exported`);
  }
  assert.equal(m["sio_gateway_adapter_decode_errors_total"], 0);
  assert.ok('sio_gateway_polling_forwards_total{result="ok"}' in m);
});

test("sticky hints: handshake sets sio_node cookie and x-sio-node (polling and websocket)", async () => {
  const b = cluster.nodes[1];
  const r = await fetch(`${b.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("x-sio-node"), "gateway-2");
  assert.match(r.headers.get("set-cookie"), /^sio_node=gateway-2; Path=\/; HttpOnly; SameSite=Lax/);
  const ws = new WebSocket(`${b.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  const [res] = await Promise.all([once(ws, "upgrade"), once(ws, "open")]);
  assert.equal(res.headers["x-sio-node"], "gateway-2");
  assert.match(String(res.headers["set-cookie"]), /sio_node=gateway-2/);
  ws.terminate();
});

test("long-polling session hopping between nodes keeps working; broadcasts cross nodes both ways", async () => {
  const [a, b, c] = cluster.nodes;
  const urls = [a.url, b.url, c.url];
  let i = 0;
  const raw = new RawPolling(() => urls[i++ % 3]); // every request to the next node
  await raw.open(a.url);
  assert.equal(raw.handshakeNode, "gateway-1");
  const before = await metricOver(cluster.nodes, "sio_gateway_polling_forwards_total", 'result="ok"');

  await raw.send(["0"]); // Socket.IO CONNECT to "/" (lands on gateway-2)
  const connected = await raw.until((p) => p.startsWith("0{"), "CONNECT ack");
  assert.equal(JSON.parse(connected.slice(1)).sid.length > 0, true);
  await raw.send(['21["join","hop-room"]']);
  assert.equal(await raw.until((p) => p.startsWith("31"), "join ack"), '31[{"ok":true}]');

  // A websocket client on gateway-3 in the same room.
  const peer = countingClient(c.url, { name: "peer", room: "hop-room", transports: ["websocket"] });
  try {
    await waitJoined([peer]);
    // raw -> room: published through whatever node the POST lands on, received on gateway-3.
    for (let n = 0; n < 5; n++) {
      await raw.send([`2${10 + n}["publish",{"room":"hop-room","event":"msg","data":{"from":"raw","n":${n}}}]`]);
      assert.equal(await raw.until((p) => p.startsWith(`3${10 + n}`), "publish ack"), `3${10 + n}[{"ok":true}]`);
    }
    await waitFor(() => peer.total === 5, { what: "peer got 5 messages from the hopping client" });
    // peer -> room: delivered to the raw session (owned by gateway-1) whichever node it polls.
    await publishAll([peer], "hop-room", 5);
    const got = [];
    while (got.length < 5) {
      const p = await raw.until((x) => x.startsWith('2["msg"'), `message ${got.length}`);
      got.push(JSON.parse(p.slice(1))[1].n);
    }
    assert.deepEqual(got.sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual(peer.errors, []);
  } finally {
    peer.socket.disconnect();
  }
  const after = await metricOver(cluster.nodes, "sio_gateway_polling_forwards_total", 'result="ok"');
  assert.ok(after - before >= 8, `forwards counted: ${after - before}`);
});

test("a WebSocket upgrade sent to another node is forwarded to the session's owner", async () => {
  const [a, b] = cluster.nodes;
  const raw = new RawPolling(() => a.url);
  await raw.open(a.url);
  await raw.send(["0"]);
  await raw.until((p) => p.startsWith("0{"), "CONNECT ack");
  const ws = new WebSocket(`${b.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket&sid=${raw.sid}`);
  try {
    // Queue every frame: two frames can arrive in one tick, before a new listener is attached.
    const frames = [];
    ws.on("message", (d) => frames.push(String(d)));
    await once(ws, "open");
    // The next frame that is not Engine.IO housekeeping (ping: answered, noop: skipped).
    const next = async () => {
      for (;;) {
        await waitFor(() => frames.length > 0, { what: "a websocket frame", intervalMs: 10 });
        const f = frames.shift();
        if (f === "2") ws.send("3");
        else if (f !== "6") return f;
      }
    };
    ws.send("2probe");
    assert.equal(await next(), "3probe");
    ws.send("5"); // UPGRADE: the session now runs over this (forwarded) websocket
    ws.send('421["join","ws-hop"]');
    assert.equal(await next(), '431[{"ok":true}]');
    const peer = countingClient(cluster.nodes[2].url, { name: "peer", room: "ws-hop", transports: ["websocket"] });
    try {
      await waitJoined([peer]);
      await publishAll([peer], "ws-hop", 1);
      assert.equal(await next(), '42["msg",{"from":"peer","n":0}]');
    } finally {
      peer.socket.disconnect();
    }
  } finally {
    ws.terminate();
  }
});

test("forged or invalid forwarding headers are refused with 403 and counted", async () => {
  const [a, b] = cluster.nodes;
  const raw = new RawPolling(() => a.url);
  await raw.open(a.url);
  const before = metricSum(await scrapeMetrics(`${b.url}/metrics`), "sio_gateway_polling_forwards_total", 'result="refused"');
  const ts = Math.floor(Date.now() / 1000);
  for (const headers of [
    { "x-sio-forwarded": "gateway-1" },
    { "x-sio-forwarded": "gateway-1", "x-sio-forward-auth": `${ts}.${"00".repeat(32)}` },
    { "x-sio-forwarded": "gateway-1", "x-sio-forward-auth": "garbage" },
    { "x-sio-forward-auth": `${ts}.abcd` },
  ]) {
    const r = await fetch(`${b.url}${raw.q()}`, { headers });
    assert.equal(r.status, 403, JSON.stringify(headers));
  }
  const afterN = metricSum(await scrapeMetrics(`${b.url}/metrics`), "sio_gateway_polling_forwards_total", 'result="refused"');
  assert.equal(afterN - before, 4);
  // Anyone can send the header: a flood of it is counted, and logged at most once per 10 s
  // (it was one warning per request: 35,000 lines in 5 s from 8 keep-alive connections).
  const logged = () => b.output().split("\n").filter((l) => l.includes("invalid forwarding header")).length;
  const linesBefore = logged();
  for (let i = 0; i < 300; i += 30) {
    await Promise.all(Array.from({ length: 30 }, () => fetch(`${b.url}${raw.q()}`, { headers: { "x-sio-forwarded": "x" } })
      .then((r) => { assert.equal(r.status, 403); return r.text(); })));
  }
  const flood = metricSum(await scrapeMetrics(`${b.url}/metrics`), "sio_gateway_polling_forwards_total", 'result="refused"');
  assert.equal(flood - afterN, 300);
  assert.ok(logged() - linesBefore <= 1, `${logged() - linesBefore} warnings for 300 refused requests`);
  // The session itself is untouched.
  await raw.send(["0"], b.url);
  await raw.until((p) => p.startsWith("0{"), "CONNECT ack");
});

/** A command on the cluster's Redis, as anyone who can write to it would send it. */
function redisCli(...args) {
  return execFileSync(process.env.REDIS_CLI || "redis-cli", ["-p", String(cluster.redis.port), ...args], { encoding: "utf8" }).trim();
}

const untrusted = async (node) =>
  metricSum(await scrapeMetrics(`${node.url}/metrics`), "sio_gateway_polling_forwards_total", 'result="untrusted"');

test("a registry entry forged in Redis (advertise URL with a path and query, no signature) is never forwarded to (SSRF)", async () => {
  const [, b] = cluster.nodes;
  // The internal service the forged entry points at: it counts what reaches it.
  const hits = [];
  const internal = http.createServer((req, res) => {
    hits.push({ url: req.url, headers: req.headers });
    res.end("INTERNAL-SECRET-DATA");
  });
  await new Promise((r) => internal.listen(0, "127.0.0.1", r));
  const port = internal.address().port;
  const key = "sio-gateway:socket.io:node:evil";
  try {
    const before = await untrusted(b);
    const now = Date.now();
    redisCli("SET", key, JSON.stringify({
      id: "evil", advertise: `http://127.0.0.1:${port}/internal/admin/secrets?x=`,
      started_at: now, connections: 0, updated_at: now, version: "0.1.0",
    }));
    // Any client, any sid, the sticky cookie naming the forged node. Sent until either the
    // internal server is reached or node b has read (and ignored) the entry at two heartbeats.
    const attack = () => fetch(`${b.url}/socket.io/?EIO=4&transport=polling&sid=ANYTHING1234`, {
      headers: { cookie: "sio_node=evil; app_session=client-secret", authorization: "Bearer client-token" },
    });
    let last;
    await waitFor(async () => {
      last = await attack();
      last.body_ = await last.text();
      return hits.length > 0 || (await untrusted(b)) - before >= 2;
    }, { what: "node b listing the registry twice", timeoutMs: 15000 });
    assert.equal(hits.length, 0, `the internal server was reached: ${JSON.stringify(hits)}`);
    assert.equal(last.status, 400);
    assert.deepEqual(JSON.parse(last.body_), { code: 1, message: "Session ID unknown" });
    assert.ok(!last.body_.includes("INTERNAL-SECRET-DATA"));
    // Not listed either, and warned at most once per 10 s.
    assert.ok(!(await clusterIds(b.url)).includes("evil"));
    const warnings = b.output().split("\n").filter((l) => l.includes("ignored an untrusted registry entry"));
    assert.ok(warnings.length >= 1 && warnings.length <= 2, `${warnings.length} warnings`);
  } finally {
    redisCli("DEL", key);
    await new Promise((r) => internal.close(r));
  }
});

test("a session-owner record rewritten in Redis does not move an honest session's requests (signed records)", async () => {
  const [a, b] = cluster.nodes;
  const raw = new RawPolling(() => a.url);
  await raw.open(a.url);
  assert.equal(raw.handshakeNode, "gateway-1");
  const key = `sio-gateway:socket.io:sid:${createHash("sha256").update(raw.sid).digest("hex")}`;
  assert.match(redisCli("GET", key), /^gateway-1 [0-9a-f]{64}$/, "record signed by its owner");
  // Point the session at another node (here a real one, so an unsigned record would be
  // forwarded there and the session lost: "Session ID unknown").
  redisCli("SET", key, "gateway-3", "KEEPTTL");
  const before = await untrusted(b);
  // The client's sticky cookie names its real owner: with the record refused, node b uses it.
  const r = await fetch(`${b.url}${raw.q()}`, {
    method: "POST", body: "40", headers: { "content-type": "text/plain;charset=UTF-8", cookie: "sio_node=gateway-1" },
  });
  assert.equal(r.status, 200, `POST through node b -> ${r.status} ${await r.clone().text()}`);
  assert.equal(await r.text(), "ok");
  await raw.until((p) => p.startsWith("0{"), "CONNECT ack on the owner");
  assert.ok((await untrusted(b)) - before >= 1, "the rewritten record is counted");
});

test("unknown sid: every node answers Engine.IO's 400 Session ID unknown, numeric code (no forward loop)", async () => {
  for (const n of cluster.nodes) {
    const r = await fetch(`${n.url}/socket.io/?EIO=4&transport=polling&sid=doesnotexist1234`);
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), { code: 1, message: "Session ID unknown" });
  }
  assert.ok((await metricOver(cluster.nodes, "sio_gateway_polling_forwards_total", 'result="no_owner"')) >= 3);
});

test("socket.io-client clients on three nodes (polling and websocket) exchange room broadcasts without loss", async () => {
  const clients = [];
  for (const [i, n] of cluster.nodes.entries()) {
    clients.push(countingClient(n.url, { name: `poll-${i}`, room: "cross", transports: ["polling"] }));
    clients.push(countingClient(n.url, { name: `ws-${i}`, room: "cross" }));
  }
  try {
    await waitJoined(clients);
    // The registry's per-node connection counts follow within a heartbeat.
    await waitFor(async () => {
      const r = await fetch(`${cluster.nodes[2].url}/api/v1/cluster`, { headers: { authorization: `Bearer ${API_KEY}` } });
      const { nodes } = await r.json();
      // (raw sessions of the earlier tests may still be alive: at least 2.)
      return nodes.length === 3 && nodes.every((n) => n.connections >= 2);
    }, { what: "registry showing the connections of every node" });
    await publishAll(clients, "cross", 10);
    await assertAllDelivered(clients, 10);
    for (const c of clients) assert.deepEqual(c.errors, [], c.name);
  } finally {
    for (const c of clients) c.socket.disconnect();
  }
  assert.deepEqual(await clusterIds(cluster.nodes[0].url), NODE_IDS);
});
