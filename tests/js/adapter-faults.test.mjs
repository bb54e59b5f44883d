// Fault behaviour of sio-redis-adapter: Redis killed and restarted on the same port, garbage on
// the adapter's channels, and per-room subscriptions following local membership
// (visible with PUBSUB CHANNELS / NUMSUB).
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startRedis, track, waitFor } from "../lib/harness.mjs";
import { startTestNode, connect, ask, received, redisClient } from "./fixtures/adapter-cluster.mjs";

const numsub = async (rc, ch) => Number((await rc.sendCommand(["PUBSUB", "NUMSUB", ch]))[1]);

test("adapter faults: per-room subscriptions follow membership", { timeout: 60000 }, async (t) => {
  const redis = track(t, await startRedis());
  const n1 = track(t, await startTestNode(redis.url));
  const n2 = track(t, await startTestNode(redis.url));
  const rc = track(t, await redisClient(redis.url));
  const a = track(t, await connect(n1.url));
  const b = track(t, await connect(n2.url));

  // Base channels: namespace, request, response (shared and specific) on both nodes.
  assert.equal(await numsub(rc, "socket.io#/#"), 2);
  assert.equal(await numsub(rc, "socket.io-request#/#"), 2);
  assert.equal(await numsub(rc, "socket.io-response#/#"), 2);
  // Each socket id has its own channel, on its node only.
  await waitFor(async () => (await numsub(rc, `socket.io#/#${a.id}#`)) === 1, { what: "sid channel a" });
  await waitFor(async () => (await numsub(rc, `socket.io#/#${b.id}#`)) === 1, { what: "sid channel b" });

  const room = "socket.io#/#topic#";
  assert.equal(await numsub(rc, room), 0);
  await ask(a, "join", "topic");
  assert.equal(await numsub(rc, room), 1, "subscribed once a local member joined");
  await ask(b, "join", "topic");
  assert.equal(await numsub(rc, room), 2);
  assert.ok((await rc.sendCommand(["PUBSUB", "CHANNELS", "socket.io#/#*"])).includes(room));
  await ask(a, "leave", "topic");
  // UNSUBSCRIBE is acknowledged asynchronously by Redis in RESP2: wait for it (bounded).
  await waitFor(async () => (await numsub(rc, room)) === 1, { what: "node 1 unsubscribed when its room emptied", timeoutMs: 5000 });
  const aId = a.id;
  b.disconnect();
  await waitFor(async () => (await numsub(rc, room)) === 0, { what: "room channel dropped after disconnect" });
  await waitFor(async () => (await numsub(rc, `socket.io#/#${aId}#`)) === 1, { what: "a still there" });
  a.disconnect();
  await waitFor(async () => (await numsub(rc, `socket.io#/#${aId}#`)) === 0, { what: "sid channel dropped" });
  const st = await n1.stats();
  assert.equal(st.roomChannels, 0);
});

test("adapter faults: garbage on the adapter channels is counted and ignored", { timeout: 60000 }, async (t) => {
  const redis = track(t, await startRedis());
  const n1 = track(t, await startTestNode(redis.url));
  const n2 = track(t, await startTestNode(redis.url));
  const rc = track(t, await redisClient(redis.url));
  const a = track(t, await connect(n1.url));
  const b = track(t, await connect(n2.url));
  await ask(a, "join", "g");

  const before = (await n1.stats()).stats.decode_errors;
  const garbage = [
    ["socket.io#/#", Buffer.from([0xc1, 0xff, 0x00])],
    ["socket.io#/#", Buffer.from([0x93, 0xa1, 0x78])], // truncated msgpack array
    ["socket.io#/#g#", "not msgpack at all"],
    ["socket.io-request#/#", "{\"type\": 5, \"requestId\""],
    ["socket.io-request#/#", Buffer.from([0x81, 0xa4])],
    ["socket.io-response#/#", "{]"],
  ];
  for (const [ch, msg] of garbage) await rc.publish(ch, msg);
  await waitFor(async () => (await n1.stats()).stats.decode_errors >= before + garbage.length, {
    what: "decode errors counted",
  });
  // Still working.
  await ask(b, "to-room", { room: "g", event: "after-garbage", data: 1 });
  await received(a, "after-garbage");
  const s = await n1.stats();
  assert.equal(s.redisUp, true);
  assert.equal(n1.running && n2.running, true);
});

test("adapter faults: redis killed and restarted on the same port", { timeout: 60000 }, async (t) => {
  const redis = await startRedis();
  const port = redis.port;
  let redis2;
  t.after(async () => { await redis.stop(); await redis2?.stop(); });
  const n1 = track(t, await startTestNode(redis.url));
  const n2 = track(t, await startTestNode(redis.url));
  const a = track(t, await connect(n1.url));
  const b = track(t, await connect(n2.url));
  await ask(a, "join", "survivors");

  await redis.stop("SIGKILL");
  await waitFor(async () => (await n1.stats()).redisUp === false, { what: "redis down seen", timeoutMs: 10000 });
  // A broadcast while Redis is down fails fast instead of hanging the socket task.
  const down = await ask(b, "to-room", { room: "survivors", event: "lost", data: 0 });
  assert.equal(down.ok, false);

  const restartedAt = performance.now();
  redis2 = await startRedis({ port });
  const rc = track(t, await redisClient(redis2.url));
  await waitFor(async () => {
    const chans = await rc.sendCommand(["PUBSUB", "CHANNELS", "*"]);
    return chans.includes("socket.io#/#survivors#") && chans.includes(`socket.io#/#${b.id}#`) &&
      chans.includes("socket.io-request#/#") && Number((await rc.sendCommand(["PUBSUB", "NUMSUB", "socket.io#/#"]))[1]) === 2;
  }, { what: "subscriptions restored", timeoutMs: 20000 });
  await waitFor(async () => {
    await ask(b, "to-room", { room: "survivors", event: "back", data: 1 });
    return a.events.some(([e]) => e === "back");
  }, { what: "broadcasts flow again", timeoutMs: 15000, intervalMs: 300 });
  t.diagnostic(`redis restart: broadcasts flowed again ${(performance.now() - restartedAt).toFixed(0)} ms after redis-server was back`);
  await waitFor(async () => {
    const s = await n1.stats();
    return s.redisUp && s.subscriberAlive;
  }, { what: "health back", timeoutMs: 15000 });
  const s = await n1.stats();
  assert.ok(s.stats.reconnects >= 1, JSON.stringify(s.stats));
  assert.equal(a.connected && b.connected, true, "clients stayed connected");
  assert.equal(n1.running && n2.running, true, "no crash");
});

/**
 * A TCP proxy in front of Redis that can silently black-hole the connections that issued a
 * SUBSCRIBE: they stay open but nothing more reaches the client, which is what a subscriber
 * sees after some failovers/NAT timeouts (no error, no close, just silence).
 */
async function silencingProxy(redisPort) {
  const conns = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(redisPort, "127.0.0.1");
    const c = { client, upstream, sub: false, silenced: false };
    conns.add(c);
    client.on("data", (d) => {
      if (/SUBSCRIBE/i.test(d.toString("latin1"))) c.sub = true;
      upstream.write(d);
    });
    upstream.on("data", (d) => { if (!c.silenced) client.write(d); });
    const close = () => { client.destroy(); upstream.destroy(); conns.delete(c); };
    client.on("error", close); upstream.on("error", close);
    client.on("close", close); upstream.on("close", close);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    silenceSubscribers() {
      let n = 0;
      for (const c of conns) if (c.sub) { c.silenced = true; n++; }
      return n;
    },
    stop: () => new Promise((r) => { for (const c of conns) { c.client.destroy(); c.upstream.destroy(); } server.close(r); }),
  };
}

test("adapter faults: a silently dead subscriber is detected by the probe and replaced", { timeout: 60000 }, async (t) => {
  const redis = track(t, await startRedis());
  const proxy = track(t, await silencingProxy(redis.port));
  const n1 = track(t, await startTestNode(`redis://127.0.0.1:${proxy.port}`));
  const n2 = track(t, await startTestNode(redis.url));
  const a = track(t, await connect(n1.url));
  const b = track(t, await connect(n2.url));
  await ask(a, "join", "quiet");
  await waitFor(async () => (await n1.stats()).subscriberAlive, { what: "probe ok first" });

  assert.ok(proxy.silenceSubscribers() >= 1, "found the subscriber connection");
  const silencedAt = performance.now();
  // The probe notices within probe interval + timeout and forces a reconnection.
  await waitFor(async () => (await n1.stats()).stats.probe_failures >= 1, { what: "probe failure", timeoutMs: 15000 });
  await waitFor(async () => {
    await ask(b, "to-room", { room: "quiet", event: "heard", data: 1 });
    return a.events.some(([e]) => e === "heard");
  }, { what: "broadcasts reach the node again", timeoutMs: 20000, intervalMs: 500 });
  t.diagnostic(`silent subscriber: traffic restored ${(performance.now() - silencedAt).toFixed(0)} ms after the subscriber went silent`);
  await waitFor(async () => (await n1.stats()).subscriberAlive, { what: "subscriber alive again", timeoutMs: 15000 });
  assert.equal(a.connected, true);
});

test("adapter faults: closing the adapter unsubscribes all its channels", { timeout: 30000 }, async (t) => {
  const redis = track(t, await startRedis());
  const rc = track(t, await redisClient(redis.url));
  const n1 = track(t, await startTestNode(redis.url));
  const n2 = track(t, await startTestNode(redis.url));
  const a = track(t, await connect(n1.url));
  const b = track(t, await connect(n2.url));
  await ask(b, "join", "leaving");
  assert.equal(await numsub(rc, "socket.io-request#/#"), 2);
  assert.equal(await numsub(rc, "socket.io#/#leaving#"), 1);
  // io.close() on node 2 while its process (and its Redis connections) stay up.
  assert.equal(await (await fetch(n2.url + "/close")).text(), "closed");
  await waitFor(async () => (await numsub(rc, "socket.io-request#/#")) === 1, { what: "request channel released" });
  assert.equal(await numsub(rc, "socket.io#/#"), 1);
  assert.equal(await numsub(rc, "socket.io#/#leaving#"), 0);
  assert.equal(await numsub(rc, `socket.io#/#${b.id}#`), 0);
  assert.equal(n2.running, true);
  // The remaining node no longer waits for the closed one.
  const f = await ask(a, "fetch", {});
  assert.equal(f.complete, true);
  assert.deepEqual(f.ids, [a.id]);

  // SIGTERM on node 1: graceful close, exit code 0.
  n1.signal("SIGTERM");
  const { code } = await n1.exited;
  assert.equal(code, 0, n1.output());
  assert.ok(n1.output().includes("closed"));
});
