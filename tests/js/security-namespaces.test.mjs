// Attack set, namespaces (issue 13 item 3): with a pattern namespace (`/tenant-*`), CONNECTs to
// new paths create namespaces before admission and auth run. Refused connections must leave no
// namespace (nor, in cluster mode, Redis subscriptions) behind; empty ones go away; a cap
// bounds how many exist and refuses past it with a clear connect_error. Stock socket.io-client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Manager, io } from "socket.io-client";
import { startGateway, startRedis, track, once, waitFor, scrapeMetrics, metricSum, sleep } from "../lib/harness.mjs";
import { startNode, API_KEY } from "./cluster-lib.mjs";
import { redisClient } from "./fixtures/adapter-cluster.mjs";
import { jwt, now } from "../lib/jwt.mjs";

const SECRET = "security-ns-secret-0123";

/** An Engine.IO session with a socket on "/" (valid token): socket.io-client closes a Manager
 * whose every socket was refused, and this one must stay open. */
async function anchored(url) {
  const m = new Manager(url, { transports: ["websocket"], reconnection: false });
  const anchor = m.socket("/", { auth: { token: jwt({ sub: "anchor", exp: now() + 60 }, { key: SECRET }) } });
  await once(anchor, "connect");
  return Object.assign(m, { anchorId: anchor.id });
}

/** `n` namespace CONNECTs to new paths over one anchored session; resolves the outcomes. */
async function connectMany(url, n, prefix, m) {
  m ??= await anchored(url);
  const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => new Promise((resolve) => {
    const s = m.socket(`/${prefix}${i}`);
    const timer = setTimeout(() => resolve(`no answer (session ${m.engine.readyState})`), 10000);
    s.once("connect", () => { clearTimeout(timer); resolve("connected"); });
    s.once("connect_error", (e) => { clearTimeout(timer); resolve(e.message); });
  })));
  return { m, outcomes };
}
const nsGauge = async (url) => metricSum(await scrapeMetrics(url + "/metrics"), "sio_gateway_namespaces");

test("refused connects to new pattern namespaces leave nothing behind (single node)", async (t) => {
  const gw = track(t, await startGateway([
    "--namespace", "/", "--namespace", "/tenant-*", "--auth", "jwt", "--jwt-secret", SECRET,
  ]));
  const base = await nsGauge(gw.url);
  // 2,400 new paths, 16 per Engine.IO session: the most one session may have in progress at
  // once (more are refused at the door, and past 32 refusals the session is cut: docs/security.md).
  for (let batch = 0; batch < 150; batch++) {
    const { m, outcomes } = await connectMany(gw.url, 16, `tenant-${batch}-`);
    track(t, { close: () => m.engine?.close() });
    assert.ok(outcomes.every((o) => /authentication required/.test(o)), outcomes.find((o) => !/authentication/.test(o)));
    m.engine.close();
  }
  await waitFor(async () => (await nsGauge(gw.url)) === base, { timeoutMs: 15000, what: "namespaces back to the baseline" });
});

test("past --max-namespaces a connect gets a clear connect_error; empty ones go away; a tenant still works", async (t) => {
  const gw = track(t, await startGateway(["--namespace", "/", "--namespace", "/tenant-*", "--max-namespaces", "5"]));
  const { m, outcomes } = await connectMany(gw.url, 8, "tenant-");
  const ok = outcomes.filter((o) => o === "connected").length;
  assert.equal(ok, 5);
  assert.ok(outcomes.filter((o) => o !== "connected").every((o) => o === "too many namespaces on this node (max 5): try again later"));
  const metrics = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(metrics, "sio_gateway_connections_refused_total", 'reason="max_namespaces"'), 3);
  m.engine.close();
  await waitFor(async () => (await nsGauge(gw.url)) === 1, { timeoutMs: 15000, what: "empty tenants removed" });

  // A tenant chats; after its namespace was removed it comes back on reconnect.
  for (let round = 0; round < 2; round++) {
    // One after the other: CONNECTs to a new namespace at once are the next test's subject.
    const a = io(gw.url + "/tenant-a", { forceNew: true, reconnection: false, transports: ["websocket"] });
    track(t, a);
    await once(a, "connect");
    const b = io(gw.url + "/tenant-a", { forceNew: true, reconnection: false, transports: ["websocket"] });
    track(t, b);
    await once(b, "connect");
    assert.deepEqual(await a.emitWithAck("join", "r"), { ok: true });
    const got = once(a, "hello");
    assert.deepEqual(await b.emitWithAck("publish", { room: "r", event: "hello", data: round }), { ok: true });
    assert.equal(await got, round);
    a.disconnect(); b.disconnect();
    await waitFor(async () => (await nsGauge(gw.url)) === 1, { timeoutMs: 15000, what: "tenant-a removed once empty" });
  }
});

// socketioxide makes one namespace per CONNECT to a new pattern path that arrives before the
// first is in its map, and keeps the last; the sockets of the others were orphans: connected,
// but never reached by the namespace's broadcasts (9 of 200 listeners here on one node, 42 of
// 200 with Redis). The gateway cuts an orphan's transport, so a stock client reconnects; the
// Redis adapter retires the replaced instances (their channels stayed subscribed for good).
for (const mode of ["single node", "cluster"]) {
  test(`${mode}: clients connecting to a new pattern namespace at once all get its broadcasts`, async (t) => {
    const args = ["--namespace", "/", "--namespace", "/tenant-*", "--api-key", API_KEY];
    let url, rc;
    if (mode === "cluster") {
      const redis = track(t, await startRedis());
      url = track(t, await startNode(redis.url, "gateway-1", args)).url;
      rc = track(t, await redisClient(redis.url));
    } else {
      url = track(t, await startGateway(args)).url;
    }
    const tenants = Array.from({ length: 20 }, (_, i) => `/tenant-burst-${i}`);
    const listeners = [];
    for (const nsp of tenants) {
      // Ten listeners at once, as after a node restart; they only listen. Sessions first, then
      // the ten CONNECTs together.
      // Half on long-polling: an orphan's cut is then a CLOSE answering its poll.
      const managers = Array.from({ length: 10 }, (_, i) =>
        new Manager(url, { autoConnect: false, transports: [i % 2 ? "polling" : "websocket"], reconnectionDelay: 100, reconnectionDelayMax: 200 }));
      track(t, { close: () => managers.forEach((m) => m.engine?.close()) });
      await Promise.all(managers.map((m) => new Promise((resolve, reject) => m.open((e) => (e ? reject(e) : resolve())))));
      const burst = managers.map((m) => {
        const c = m.socket(nsp);
        c.got = 0;
        c.on("hello", () => c.got++);
        return Object.assign(c, { nsp });
      });
      burst.forEach((c) => c.connect());
      track(t, ...burst);
      await Promise.all(burst.map((c) => once(c, "connect", 10000)));
      listeners.push(...burst);
    }
    const emit = (nsp) => fetch(url + "/api/v1/emit", {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ nsp, event: "hello", data: 1 }),
    });
    // The API emits to each namespace until every listener has had one (an orphan cut and
    // reconnected gets a later one; one never cut gets none).
    await waitFor(async () => {
      for (const nsp of tenants) assert.equal((await emit(nsp)).status, 200);
      await sleep(200);
      return listeners.every((c) => c.got > 0);
    }, { timeoutMs: 15000, what: "a broadcast at every listener" }).catch((e) => {
      const missing = listeners.filter((c) => c.got === 0);
      throw new Error(`${e.message}: ${missing.length} of ${listeners.length} listeners never got one (${missing[0]?.nsp})`);
    });
    for (const c of listeners) c.disconnect();
    if (rc) {
      // Every namespace goes after its grace, with every channel of it.
      let left = []; await waitFor(async () => (left = await rc.sendCommand(["PUBSUB", "CHANNELS", "*tenant-burst*"])).length === 0,
        { timeoutMs: 15000, what: "no channel of a tenant left" }).catch((e) => { throw new Error(`${e.message}: ${left.length} left, e.g. ${left.slice(0, 4).join(", ")}`); });
    }
  });
}

test("cluster: refused connects leave no Redis subscriptions behind", async (t) => {
  const redis = track(t, await startRedis());
  const node = track(t, await startNode(redis.url, "gateway-1",
    ["--namespace", "/", "--namespace", "/tenant-*", "--auth", "jwt", "--jwt-secret", SECRET]));
  // disconnect (its stop), not quit: after hooks run in order, and Redis is gone by then.
  const rc = track(t, await redisClient(redis.url));
  const channels = () => rc.sendCommand(["PUBSUB", "CHANNELS", "*"]);
  const anchor = await anchored(node.url);
  track(t, { close: () => anchor.engine?.close() });
  // The baseline, once the anchor's own-id room channel is subscribed (asynchronously).
  const before = await waitFor(async () => {
    const c = await channels();
    return c.some((ch) => ch.includes(anchor.anchorId)) && c;
  }, { what: "the anchor's own channel" });
  for (let batch = 0; batch < 20; batch++) {
    const { m, outcomes } = await connectMany(node.url, 15, `tenant-${batch}-`);
    track(t, { close: () => m.engine?.close() });
    m.engine.close();
    assert.ok(outcomes.every((o) => /authentication required/.test(o)), outcomes.find((o) => !/authentication/.test(o)));
  }
  let left = [];
  await waitFor(async () => {
    left = (await channels()).filter((ch) => !before.includes(ch));
    return left.length === 0 && (await nsGauge(node.url)) === 1;
  }, { timeoutMs: 20000, what: "Redis channels back to the baseline" }).catch((e) => {
    throw new Error(`${e.message}; left: ${left.slice(0, 5).join(", ")}`);
  });
});

// Review 7: --max-namespaces is the node's pool, and one client filled it (64 websockets × 16
// namespaces: all 1,000 in 214 ms), so every tenant whose namespace did not exist yet was
// refused. A session may be in at most 8 pattern namespaces at once; a place comes back when
// one of its sockets leaves.
test("one connection is in at most 8 pattern namespaces at once; others still get theirs", async (t) => {
  const gw = track(t, await startGateway(["--namespace", "/", "--namespace", "/tenant-*"]));
  const { m, outcomes } = await connectMany(gw.url, 9, "tenant-hog-");
  t.after(() => m.engine.close());
  assert.equal(outcomes.filter((o) => o === "connected").length, 8, outcomes.join(", "));
  assert.deepEqual(outcomes.filter((o) => o !== "connected"), ["too many namespaces on this connection (max 8)"]);
  const metrics = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(metrics, "sio_gateway_connections_refused_total", 'reason="session_namespaces"'), 1);
  // A place comes back when a socket leaves.
  const before = metricSum(await scrapeMetrics(gw.url + "/metrics"), "sio_gateway_connections");
  m.socket("/tenant-hog-0").disconnect();
  await waitFor(async () => metricSum(await scrapeMetrics(gw.url + "/metrics"), "sio_gateway_connections") === before - 1,
    { what: "the socket that left is gone" });
  const again = m.socket("/tenant-again");
  assert.equal(await new Promise((resolve) => {
    again.once("connect", () => resolve("connected"));
    again.once("connect_error", (e) => resolve(e.message));
  }), "connected");
  // Another connection gets its own places.
  const other = await anchored(gw.url);
  t.after(() => other.engine.close());
  const tenant = other.socket("/tenant-x");
  await once(tenant, "connect");
});

// Review 8: `#` ends the namespace in the Redis adapter's channels (`socket.io#N#R#` is room R of
// N and the namespace channel of `N#R`) and in history keys (`sio:history:{N#R}`). A pattern
// accepted `/t-acme#x`: made on a node before `/t-acme`, it black-holed room x's messages from
// other nodes there (5 of 25 received); `/t-acme#` read and wrote the history of `/t-acme`'s
// room `#general`. Namespace paths with `#` are now refused at CONNECT.
test("cluster: namespace paths with `#` are refused at CONNECT: no room black-holed, no other namespace's history", { timeout: 60_000 }, async (t) => {
  const redis = track(t, await startRedis());
  const flags = ["--namespace", "/", "--namespace", "/t-*", "--history", "*=100", "--event-rate", "0"];
  const a = track(t, await startNode(redis.url, "gateway-1", flags));
  const b = track(t, await startNode(redis.url, "gateway-2", flags));
  const conn = async (url, nsp) => {
    const s = new Manager(url, { transports: ["websocket"], reconnection: false }).socket(nsp);
    track(t, { close: () => s.io.engine?.close() });
    return new Promise((resolve) => {
      s.once("connect", () => resolve(s));
      s.once("connect_error", (e) => resolve(e.message));
    });
  };
  // On node b, before any member of /t-acme is there: the namespace /t-acme#x.
  const atk = await conn(b.url, "/t-acme#x");
  assert.equal(typeof atk, "string", "a `#` namespace is refused");
  assert.match(atk, /may not contain `#`/);
  const victim = await conn(b.url, "/t-acme");
  assert.deepEqual(await victim.emitWithAck("join", "x"), { ok: true });
  const got = [];
  victim.on("m", (d) => got.push(d));
  const local = await conn(b.url, "/t-acme");
  const remote = await conn(a.url, "/t-acme");
  for (let i = 0; i < 20; i++) assert.equal((await remote.emitWithAck("publish", { room: "x", event: "m", data: i })).ok, true);
  for (let i = 20; i < 25; i++) assert.equal((await local.emitWithAck("publish", { room: "x", event: "m", data: i })).ok, true);
  await waitFor(() => got.length === 25, { what: "25 messages into room x on node b" });

  // The history of /t-acme's room `#general` is not /t-acme#'s room `general`.
  const member = await conn(a.url, "/t-acme");
  assert.equal((await member.emitWithAck("join", { room: "#general" })).ok, true);
  for (let i = 1; i <= 3; i++) await member.emitWithAck("publish", { room: "#general", event: "chat", data: { secret: i } });
  const reader = await conn(a.url, "/t-acme#");
  assert.equal(typeof reader, "string", "a `#` namespace is refused");
  assert.match(reader, /may not contain `#`/);
  const m = await scrapeMetrics(a.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_connections_refused_total", 'reason="namespace_name"'), 1);
  assert.equal(metricSum(await scrapeMetrics(b.url + "/metrics"), "sio_gateway_connections_refused_total", 'reason="namespace_name"'), 1);
});
