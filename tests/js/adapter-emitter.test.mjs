// The stock @socket.io/redis-emitter (Node) reaching clients on our nodes through
// sio-redis-adapter: emit, to(room), to(socket id), except, socketsJoin, disconnectSockets,
// serverSideEmit. Two of our nodes on a private Redis, clients on both.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Emitter } from "@socket.io/redis-emitter";
import { startRedis, track, waitFor } from "../lib/harness.mjs";
import { startTestNode, connect, ask, received, redisClient } from "./fixtures/adapter-cluster.mjs";

test("adapter emitter: @socket.io/redis-emitter reaches clients on our nodes", { timeout: 60000 }, async (t) => {
  const redis = track(t, await startRedis());
  const n1 = track(t, await startTestNode(redis.url));
  const n2 = track(t, await startTestNode(redis.url));
  const a = track(t, await connect(n1.url));
  const b = track(t, await connect(n2.url));
  const c = track(t, await connect(n2.url));
  const rc = track(t, await redisClient(redis.url));
  const emitter = new Emitter(rc);

  await t.test("emit to all", async () => {
    emitter.emit("news", { n: 1 }, "two");
    for (const s of [a, b, c]) await received(s, "news", (d) => d?.n === 1);
    const ev = a.events.find(([e]) => e === "news");
    assert.deepEqual(ev, ["news", { n: 1 }, "two"]);
  });

  await t.test("binary payload arrives as binary", async () => {
    emitter.emit("bin", Buffer.from([1, 2, 3]));
    const [, buf] = await received(a, "bin");
    assert.deepEqual([...new Uint8Array(buf)], [1, 2, 3]);
  });

  await t.test("to(room) and except(room)", async () => {
    await ask(a, "join", "news-room");
    await ask(b, "join", "news-room");
    emitter.to("news-room").emit("room-news", 1);
    await received(a, "room-news");
    await received(b, "room-news");
    emitter.except("news-room").emit("not-room", 2);
    await received(c, "not-room");
    emitter.emit("marker", "e1");
    for (const s of [a, b, c]) await received(s, "marker", (m) => m === "e1");
    assert.equal(c.events.some(([e]) => e === "room-news"), false);
    assert.equal(a.events.some(([e]) => e === "not-room"), false);
    assert.equal(b.events.some(([e]) => e === "not-room"), false);
  });

  await t.test("to(socket id) reaches exactly that socket (per-socket channel)", async () => {
    await waitFor(async () => (await rc.sendCommand(["PUBSUB", "CHANNELS", `socket.io#/#${c.id}#`])).length === 1,
      { what: "socket id channel subscribed" });
    emitter.to(c.id).emit("direct", "hi-c");
    await received(c, "direct", (d) => d === "hi-c");
    emitter.emit("marker", "e2");
    for (const s of [a, b]) {
      await received(s, "marker", (m) => m === "e2");
      assert.equal(s.events.some(([e]) => e === "direct"), false);
    }
  });

  await t.test("socketsJoin / socketsLeave", async () => {
    emitter.in("news-room").socketsJoin("joined-by-emitter");
    for (const s of [a, b]) await waitFor(async () => (await ask(s, "rooms")).includes("joined-by-emitter"), { what: "joined" });
    assert.equal((await ask(c, "rooms")).includes("joined-by-emitter"), false);
    emitter.to("joined-by-emitter").emit("via-joined", 3);
    await received(a, "via-joined");
    await received(b, "via-joined");
    emitter.socketsLeave("joined-by-emitter");
    for (const s of [a, b]) await waitFor(async () => !(await ask(s, "rooms")).includes("joined-by-emitter"), { what: "left" });
  });

  await t.test("serverSideEmit reaches our nodes' handler", async () => {
    emitter.serverSideEmit("hello-sse", "from-emitter");
    for (const s of [a, b]) await received(s, "sse", (d) => Array.isArray(d) && d[1] === "from-emitter");
  });

  await t.test("a burst of 2000 emitter messages arrives complete and in order (figure, no timing assertion)", async () => {
    const N = 2000;
    const got = [];
    a.on("burst", (i) => got.push(i));
    const t0 = performance.now();
    for (let i = 0; i < N; i++) emitter.emit("burst", i);
    await waitFor(() => got.length === N, { timeoutMs: 30000, what: `${N} burst messages` });
    const ms = performance.now() - t0;
    t.diagnostic(`emitter burst: ${N} messages to one client on our node in ${ms.toFixed(0)} ms (${(N / ms * 1000).toFixed(0)} msg/s, debug build)`);
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => i));
    const st = await (await fetch(n1.url + "/stats")).json();
    assert.equal(st.stats.dropped.queue_full, 0);
    assert.equal(st.stats.dropped.subscriber_lagged, 0);
  });

  await t.test("disconnectSockets(room)", async () => {
    const gone = new Promise((r) => b.once("disconnect", r));
    await ask(b, "join", "kick");
    emitter.in("kick").disconnectSockets(true);
    await gone;
    assert.equal(a.connected, true);
    assert.equal(c.connected, true);
  });
});
