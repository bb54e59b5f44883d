// Issue 13 item 2: a long-polling session must not be drivable by whoever knows its public
// `socket.id`. The `sid` that polls, posts and the websocket upgrade present is a secret key
// handed out in the polling handshake, distinct from the socket id; a request presenting the
// socket id (or anything unknown, or two sids) gets Node's `400 {"code":1,"message":"Session ID
// unknown"}` and never reaches the session. Single node first, then two nodes behind a
// round-robin HAProxy (forwarding by key, Redis records named by the key's SHA-256).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { io } from "socket.io-client";
import {
  startGateway, startRedis, startProcess, freePort, waitFor, waitForPort, track, once, sleep,
  scrapeMetrics, metricSum,
} from "../lib/harness.mjs";
import { startNode, metricOver, countingClient, waitJoined, disconnectAll } from "./cluster-lib.mjs";

const UNKNOWN = { code: 1, message: "Session ID unknown" };
const POLLING_ONLY = { transports: ["polling"], upgrade: false };

function client(t, url, opts = {}) {
  const s = io(url, { forceNew: true, reconnection: false, ...opts });
  track(t, s);
  return s;
}
const connected = async (s) => { if (!s.connected) await once(s, "connect"); return s; };

/** Assert `r` is Engine.IO's "Session ID unknown" with a numeric code. */
async function assertUnknown(r, what) {
  const text = await r.text();
  assert.equal(r.status, 400, `${what}: status (${text})`);
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/, `${what}: content type`);
  assert.deepEqual(JSON.parse(text), UNKNOWN, `${what}: body`);
}

const forged = '42["publish",{"room":"hj","event":"chat","data":"forged"}]';
const attackPost = (base, sid) => fetch(`${base}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
  method: "POST", body: forged, headers: { "content-type": "text/plain;charset=UTF-8" },
});
const attackGet = (base, sid) => fetch(`${base}/socket.io/?EIO=4&transport=polling&sid=${sid}`);

/** A polling-only victim and a websocket member in room "hj"; the member records every "chat". */
async function victimAndMember(t, url) {
  const victim = await connected(client(t, url, POLLING_ONLY));
  const member = await connected(client(t, url, { transports: ["websocket"] }));
  assert.deepEqual(await victim.emitWithAck("join", "hj"), { ok: true });
  assert.deepEqual(await member.emitWithAck("join", "hj"), { ok: true });
  const got = [];
  member.on("chat", (d) => got.push(d));
  const disconnects = [];
  victim.on("disconnect", (r) => disconnects.push(r));
  return { victim, member, got, disconnects };
}

/** The victim publishes `data` and the member receives it (after whatever came before). */
async function victimChats({ victim, got }, data) {
  assert.deepEqual(await victim.emitWithAck("publish", { room: "hj", event: "chat", data }), { ok: true });
  await waitFor(() => got.includes(data), { what: `member receiving ${data}` });
}

test("a POST with the victim's socket.id is refused (numeric code 1) and nothing forged is relayed", async (t) => {
  const gw = track(t, await startGateway([]));
  const v = await victimAndMember(t, gw.url);
  assert.equal(v.victim.io.engine.transport.name, "polling");
  await assertUnknown(await attackPost(gw.url, v.victim.id), "forged POST");
  // Also refused: the socket id next to a valid key of the attacker's own session, in either
  // order, and a bare `sid` before it (the engine reads the first `sid=` pair).
  const hs = await (await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`)).text();
  const own = JSON.parse(hs.slice(1)).sid;
  for (const q of [`${own}&sid=${v.victim.id}`, `${v.victim.id}&sid=${own}`]) {
    await assertUnknown(await attackPost(gw.url, q), `two sids ${q}`);
  }
  const bare = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling&sid&sid=${v.victim.id}`, { method: "POST", body: forged });
  await assertUnknown(bare, "bare sid");
  // The victim's own publish arrives; had a forged one been taken, it would have come first.
  await victimChats(v, "real-1");
  assert.deepEqual(v.got, ["real-1"], "the member received nothing forged");
  assert.deepEqual(v.disconnects, []);
});

test("a GET with the victim's socket.id is refused and the victim's session keeps working", async (t) => {
  const gw = track(t, await startGateway([]));
  const v = await victimAndMember(t, gw.url);
  for (let i = 0; i < 3; i++) await assertUnknown(await attackGet(gw.url, v.victim.id), `GET ${i}`);
  // A websocket upgrade presenting the socket id is refused the same way.
  const up = await fetch(`${gw.url}/socket.io/?EIO=4&transport=websocket&sid=${v.victim.id}`);
  await assertUnknown(up, "upgrade with the socket id");
  await victimChats(v, "after-get");
  // And it still receives.
  const back = once(v.victim, "chat");
  assert.deepEqual(await v.member.emitWithAck("publish", { room: "hj", event: "chat", data: "to-victim" }), { ok: true });
  assert.equal(await back, "to-victim");
  assert.ok(v.victim.connected);
  assert.deepEqual(v.disconnects, []);
});

test("the Engine.IO id is a secret distinct from socket.id; polling -> websocket upgrade still works", async (t) => {
  const gw = track(t, await startGateway([]));
  const poll = await connected(client(t, gw.url, POLLING_ONLY));
  assert.notEqual(poll.io.engine.id, poll.id);
  assert.match(poll.io.engine.id, /^[0-9a-f]{32}$/, "128-bit hex key");

  // Raw: the handshake's sid (the key) and the CONNECT ack's sid (the socket id) differ; the
  // key works, the socket id does not.
  const base = `${gw.url}/socket.io/?EIO=4&transport=polling`;
  const key = JSON.parse((await (await fetch(base)).text()).slice(1)).sid;
  assert.equal((await fetch(`${base}&sid=${key}`, { method: "POST", body: "40" })).status, 200);
  // The CONNECT ack is in the next poll answer, or the one after: engineioxide pings a new session
  // at once (its heartbeat's first interval tick is immediate), and a poll may be answered with
  // that lone "2" before the ack is queued. Poll until it comes.
  let ack;
  for (let i = 0; i < 5 && !ack; i++) {
    ack = (await (await fetch(`${base}&sid=${key}`)).text()).split("\x1e").find((p) => p.startsWith("40"));
  }
  assert.ok(ack, "the CONNECT ack in the polls' answers");
  const socketId = JSON.parse(ack.slice(2)).sid;
  assert.notEqual(socketId, key);
  await assertUnknown(await fetch(`${base}&sid=${socketId}`), "raw GET with the socket id");

  // A default client starts on polling, upgrades with its key and keeps chatting.
  const up = await connected(client(t, gw.url));
  await waitFor(() => up.io.engine.transport.name === "websocket", { what: "upgrade to websocket" });
  assert.notEqual(up.io.engine.id, up.id);
  assert.deepEqual(await up.emitWithAck("join", "u"), { ok: true });
  assert.deepEqual(await poll.emitWithAck("join", "u"), { ok: true });
  const got = once(poll, "chat");
  assert.deepEqual(await up.emitWithAck("publish", { room: "u", event: "chat", data: "upgraded" }), { ok: true });
  assert.equal(await got, "upgraded");
  const back = once(up, "chat");
  assert.deepEqual(await poll.emitWithAck("publish", { room: "u", event: "chat", data: "polled" }), { ok: true });
  assert.equal(await back, "polled");
});

test("every Engine.IO error body has a numeric code", async (t) => {
  const gw = track(t, await startGateway([]));
  const base = `${gw.url}/socket.io/`;
  for (const [method, q, body] of [
    ["GET", "?EIO=4&transport=carrier-pigeon", { code: 0, message: "Transport unknown" }],
    ["POST", "?EIO=4&transport=polling", { code: 2, message: "Bad handshake method" }],
    ["GET", "?EIO=9&transport=polling", { code: 5, message: "Unsupported protocol version" }],
    ["GET", "?EIO=4&transport=polling&sid=doesnotexist", UNKNOWN],
  ]) {
    const r = await fetch(base + q, { method, body: method === "POST" ? "40" : undefined });
    assert.equal(r.status, 400, `${method} ${q}`);
    assert.deepEqual(await r.json(), body, `${method} ${q}`);
  }
});

/** HAProxy in plain round robin over `ports` (no cookies, no health checks): every request of a
 * session may land on any node. */
async function roundRobin(t, ports) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-rr-"));
  const cfg = path.join(dir, "haproxy.cfg");
  fs.writeFileSync(cfg, [
    "defaults",
    "  mode http",
    "  timeout connect 5s", "  timeout client 65s", "  timeout server 65s", "  timeout tunnel 1h",
    "frontend socketio",
    `  bind 127.0.0.1:${port}`,
    "  default_backend gateways",
    "backend gateways",
    "  balance roundrobin",
    ...ports.map((p, i) => `  server gateway-${i + 1} 127.0.0.1:${p}`),
    "",
  ].join("\n"));
  const proc = track(t, startProcess(process.env.HAPROXY || "haproxy", ["-f", cfg, "-db"], { name: `haproxy-rr:${port}` }));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  await waitForPort(port);
  return Object.assign(proc, { url: `http://127.0.0.1:${port}` });
}

test("2 nodes behind round-robin HAProxy: polling clients chat across nodes by key; the attack is refused", async (t) => {
  const redis = track(t, await startRedis());
  const nodes = [];
  for (const id of ["gateway-1", "gateway-2"]) nodes.push(track(t, await startNode(redis.url, id)));
  const lb = await roundRobin(t, nodes.map((n) => n.port));
  const forwardsBefore = await metricOver(nodes, "sio_gateway_polling_forwards_total", 'result="ok"');

  // Polling-only clients without cookies: only the Redis records (by key digest) route them.
  const clients = [0, 1, 2, 3].map((i) => countingClient(lb.url, { name: `poll-${i}`, room: "hj", transports: ["polling"] }));
  try {
    await waitJoined(clients);
    for (const c of clients) assert.notEqual(c.socket.io.engine.id, c.socket.id, `${c.name}: key != socket id`);
    const forged = [];
    for (const c of clients) c.socket.on("chat", (d) => { if (d === "forged") forged.push(c.name); });

    // Cross-node chat: every client publishes, every other one receives.
    for (const c of clients) {
      const ack = await c.socket.timeout(5000).emitWithAck("publish", { room: "hj", event: "msg", data: { from: c.name, n: 0 } });
      assert.deepEqual(ack, { ok: true });
    }
    await waitFor(() => clients.every((c) => c.total === clients.length - 1), { what: "every client got the others' message" });
    const forwards = (await metricOver(nodes, "sio_gateway_polling_forwards_total", 'result="ok"')) - forwardsBefore;
    assert.ok(forwards > 0, `round robin needed forwarding by key (${forwards})`);

    // Redis holds each session's record under the key's SHA-256, never the key itself.
    const recorded = execFileSync("redis-cli", ["-p", String(redis.port), "--scan", "--pattern", "sio-gateway:socket.io:sid:*"])
      .toString().trim().split("\n").filter(Boolean).map((k) => k.split(":").pop());
    for (const c of clients) {
      const key = c.socket.io.engine.id;
      assert.ok(recorded.includes(createHash("sha256").update(key).digest("hex")), `${c.name}: record by digest`);
      assert.ok(!recorded.includes(key) && !recorded.includes(c.socket.id), `${c.name}: neither id in Redis`);
    }

    // The attack through the balancer: every attempt (landing on both nodes) is refused.
    const victim = clients[0].socket;
    for (let i = 0; i < 4; i++) {
      await assertUnknown(await attackPost(lb.url, victim.id), `forged POST ${i} via LB`);
      await assertUnknown(await attackGet(lb.url, victim.id), `GET ${i} via LB`);
    }
    // The victim still chats; nothing forged reached anyone.
    const got = once(clients[1].socket, "chat");
    assert.deepEqual(await victim.timeout(5000).emitWithAck("publish", { room: "hj", event: "chat", data: "real" }), { ok: true });
    assert.equal(await got, "real");
    await sleep(200);
    assert.deepEqual(forged, []);
    for (const c of clients) assert.deepEqual(c.errors, [], `${c.name}: no connect_error / disconnect`);
  } finally {
    await disconnectAll(clients, nodes);
  }
});

/**
 * One raw keep-alive HTTP/1.1 connection, as a balancer's pooled upstream connection:
 * `send(requestText)` resolves to the next response's `{ status, body }`, and rejects once the
 * server closed the connection.
 */
async function pooledConnection(t, url) {
  const { port } = new URL(url);
  const conn = net.connect(Number(port), "127.0.0.1");
  track(t, { close: () => conn.destroy() });
  await once(conn, "connect");
  let buf = Buffer.alloc(0);
  let waiting = null;
  let closed = false;
  const settle = () => {
    if (!waiting) return;
    const end = buf.indexOf("\r\n\r\n");
    if (end >= 0) {
      const head = buf.subarray(0, end).toString();
      const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length >= end + 4 + len) {
        const body = buf.subarray(end + 4, end + 4 + len).toString();
        buf = buf.subarray(end + 4 + len);
        const w = waiting;
        waiting = null;
        return w.resolve({ status: Number(head.split(" ")[1]), body });
      }
    }
    if (closed) {
      const w = waiting;
      waiting = null;
      w.reject(new Error("the server closed the connection"));
    }
  };
  conn.on("data", (d) => { buf = Buffer.concat([buf, d]); settle(); });
  conn.on("close", () => { closed = true; settle(); });
  conn.on("error", () => {});
  return {
    send(text) {
      if (closed) return Promise.reject(new Error("the server closed the connection"));
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
        conn.write(text);
      });
    },
  };
}

// Review 7: the drain guard recorded "this session's websocket is on this TCP connection" for
// any `transport=websocket` request of a session, upgraded or not. A request without `Upgrade`
// is answered 400 and the connection stays plain HTTP: behind a balancer, a pooled one that
// carries other clients' requests. When the session ended (here: it leaves its last namespace
// and is closed after ping interval + timeout), the gateway cut that connection, and with it
// another client's poll (through nginx's round-robin config: 6 of 30 honest clients dropped,
// and nginx took the node out of rotation). Now recorded only when the engine answers 101.
test("a websocket request that is not an upgrade does not tie its session to a pooled connection", async (t) => {
  const gw = track(t, await startGateway(["--ping-interval", "1s", "--ping-timeout", "1s"]));
  const poll = (key, t) => `${gw.url}/socket.io/?EIO=4&transport=polling&sid=${key}&t=${t}`;
  const handshake = async () => JSON.parse((await (await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`)).text()).slice(1)).sid;
  const post = async (key, t, body) => (await fetch(poll(key, t), { method: "POST", body })).text();
  const attacker = await handshake();
  const victim = await handshake();
  assert.equal(await post(attacker, "c1", "40"), "ok");
  assert.equal(await post(victim, "c2", "40"), "ok");

  // Both sessions answer pings (polling each poll, as a client does) until told to stop or
  // closed: the attacker's ends by leaving its namespace, not by a ping timeout.
  const keepAlive = (key, name) => {
    let stop = false;
    const done = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await fetch(poll(key, `${name}${i}`));
        const body = await r.text();
        if (r.status !== 200 || body === "1") return r.status === 200 ? "closed" : body;
        if (body.split("\x1e").includes("2")) await post(key, `${name}pong${i}`, "3");
      }
      return "stopped";
    })().catch((e) => `gone: ${e.message}`); // the gateway stops with the test
    return { stop: () => { stop = true; return done; }, done };
  };
  const victimAlive = keepAlive(victim, "v");
  const attackerAlive = keepAlive(attacker, "a");

  const pooled = await pooledConnection(t, gw.url);
  const fake = await pooled.send(`GET /socket.io/?EIO=4&transport=websocket&sid=${attacker} HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.equal(fake.status, 400, `a websocket request without Upgrade: ${fake.status} ${fake.body}`);
  // The attacker's session leaves its namespace: the gateway closes it after 1 s + 1 s.
  assert.equal(await post(attacker, "a-leave", "41"), "ok");
  await waitFor(async () => metricSum(await scrapeMetrics(gw.url + "/metrics"), "sio_gateway_sessions_closed_no_namespace_total") === 1,
    { timeoutMs: 10000, what: "the attacker's session closed for having no namespace" });
  attackerAlive.stop();
  assert.equal(await victimAlive.stop(), "stopped", "the victim's session is alive");

  // The victim polls through the same pooled connection for 4 s more, answering pings.
  for (let i = 0, end = Date.now() + 4000; Date.now() < end; i++) {
    const r = await pooled.send(`GET /socket.io/?EIO=4&transport=polling&sid=${victim}&t=p${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(r.status, 200, `the victim's poll ${i}: ${r.status} ${r.body}`);
    if (r.body.split("\x1e").includes("2")) assert.equal(await post(victim, `pong${i}`, "3"), "ok");
  }
});
