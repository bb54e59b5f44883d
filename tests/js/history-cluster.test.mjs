// Room history in cluster mode (Redis Streams), with the stock socket.io-client: a subscriber's
// node is SIGKILLed under a steady publisher; the subscriber comes back on another node, rejoins
// with its offset and gets every message it missed exactly once, in order, then live ones (the
// offsets are checked end to end against a witness that never left). Redis restarted with its
// data gone: the rejoin answers recovered:false, reason "epoch", and replays nothing.
// sio-emit given the same --history rules appends like a node: its broadcasts are delivered
// with offsets, in one sequence with the nodes' publishes, and replayed exactly once (classic and
// sharded pub/sub). A client that stops reading during its recovering join holds up only its
// own recovery: this node's publishes into the room are served meanwhile and kept for it
// (hold-back), sent after its replay once it reads, in order and once each.
import { test } from "node:test";
import { spawn } from "node:child_process";
import { createClient } from "redis";
import path from "node:path";
import assert from "node:assert/strict";
import { ROOT, startRedis, track, sleep, waitFor, scrapeMetrics, metricSum } from "../lib/harness.mjs";
import { startCluster, startNode, API_KEY } from "./cluster-lib.mjs";
import {
  client, connected, collect, rawClient, recoveryMetrics, filledRoom, stalledReplay, honestRooms,
  hugeRoom, hoarders, vmRss, replayPeaks, replayOutstanding, HUGE_COUNT, WINDOW,
} from "./history-lib.mjs";
import { io } from "socket.io-client";

const HISTORY = ["--history", "chat:*=5000/10m", "--history", "t:*=10", "--event-rate", "0"];

const ids = (got) => got.map((m) => m.mark.offset);

const EMIT_BIN = process.env.SIO_EMIT_BIN || path.join(ROOT, "target/debug/sio-emit");

/** Run sio-emit to completion, resolving its exit code. */
function sioEmit(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(EMIT_BIN, args, { stdio: "ignore", env: { ...process.env, ...env } });
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error("sio-emit timed out")); }, 15_000);
    child.once("exit", (code) => { clearTimeout(timer); resolve(code); });
    child.once("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

test("subscriber's node SIGKILLed: recovery on another node, every missed message once, in order", { timeout: 60_000 }, async (t) => {
  const cluster = await startCluster({ extra: HISTORY });
  t.after(() => cluster.stop());
  const [n1, n2, n3] = cluster.nodes;
  const room = "chat:kill";

  // The witness on node 3 never leaves: it sees every offset of the room.
  const witness = await connected(client(t, n3.url));
  const all = collect(witness, "msg");
  assert.equal((await witness.emitWithAck("join", room)).ok, true);
  // The subscriber starts on node 1.
  const a = await connected(client(t, n1.url));
  const gotA = collect(a, "msg");
  const pos = await a.emitWithAck("join", { room });
  assert.equal(pos.ok, true);
  assert.equal(pos.offset, "0-0");

  // A steady publisher on node 3: a few hundred messages/s, not waiting for acks, so that
  // live messages keep arriving on node 2 while it replays (what the boundary check needs).
  const pub = await connected(client(t, n3.url));
  let running = true;
  let sent = 0;
  const acks = [];
  const publishing = (async () => {
    while (running) {
      acks.push(pub.emitWithAck("publish", { room, event: "msg", data: { n: sent++ } }));
      await sleep(2);
    }
  })();

  await waitFor(() => gotA.length >= 100, { what: "100 messages on node 1" });
  await n1.stop("SIGKILL");
  await sleep(50);
  const last = gotA[gotA.length - 1].mark;
  assert.equal(last.room, room);
  assert.equal(last.epoch, pos.epoch);
  await sleep(1000); // away

  // Back on node 2, with the last offset received.
  const b = await connected(client(t, n2.url));
  const gotB = collect(b, "msg");
  const ack = await b.emitWithAck("join", { room, since: { offset: last.offset, epoch: last.epoch } });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.equal(ack.recovered, true, JSON.stringify(ack));
  assert.ok(ack.missed >= 100, `missed ${ack.missed}: the publisher went on while the client was away`);

  await sleep(500); // live messages after the replay
  running = false;
  await publishing;
  const results = await Promise.all(acks);
  assert.ok(results.every((r) => r.ok === true), JSON.stringify(results.find((r) => !r.ok)));
  await waitFor(() => all.length === sent, { what: `witness got all ${sent}` });
  await waitFor(() => gotB.length > 0 && gotB[gotB.length - 1].mark.offset === all[all.length - 1].mark.offset,
    { what: "the subscriber caught up" });

  // End to end: what the subscriber got on node 1, then on node 2, is exactly the witness's
  // sequence (every offset once, in order; the replay/live boundary included).
  const witnessIds = ids(all);
  const k = witnessIds.indexOf(last.offset);
  assert.ok(k >= 0);
  assert.deepEqual(ids(gotA), witnessIds.slice(witnessIds.indexOf(gotA[0].mark.offset), k + 1));
  assert.deepEqual(ids(gotB), witnessIds.slice(k + 1));
  assert.deepEqual(gotB.map((m) => m.args[0].n), all.slice(k + 1).map((m) => m.args[0].n));
  assert.ok(gotB.length > ack.missed, "live messages followed the replay");
  assert.ok(gotB.every((m) => m.mark.epoch === pos.epoch));
  const m = await scrapeMetrics(n2.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_history_recoveries_total", 'outcome="recovered"'), 1);
  assert.equal(metricSum(m, "sio_gateway_history_replayed_messages_total"), ack.missed);
});

test("Redis restarted with its data gone: recovered:false, reason epoch, nothing replayed", { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  let redis2 = null;
  t.after(async () => { await redis.stop(); if (redis2) await redis2.stop(); });
  const n1 = track(t, await startNode(redis.url, "gateway-1", HISTORY));
  const n2 = track(t, await startNode(redis.url, "gateway-2", HISTORY));
  const room = "chat:flush";
  const pub = await connected(client(t, n1.url));
  const a = await connected(client(t, n2.url));
  const gotA = collect(a, "msg");
  const pos = await a.emitWithAck("join", { room });
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: i }), { ok: true });
  }
  await waitFor(() => gotA.length === 5, { what: "5 messages" });
  const last = gotA[4].mark;
  a.disconnect();
  // The trim bound: away for 400 messages with SIZE 10 (MAXLEN ~ trims whole stream nodes of
  // 100 entries, so well past SIZE): recovered:false, reason trimmed, nothing replayed.
  const c = await connected(client(t, n2.url));
  const gotC = collect(c, "msg");
  const tpos = await c.emitWithAck("join", { room: "t:x" });
  await c.emitWithAck("leave", "t:x");
  const tacks = [];
  for (let i = 0; i < 400; i++) tacks.push(pub.emitWithAck("publish", { room: "t:x", event: "msg", data: i }));
  assert.ok((await Promise.all(tacks)).every((r) => r.ok));
  const tr = await c.emitWithAck("join", { room: "t:x", since: { offset: tpos.offset, epoch: tpos.epoch } });
  assert.equal(tr.recovered, false, JSON.stringify(tr));
  assert.equal(tr.reason, "trimmed");
  assert.equal(tr.epoch, tpos.epoch);
  assert.deepEqual(gotC, []);
  // Backends read the same stream through the HTTP API, from any node.
  const hist = async (q) => (await fetch(n1.url + "/api/v1/rooms/chat%3Aflush/history" + q,
    { headers: { authorization: `Bearer ${API_KEY}` } })).json();
  let h = await hist("");
  assert.deepEqual(h.messages.map((m) => [m.offset, m.args[0]]), gotA.map((m) => [m.mark.offset, m.args[0]]));
  assert.equal(h.epoch, pos.epoch);
  assert.equal(h.offset, last.offset);
  h = await hist(`?since=${gotA[1].mark.offset}&limit=2&epoch=${pos.epoch}`);
  assert.deepEqual(h.messages.map((m) => m.offset), [gotA[2].mark.offset, gotA[3].mark.offset]);

  // Redis dies and comes back empty, on the same port.
  await redis.stop("SIGKILL");
  redis2 = await startRedis({ port: redis.port });
  await waitFor(async () => {
    const r = await pub.emitWithAck("publish", { room, event: "msg", data: "after" });
    return r.ok === true;
  }, { timeoutMs: 15_000, what: "publishing again after the restart" });

  const b = await connected(client(t, n2.url));
  const gotB = collect(b, "msg");
  const ack = await b.emitWithAck("join", { room, since: { offset: last.offset, epoch: last.epoch } });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.equal(ack.recovered, false);
  assert.equal(ack.reason, "epoch");
  assert.notEqual(ack.epoch, pos.epoch, "a new epoch");
  assert.deepEqual(gotB, [], "nothing stale replayed");
  // Live delivery goes on in the new epoch.
  assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: "live" }), { ok: true });
  await waitFor(() => gotB.length === 1, { what: "a live message" });
  assert.equal(gotB[0].mark.epoch, ack.epoch);

  // An emitter's broadcast into the history room bypasses the history: no mark, counted.
  const raw = [];
  b.on("from-emitter", (...args) => raw.push(args));
  assert.equal(await sioEmit(["--redis", redis2.url, "--to", room, "emit", "from-emitter", '"x"']), 0);
  await waitFor(() => raw.length === 1, { what: "the emitter's message" });
  assert.deepEqual(raw[0], ["x"], "no trailing mark");
  const m = await scrapeMetrics(n2.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_history_bypassed_total"), 1);
});

// Review 8: a position another client forged (ahead of the stream, malformed) got an error
// answer and left the socket out of the room: helper users were locked out on every node.
test("a forged or malformed since in a tracked join: joined all the same, recovered:false, reason invalid", { timeout: 60_000 }, async (t) => {
  const redis = track(t, await startRedis());
  const n1 = track(t, await startNode(redis.url, "gateway-1", HISTORY));
  const n2 = track(t, await startNode(redis.url, "gateway-2", HISTORY));
  const room = "chat:forged";
  const pub = await connected(client(t, n1.url));
  const probe = await connected(client(t, n2.url));
  for (let i = 0; i < 3; i++) assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: i }), { ok: true });
  const pos = await probe.emitWithAck("join", { room });
  const ms = BigInt(pos.offset.split("-")[0]);
  let n = 0;
  for (const [since, why] of [
    [{ offset: `${ms + 1000n}-0`, epoch: pos.epoch }, /ahead/],
    [{ offset: "18446744073709551615-18446744073709551615", epoch: pos.epoch }, /ahead/],
    [{ offset: "zz", epoch: pos.epoch }, /since\.offset/],
    [{ offset: "1-1", epoch: "!" }, /since\.epoch/],
  ]) {
    const c = await connected(client(t, n2.url));
    const got = collect(c, "msg");
    const ack = await c.emitWithAck("join", { room, since });
    assert.equal(ack.ok, true, JSON.stringify([since, ack]));
    assert.equal(ack.recovered, false, JSON.stringify([since, ack]));
    assert.equal(ack.reason, "invalid", JSON.stringify([since, ack]));
    assert.match(ack.detail, why, JSON.stringify([since, ack]));
    assert.equal(ack.epoch, pos.epoch);
    assert.deepEqual(got, [], "nothing replayed");
    // Joined: a message published on the other node reaches it.
    assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: `live ${n}` }), { ok: true });
    await waitFor(() => got.length === 1, { what: "a live message" });
    assert.deepEqual(got[0].args, [`live ${n++}`]);
  }
  const m = await scrapeMetrics(n2.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_history_recoveries_total", 'outcome="invalid"'), 4);
});

test("sio-emit with the same --history rules: appended, delivered with offsets, replayed exactly once", { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const n1 = track(t, await startNode(redis.url, "gateway-1", HISTORY));
  const n2 = track(t, await startNode(redis.url, "gateway-2", HISTORY));
  const room = "chat:emit";
  // The rules as the nodes have them, once by flag and once by env.
  const byFlag = (n) => sioEmit(["--redis", redis.url, "--history", "chat:*=5000/10m", "--history", "t:*=10",
    "--to", room, "emit", "msg", JSON.stringify({ n })]);
  const byEnv = (n) => sioEmit(["--redis", redis.url, "--to", room, "emit", "msg", JSON.stringify({ n })],
    { SIO_EMIT_HISTORY: "chat:*=5000/10m,t:*=10" });

  const a = await connected(client(t, n1.url));
  const gotA = collect(a, "msg");
  const pos = await a.emitWithAck("join", { room });
  assert.equal(pos.ok, true, JSON.stringify(pos));
  // The emitter's broadcasts and a node's publishes, in turn: one sequence of offsets.
  const pub = await connected(client(t, n2.url));
  let n = 0;
  for (; n < 6; n++) {
    if (n % 3 === 2) assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { n } }), { ok: true });
    else assert.equal(await (n % 3 === 0 ? byFlag(n) : byEnv(n)), 0);
  }
  await waitFor(() => gotA.length === 6, { what: "6 messages on node 1" });
  assert.deepEqual(gotA.map((m) => m.args[0].n), [0, 1, 2, 3, 4, 5]);
  assert.ok(gotA.every((m) => m.mark.room === room && m.mark.epoch === pos.epoch), JSON.stringify(gotA));
  const offs = ids(gotA);
  assert.ok(offs.every((o, i) => i === 0 || cmpId(offs[i - 1], o) < 0), `offsets in order: ${offs}`);

  // Later, a second client rejoins with `since` at an earlier offset, on each node, while
  // sio-emit goes on publishing: the replay holds the emitter's messages, once, in order, then
  // live ones follow with no gap and no duplicate.
  let running = true;
  const emitting = (async () => {
    while (running) assert.equal(await byFlag(n++), 0);
  })();
  const late = [];
  for (const node of [n1, n2]) {
    const b = await connected(client(t, node.url));
    const got = collect(b, "msg");
    const ack = await b.emitWithAck("join", { room, since: { offset: gotA[1].mark.offset, epoch: pos.epoch } });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.recovered, true, JSON.stringify(ack));
    assert.ok(ack.missed >= 4, JSON.stringify(ack));
    late.push({ got, ack });
  }
  await waitFor(() => n >= 10, { what: "sio-emit published during the rejoins" });
  running = false;
  await emitting;
  await waitFor(() => gotA.length === n, { what: `node 1's first client got all ${n}` });
  for (const { got } of late) {
    await waitFor(() => got.length === n - 2, { what: `the rejoined client caught up (${n - 2})` });
    assert.deepEqual(ids(got), offs.slice(2).concat(ids(gotA).slice(6)), "every offset after `since` once, in order");
    assert.deepEqual(got.map((m) => m.args[0].n), gotA.slice(2).map((m) => m.args[0].n));
  }
  assert.deepEqual(gotA.map((m) => m.args[0].n), [...Array(n).keys()], "live order = publish order");

  // A broadcast to the history room with another room is refused (exit 1), nothing published.
  assert.equal(await sioEmit(["--redis", redis.url, "--history", "chat:*=5000/10m", "--to", room, "--to", "lobby",
    "emit", "msg", JSON.stringify({ n: -1 })]), 1);
  // Backends read the emitter's messages from the same stream.
  const h = await (await fetch(n2.url + "/api/v1/rooms/chat%3Aemit/history",
    { headers: { authorization: `Bearer ${API_KEY}` } })).json();
  assert.deepEqual(h.messages.map((m) => m.offset), ids(gotA));
  assert.equal(h.messages[0].event, "msg");
  assert.deepEqual(h.messages[0].args, [{ n: 0 }]);
  for (const node of [n1, n2]) {
    const m = await scrapeMetrics(node.url + "/metrics");
    assert.equal(metricSum(m, "sio_gateway_history_bypassed_total"), 0, "nothing bypassed the history");
  }
  assert.equal(gotA.length, n, "the refused emit was not delivered");
});

/** Order of two stream ids `<ms>-<seq>`. */
function cmpId(x, y) {
  const [a, b] = [x, y].map((s) => s.split("-").map(BigInt));
  return a[0] === b[0] ? (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) : a[0] < b[0] ? -1 : 1;
}

test("sio-emit --pubsub sharded with --history: the same, on sharded nodes", { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const extra = [...HISTORY, "--redis-pubsub", "sharded"];
  const n1 = track(t, await startNode(redis.url, "gateway-1", extra));
  const n2 = track(t, await startNode(redis.url, "gateway-2", extra));
  const room = "chat:sharded";
  const emit = (n) => sioEmit(["--redis", redis.url, "--pubsub", "sharded", "--history", "chat:*=5000/10m",
    "--to", room, "emit", "msg", JSON.stringify({ n })]);
  const a = await connected(client(t, n1.url));
  const gotA = collect(a, "msg");
  const pos = await a.emitWithAck("join", { room });
  assert.equal(pos.ok, true, JSON.stringify(pos));
  for (let n = 0; n < 4; n++) assert.equal(await emit(n), 0);
  await waitFor(() => gotA.length === 4, { what: "4 messages on node 1" });
  assert.deepEqual(gotA.map((m) => m.args[0].n), [0, 1, 2, 3]);
  assert.ok(gotA.every((m) => m.mark.room === room && m.mark.epoch === pos.epoch), JSON.stringify(gotA));
  const b = await connected(client(t, n2.url));
  const gotB = collect(b, "msg");
  const ack = await b.emitWithAck("join", { room, since: { offset: gotA[0].mark.offset, epoch: pos.epoch } });
  assert.equal(ack.recovered, true, JSON.stringify(ack));
  assert.equal(ack.missed, 3);
  assert.equal(await emit(4), 0);
  await waitFor(() => gotA.length === 5 && gotB.length === 4, { what: "the live one on both" });
  assert.deepEqual(ids(gotB), ids(gotA).slice(1));
  for (const node of [n1, n2]) {
    const m = await scrapeMetrics(node.url + "/metrics");
    assert.equal(metricSum(m, "sio_gateway_history_bypassed_total"), 0);
  }
});

test("memory budget (--history-max-bytes) in cluster mode: evicted rooms' streams are deleted, Redis stays bounded, an honest room recovers on another node", { timeout: 120_000 }, async (t) => {
  const BUDGET = 2 * 1024 * 1024;
  const redis = await startRedis();
  t.after(() => redis.stop());
  const extra = ["--history", "chat:*=200", "--history-max-bytes", String(BUDGET), "--event-rate", "0"];
  const n1 = track(t, await startNode(redis.url, "gateway-1", extra));
  const n2 = track(t, await startNode(redis.url, "gateway-2", extra));
  const kv = createClient({ url: redis.url });
  kv.on("error", () => {}); // Redis stops with the test
  await kv.connect();
  t.after(() => kv.disconnect().catch(() => {}));
  const held = async () => metricSum(await scrapeMetrics(n1.url + "/metrics"), "sio_gateway_history_held_bytes");
  const { attacker, honest, publishHonest, lastHonest, lastOnce } = await honestRooms(t, n1.url, n2.url);

  // ~100 KB messages to 60 new rooms through node 1 (6 MB of streams without the budget).
  const blob = "x".repeat(100_000);
  let honestSent = 5;
  for (let i = 0; i < 60; i++) {
    assert.deepEqual(await attacker.emitWithAck("publish", { room: `chat:flood-${i}`, event: "msg", data: blob }), { ok: true });
    if (i % 5 === 4) await publishHonest(honestSent++);
    if (i % 10 === 9) {
      const h = await held();
      assert.ok(h > 0 && h <= BUDGET, `after ${i + 1} rooms: ${h} bytes counted, budget ${BUDGET}`);
    }
  }
  const m = await scrapeMetrics(n1.url + "/metrics");
  assert.ok(metricSum(m, "sio_gateway_history_evicted_total", 'reason="lru"') >= 30);
  // What Redis holds: the evicted rooms' streams are gone.
  let streams = 0;
  let bytes = 0;
  for await (const keys of kv.scanIterator({ MATCH: "sio:history:{/#chat:flood-*}", COUNT: 1000 })) {
    for (const k of [].concat(keys)) {
      streams++;
      bytes += Number(await kv.sendCommand(["MEMORY", "USAGE", k])) || 0;
    }
  }
  assert.ok(streams > 0 && streams <= 21, `${streams} flood streams left in Redis`);
  assert.ok(bytes <= 2 * BUDGET, `${bytes} bytes of flood streams in Redis`);

  // The honest room recovers on the other node; the room written once was deleted and answers
  // another epoch (the stream came back empty, a new epoch).
  const back = await connected(client(t, n2.url));
  const gotBack = collect(back, "msg");
  const ack = await back.emitWithAck("join", { room: "chat:honest", since: { offset: lastHonest.offset, epoch: lastHonest.epoch } });
  assert.equal(ack.recovered, true, JSON.stringify(ack));
  assert.equal(ack.missed, honestSent - 5);
  assert.deepEqual(gotBack.map((x) => x.args[0].n), Array.from({ length: honestSent - 5 }, (_, i) => i + 5));
  const once = await back.emitWithAck("join", { room: "chat:once", since: { offset: lastOnce.offset, epoch: lastOnce.epoch } });
  assert.equal(once.recovered, false, JSON.stringify(once));
  assert.equal(once.reason, "epoch");
  assert.notEqual(once.epoch, lastOnce.epoch);

  // One room alone over the budget: its own stream is trimmed.
  for (let i = 0; i < 30; i++) {
    assert.deepEqual(await attacker.emitWithAck("publish", { room: "chat:big", event: "msg", data: blob }), { ok: true });
  }
  const m2 = await scrapeMetrics(n1.url + "/metrics");
  assert.ok(metricSum(m2, "sio_gateway_history_evicted_total", 'reason="self_trim"') >= 1);
  assert.ok(metricSum(m2, "sio_gateway_history_held_bytes") <= BUDGET);
  const len = await kv.xLen("sio:history:{/#chat:big}");
  assert.ok(len >= 1 && len <= 21, `chat:big holds ${len} messages`);
  // A rule without a TTL still expires in Redis (after 30 days without a write).
  const ttl = await kv.pTTL("sio:history:{/#chat:big}");
  assert.ok(ttl > 29 * 24 * 3600 * 1000 && ttl <= 30 * 24 * 3600 * 1000, `pttl ${ttl}`);
});

test("a recovering join that stops reading holds up only itself: this node's publishers are served, then held for it", { timeout: 120_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const n1 = track(t, await startNode(redis.url, "gateway-1", ["--history", "h:*=200", "--max-buffer", "16", "--event-rate", "0"]));
  const room = "h:a";
  const { pub, got, epoch } = await filledRoom(t, n1.url, room);
  const since = { offset: got[0].mark.offset, epoch };
  // The attacker does not read: a recovering join (acked, to check its answer).
  const atk = await rawClient(t, n1.url);
  atk.pause();
  atk.emit("join", { room, since }, 1);
  await stalledReplay(n1.url);
  // A publish on the same node is acked while the replay is stuck (before, it waited for the
  // room's lock until the replay's 10 s deadline).
  assert.deepEqual(await pub.timeout(30_000).emitWithAck("publish", { room, event: "msg", data: { i: 201 } }), { ok: true });
  for (let i = 202; i <= 205; i++) {
    assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i } }), { ok: true });
  }
  const m = await recoveryMetrics(n1.url);
  assert.equal(m.recovered + m.failed, 0, "acked while the attacker's replay was stuck");
  await waitFor(() => got.length === 205, { what: "the member got the live messages" });
  // It reads again: the replay, then the messages published meanwhile (held back), then live.
  atk.resume();
  await waitFor(() => atk.ack(1) !== undefined, { what: "the recovering join's ack" });
  // The stream is read a page at a time: what was published while the replay was stuck is in
  // a later page (then replayed) or held back (then sent after the replay), never both.
  const { missed } = atk.ack(1);
  assert.ok(missed >= 199 && missed <= 204, `missed ${missed}`);
  assert.deepEqual(atk.ack(1), { ok: true, recovered: true, missed, epoch, offset: got[missed].mark.offset });
  assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i: 206 } }), { ok: true });
  await waitFor(() => got.length === 206 && atk.events("msg").length === 205, { what: `the attacker got ${atk.events("msg").length}/205` });
  const seen = atk.events("msg").map((a) => a[a.length - 1].offset);
  assert.deepEqual(seen, ids(got).slice(1), "every offset after `since` once, in order");
  assert.deepEqual(atk.events("msg").slice(-6).map((a) => a[0].i), [201, 202, 203, 204, 205, 206]);
});

const FLOW = ["--history", "big:*=40", "--event-rate", "0"];

test("replays in cluster mode are bounded by bytes delivered and read a page at a time: clients that never read pin a window each, not the stream", { timeout: 120_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const n1 = track(t, await startNode(redis.url, "gateway-1", FLOW));
  const room = "big:a";
  const { epoch } = await hugeRoom(t, n1.url, room);
  const rss0 = vmRss(n1.pid);
  // 8 connections ask for the 20 MB replay from the start and never read. Before, each read the
  // whole stream at once (20 MB) and had all of it encoded and queued (40 < --max-buffer).
  const N = 8;
  await hoarders(t, n1.url, room, { offset: "0-0", epoch }, N);
  await waitFor(async () => (await recoveryMetrics(n1.url)).reads >= N + 1, { what: "every replay started" });
  const peak = await replayPeaks(n1, 3000);
  const grew = peak.rss - rss0;
  t.diagnostic(`${N} stalled replays: peak outstanding ${peak.outstanding} bytes, RSS grew ${grew} bytes`);
  assert.ok(peak.outstanding > 0, "the gauge counts the replays");
  assert.ok(peak.outstanding <= N * WINDOW, `outstanding ${peak.outstanding} > ${N} x ${WINDOW}`);
  assert.ok(grew < N * 6 * WINDOW, `RSS grew ${grew} bytes with ${N} stalled replays`);
  await waitFor(async () => (await recoveryMetrics(n1.url)).failed === N, { timeoutMs: 30_000, what: "the replays failed" });
  await waitFor(async () => (await replayOutstanding(n1.url)) === 0, { what: "the budget given back" });
});

// Review 8 finding 5: while a recovering join's replay stalls, every message published into
// the room was copied and kept for it, outside every byte bound, until the replay's deadline
// (4 stalled joins grew a node by 205 MB while 171 MB was published). Now at most the replay
// window (1 MiB) is kept per join; past it the join fails, told recovered:false.
test("messages held back for stalled recovering joins are capped at 1 MiB each: the gauge and RSS stay bounded, the join fails with recovered:false, an honest reader loses nothing", { timeout: 120_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const n1 = track(t, await startNode(redis.url, "gateway-1", FLOW));
  const room = "big:held";
  const { pub, epoch } = await hugeRoom(t, n1.url, room);
  const honest = await connected(client(t, n1.url));
  const got = collect(honest, "live");
  assert.equal((await honest.emitWithAck("join", { room })).ok, true);
  // 4 raw websockets ask for the 20 MB replay from the start (acked) and stop reading.
  const N = 4;
  const stalled = [];
  for (let i = 0; i < N; i++) {
    const c = await rawClient(t, n1.url);
    c.pause();
    c.emit("join", { room, since: { offset: "0-0", epoch } }, 1);
    stalled.push(c);
    // Registered before its first read (the first hoarder's read is the only one after the
    // publisher's join).
    await waitFor(async () => (await recoveryMetrics(n1.url)).reads >= i + 2, { what: `replay ${i} started` });
  }
  const rss0 = vmRss(n1.pid);
  // 30 messages of ~500 KB (15 MB) into the room while the replays are stuck: before, each
  // stalled join kept a copy of all of them (N x 15 MB).
  const K = 30;
  const big = "z".repeat(500_000);
  let peak = 0;
  let rss = 0;
  for (let i = 1; i <= K; i++) {
    assert.deepEqual(await pub.emitWithAck("publish", { room, event: "live", data: { i, big } }), { ok: true });
    peak = Math.max(peak, metricSum(await scrapeMetrics(n1.url + "/metrics"), "sio_gateway_history_holdback_bytes"));
    rss = Math.max(rss, vmRss(n1.pid));
  }
  const grew = rss - rss0;
  t.diagnostic(`${N} stalled joins, ${K} x 500 KB published: peak held back ${peak} bytes, RSS grew ${grew} bytes`);
  assert.ok(peak > 0, "the gauge counts what is held back");
  assert.ok(peak <= N * WINDOW, `held back ${peak} > ${N} x ${WINDOW}`);
  // Besides what is held back, RSS counts the replays' own windows and encodings (the joins may
  // start their replays while the publishes run); before the fix it grew ~44 MB here.
  assert.ok(grew < N * 8 * WINDOW, `RSS grew ${grew} bytes with ${N} stalled joins`);
  // One of them reads again: its replay is sent, then its join fails (what was held is gone).
  const [first] = stalled;
  first.resume();
  await waitFor(() => first.ack(1) !== undefined, { timeoutMs: 30_000, what: "the stalled join's ack" });
  const ack = first.ack(1);
  assert.equal(ack.ok, false, JSON.stringify(ack));
  assert.equal(ack.recovered, false);
  assert.equal(ack.reason, "failed");
  assert.match(ack.error, /published into the room/);
  // The honest member got every message, in order.
  await waitFor(() => got.length === K, { what: `the honest reader got ${got.length}/${K}` });
  assert.deepEqual(got.map((m) => m.args[0].i), Array.from({ length: K }, (_, i) => i + 1));
  // What was kept for the others was dropped at the cap.
  await waitFor(async () => metricSum(await scrapeMetrics(n1.url + "/metrics"), "sio_gateway_history_holdback_bytes") === 0, { what: "nothing held back" });
});

test("an honest client recovers every message of a big replay on another node, in order (websocket and polling)", { timeout: 120_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const n1 = track(t, await startNode(redis.url, "gateway-1", FLOW));
  const n2 = track(t, await startNode(redis.url, "gateway-2", FLOW));
  const room = "big:b";
  const { epoch } = await hugeRoom(t, n1.url, room);
  for (const transports of [["websocket"], ["polling"]]) {
    const s = io(n2.url, { forceNew: true, reconnection: false, transports });
    track(t, s);
    await connected(s);
    const got = collect(s, "msg");
    const ack = await s.timeout(30_000).emitWithAck("join", { room, since: { offset: "0-0", epoch } });
    assert.deepEqual({ ...ack, offset: "-" }, { ok: true, recovered: true, missed: HUGE_COUNT, epoch, offset: "-" }, transports[0]);
    assert.deepEqual(got.map((m) => m.args[0].i), Array.from({ length: HUGE_COUNT }, (_, k) => k + 1), transports[0]);
    assert.ok(got.every((m) => m.args[0].big.length === 500_000));
    assert.equal(ack.offset, got.at(-1).mark.offset);
    assert.equal(new Set(ids(got)).size, HUGE_COUNT);
    s.disconnect();
  }
  assert.equal(await replayOutstanding(n2.url), 0);
});

test("a replay longer than a page: every message once, in order, against concurrent publishes on both nodes", { timeout: 120_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const extra = ["--history", "p:*=2000", "--event-rate", "0"];
  const n1 = track(t, await startNode(redis.url, "gateway-1", extra));
  const n2 = track(t, await startNode(redis.url, "gateway-2", extra));
  const room = "p:a";
  const witness = await connected(client(t, n1.url));
  const all = collect(witness, "msg");
  const { epoch } = await witness.emitWithAck("join", { room });
  // A plain member on n2 too: each publish below waits until both nodes delivered the one
  // before, so the nodes' deliveries follow the publishes' order (two nodes publishing at the
  // same instant may deliver out of offset order: docs/delivery.md).
  const witness2 = await connected(client(t, n2.url));
  const all2 = collect(witness2, "msg");
  await witness2.emitWithAck("join", { room });
  const pub1 = await connected(client(t, n1.url));
  const pub2 = await connected(client(t, n2.url));
  for (let i = 1; i <= 600; i++) {
    assert.deepEqual(await pub1.emitWithAck("publish", { room, event: "msg", data: { i } }), { ok: true });
  }
  // The recovering join on n2 from the start (600 entries: three pages of at most 256), while
  // both nodes keep publishing into the room.
  const reads0 = (await recoveryMetrics(n2.url)).reads;
  const rec = await connected(client(t, n2.url));
  const got = collect(rec, "msg");
  const publishing = (async () => {
    for (let i = 601; i <= 700; i++) {
      const p = i % 2 ? pub1 : pub2;
      assert.deepEqual(await p.emitWithAck("publish", { room, event: "msg", data: { i } }), { ok: true });
      await waitFor(() => all.length === i && all2.length === i, { what: `message ${i} on both nodes` });
    }
  })();
  const ack = await rec.timeout(30_000).emitWithAck("join", { room, since: { offset: "0-0", epoch } });
  await publishing;
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.equal(ack.recovered, true, JSON.stringify(ack));
  assert.ok(ack.missed >= 600, `missed ${ack.missed}`);
  await waitFor(() => all.length === 700 && got.length === 700, { what: `witness ${all.length}/700, recovered ${got.length}/700` });
  assert.deepEqual(ids(got), ids(all), "every offset once, in the stream's order");
  assert.equal(new Set(ids(got)).size, 700);
  const reads = (await recoveryMetrics(n2.url)).reads - reads0;
  t.diagnostic(`${reads} reads`);
  assert.ok(reads >= 3, `the replay read the stream in pages: ${reads} reads`);
});

// Entries written into a room's stream by anyone who can write to Redis (not through a gateway
// or an emitter). The nodes' --max-payload of 256 KiB makes their largest entry 1 MiB (4 x: the
// stream keeps binary as JSON arrays of bytes).
const FORGED = ["--history", "chat:*=200", "--max-payload", String(256 * 1024), "--event-rate", "0"];

/** A redis client of the test, closed with it. */
async function redisClient(t, url) {
  const kv = createClient({ url });
  kv.on("error", () => {}); // Redis stops with the test
  await kv.connect();
  t.after(() => kv.disconnect().catch(() => {}));
  return kv;
}

/** XADD fields to `room`'s stream, as anyone who can write to Redis may. */
const forge = (kv, room, fields) => kv.sendCommand(["XADD", `sio:history:{/#${room}}`, "*", ...fields]);

test("entries written to a room's stream by someone else (2 MB, fields missing, not JSON, a forged placeholder, a reserved event) are left out of the replay, counted, and the client is told", { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const n1 = track(t, await startNode(redis.url, "gateway-1", FORGED));
  const kv = await redisClient(t, redis.url);
  const room = "chat:forged";
  const pub = await connected(client(t, n1.url));
  const { epoch } = await pub.emitWithAck("join", { room });
  const publish = async (i) => assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i } }), { ok: true });
  await publish(1);
  await forge(kv, room, ["e", "msg", "a", JSON.stringify([{ big: "x".repeat(2 * 1024 * 1024) }])]);
  await publish(2);
  await forge(kv, room, ["e", "msg"]);
  await forge(kv, room, ["e", "msg", "a", "not json"]);
  await forge(kv, room, ["e", "msg", "a", JSON.stringify([{ _placeholder: true, num: 0 }])]);
  await forge(kv, room, ["e", "connect", "a", "[]"]);
  await publish(3);
  await forge(kv, room, ["e", "msg", "a", JSON.stringify([{ big: "y".repeat(2 * 1024 * 1024) }])]);

  const rec = await connected(client(t, n1.url));
  const got = collect(rec, "msg");
  const other = [];
  rec.onAny((event) => { if (event !== "msg") other.push(event); });
  const ack = await rec.timeout(20_000).emitWithAck("join", { room, since: { offset: "0-0", epoch } });
  // Not silent: the app resyncs; what was readable was sent, in order, and the position is
  // past the last entry looked at.
  const newest = (await kv.sendCommand(["XREVRANGE", `sio:history:{/#${room}}`, "+", "-", "COUNT", "1"]))[0][0];
  assert.deepEqual(ack, { ok: true, recovered: false, reason: "skipped", missed: 3, skipped: 6, epoch, offset: newest });
  assert.deepEqual(got.map((m) => m.args), [[{ i: 1 }], [{ i: 2 }], [{ i: 3 }]]);
  assert.deepEqual(other, []);
  const m = await scrapeMetrics(n1.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_history_skipped_total", 'reason="oversized"'), 2, "left out by Redis, never sent to the node");
  assert.equal(metricSum(m, "sio_gateway_history_skipped_total", 'reason="malformed"'), 4);
  assert.equal(metricSum(m, "sio_gateway_history_recoveries_total", 'outcome="skipped"'), 1);
  // Live delivery goes on in the room.
  await publish(4);
  await waitFor(() => got.length === 4, { what: "the live message" });

  // The HTTP API's read leaves them out the same way, and says so.
  const res = await fetch(`${n1.url}/api/v1/rooms/${encodeURIComponent(room)}/history?since=0-0&epoch=${epoch}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  const page = await res.json();
  assert.equal(res.status, 200, JSON.stringify(page));
  assert.equal(page.gap, "skipped");
  assert.deepEqual(page.messages.map((x) => x.args), [[{ i: 1 }], [{ i: 2 }], [{ i: 3 }], [{ i: 4 }]]);

  // The node's own appends refuse what a read would leave out (1 MiB entries here): binary
  // within --max-payload fits as JSON (4 bytes per byte at most); with a text part besides it
  // (each within --max-payload) it may not.
  const bin = Buffer.alloc(250 * 1024, 255);
  assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { bin } }), { ok: true });
  const huge = await pub.emitWithAck("publish", { room, event: "msg", data: { s: "z".repeat(200_000), bin } });
  assert.equal(huge.ok, false);
  assert.match(huge.error, /largest entry/);
});

test("8 replays of a room holding a 30 MB entry written to Redis by someone else: the node stays small, publishes in another room are not held up, one Redis connection more per node (not per replay)", { timeout: 120_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const n1 = track(t, await startNode(redis.url, "gateway-1", FORGED));
  const kv = await redisClient(t, redis.url);
  const room = "chat:x";
  const pub = await connected(client(t, n1.url));
  const { epoch } = await pub.emitWithAck("join", { room });
  assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i: 1 } }), { ok: true });
  await forge(kv, room, ["e", "msg", "a", JSON.stringify([{ big: "x".repeat(30 * 1024 * 1024) }])]);
  assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i: 2 } }), { ok: true });
  const honest = await connected(client(t, n1.url));
  const readers = [];
  for (let k = 0; k < 8; k++) readers.push(await connected(client(t, n1.url)));
  const clients = async () => String(await kv.sendCommand(["CLIENT", "LIST"])).trim().split("\n").length;
  const before = await clients();
  const rss0 = vmRss(n1.pid);

  let replaying = true;
  let rss = rss0;
  let most = before;
  const watching = (async () => {
    while (replaying) {
      rss = Math.max(rss, vmRss(n1.pid));
      most = Math.max(most, await clients());
      await sleep(20);
    }
  })();
  const acks = Promise.all(readers.map((r) => r.timeout(30_000).emitWithAck("join", { room, since: { offset: "0-0", epoch } })));
  // An honest publisher in another history room meanwhile.
  const latencies = [];
  for (let n = 0; n < 20; n++) {
    const t0 = Date.now();
    const a = await honest.timeout(10_000).emitWithAck("publish", { room: "chat:honest", event: "msg", data: { n } });
    latencies.push(Date.now() - t0);
    assert.deepEqual(a, { ok: true }, `publish ${n}`);
  }
  const answers = await acks;
  replaying = false;
  await watching;
  t.diagnostic(`publish latencies ${latencies.join(",")} ms; RSS grew ${rss - rss0} bytes; Redis clients ${before} -> ${most}`);
  for (const a of answers) {
    assert.deepEqual({ ...a, offset: "-" }, { ok: true, recovered: false, reason: "skipped", missed: 2, skipped: 1, epoch, offset: "-" });
  }
  // Redis itself copies the 30 MB entry into the read script each time (~130 ms of its time per
  // read: no command gives a stream entry's size without it), but the node's appends do not queue
  // behind the reads. Before: up to 3.4 s, and a publish failed at the 3 s command timeout.
  assert.ok(Math.max(...latencies) < 2000, `publishes took up to ${Math.max(...latencies)} ms`);
  assert.ok(rss - rss0 < 32 * 1024 * 1024, `the node grew by ${rss - rss0} bytes`);
  assert.equal(most, before, "the replays read on the node's one reading connection");
  const m = await scrapeMetrics(n1.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_history_skipped_total", 'reason="oversized"'), 8);
});
