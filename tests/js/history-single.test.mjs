// Room history on a single node (`--history`, in-memory ring), with the stock socket.io-client:
// every message of a history room carries a trailing {room, offset, epoch}; a client that
// rejoins with `since` gets what it missed in order, then live messages, with no gap and no
// duplicate at the boundary while publishers keep going; the trim bound, TTL expiry, another
// epoch and malformed `since` values give the documented acks, and a refused join is not
// half-applied. The HTTP API's emit passes the same append point. A client that stops reading
// during its recovering join holds up only its own recovery: the room's publishers are served
// meanwhile, the replay gives up at its deadline without joining, and a connection has one
// recovering join in progress at a time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { startGateway, track, sleep, waitFor, scrapeMetrics, metricSum } from "../lib/harness.mjs";
import {
  client, connected, collect, rawClient, recoveryMetrics, filledRoom, stalledReplay, honestRooms,
  hugeRoom, hoarders, vmRss, replayPeaks, replayOutstanding, HUGE_COUNT, WINDOW,
} from "./history-lib.mjs";

const KEY = "history-test-key";

const offsets = (got) => got.map((m) => Number(m.mark.offset));

function range(from, to) {
  const r = [];
  for (let i = from; i <= to; i++) r.push(i);
  return r;
}

test("recovery under steady publishers: every missed message once, in order, then live", async (t) => {
  const gw = track(t, await startGateway(["--history", "chat:*=5000/10m", "--event-rate", "0"]));
  const room = "chat:steady";
  // Two publishers firing without waiting for acks: their publishes race for the history.
  const pubs = await Promise.all([0, 1].map(() => connected(client(t, gw.url))));
  let running = true;
  let sent = 0;
  const acks = [];
  const publishing = Promise.all(pubs.map(async (p, k) => {
    while (running) {
      // ~250 messages/s each, in bursts of 3: well within what a client reads (a faster rate
      // would overflow a receiver's --max-buffer queue, the at-most-once drop of live delivery).
      for (let j = 0; j < 3; j++) {
        acks.push(p.emitWithAck("publish", { room, event: "msg", data: { from: k, n: sent++ } }));
      }
      await sleep(12);
    }
  }));

  const a = await connected(client(t, gw.url));
  const gotA = collect(a, "msg");
  const joined = await a.emitWithAck("join", { room });
  assert.equal(joined.ok, true);
  assert.match(joined.epoch, /^[0-9a-f]{16}$/);
  assert.match(joined.offset, /^\d+$/);
  await waitFor(() => gotA.length >= 100, { what: "100 live messages" });
  a.disconnect();
  await sleep(20); // let anything in flight to `a` land before reading its last mark
  const last = gotA[gotA.length - 1].mark;
  // `a` saw a consecutive run starting right after its join's position.
  assert.deepEqual(offsets(gotA), range(Number(joined.offset) + 1, Number(last.offset)));
  assert.equal(last.room, room);
  assert.equal(last.epoch, joined.epoch);

  await sleep(300); // away while the publishers go on

  const b = await connected(client(t, gw.url));
  const gotB = collect(b, "msg");
  const ack = await b.emitWithAck("join", { room, since: { offset: last.offset, epoch: last.epoch } });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.equal(ack.recovered, true, JSON.stringify(ack));
  assert.ok(ack.missed > 0, "the publishers went on while the client was away");
  // The replay arrived before the ack (live messages may follow it before the ack does), and
  // it ends exactly at the position the ack reports.
  const replayed = ack.missed;
  assert.ok(gotB.length >= replayed);
  assert.equal(Number(gotB[replayed - 1].mark.offset), Number(ack.offset));
  assert.equal(Number(ack.offset) - Number(last.offset), ack.missed);

  await sleep(300); // live messages after the replay
  running = false;
  await publishing;
  const results = await Promise.all(acks);
  assert.ok(results.every((r) => r.ok === true), "every publish acked ok");
  await sleep(100);
  // Offsets end to end: one consecutive run from the client's last offset to the end,
  // across the replay/live boundary. A gap or a duplicate at the boundary breaks it.
  // The history started with the first publish, so the last offset is the number published.
  const total = sent;
  const dropped = metricSum(await scrapeMetrics(gw.url + "/metrics"), "sio_gateway_dropped_messages_total", 'reason="slow_client"');
  assert.deepEqual(offsets(gotB), range(Number(last.offset) + 1, total), `slow_client drops: ${dropped}`);
  assert.ok(gotB.length > replayed, "live messages followed the replay");
  // a and b together saw each message of the run exactly once (payloads too).
  const seen = new Set([...gotA, ...gotB].map((m) => `${m.args[0].from}:${m.args[0].n}`));
  assert.equal(seen.size, gotA.length + gotB.length);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_history_appends_total"), total);
  assert.equal(metricSum(m, "sio_gateway_history_recoveries_total", 'outcome="recovered"'), 1);
  assert.equal(metricSum(m, "sio_gateway_history_replayed_messages_total"), ack.missed);
  assert.ok(metricSum(m, "sio_gateway_history_read_seconds_count") >= 1);
});

test("trim bound, TTL expiry, another epoch, rooms without history", async (t) => {
  const gw = track(t, await startGateway(["--history", "small:*=5", "--history", "ttl:*=100/1s"]));
  const pub = await connected(client(t, gw.url));
  const publish = (room, n) => pub.emitWithAck("publish", { room, event: "msg", data: n });

  const c = await connected(client(t, gw.url));
  const start = await c.emitWithAck("join", { room: "small:a" });
  assert.deepEqual({ ...start, epoch: "-" }, { ok: true, epoch: "-", offset: "0" });
  await c.emitWithAck("leave", "small:a");
  for (let i = 1; i <= 10; i++) assert.deepEqual(await publish("small:a", i), { ok: true });
  // Away for 10 messages with SIZE 5: not recoverable.
  const epoch = start.epoch;
  let r = await c.emitWithAck("join", { room: "small:a", since: { offset: "0", epoch } });
  assert.deepEqual(r, { ok: true, recovered: false, reason: "trimmed", epoch, offset: "10" });
  // Within the bound: the last 5 exactly.
  const d = await connected(client(t, gw.url));
  const gotD = collect(d, "msg");
  r = await d.emitWithAck("join", { room: "small:a", since: { offset: "5", epoch } });
  assert.deepEqual(r, { ok: true, recovered: true, missed: 5, epoch, offset: "10" });
  assert.deepEqual(gotD.map((m) => m.args[0]), [6, 7, 8, 9, 10]);
  assert.deepEqual(offsets(gotD), [6, 7, 8, 9, 10]);
  // Another epoch is never replayed into this one.
  r = await d.emitWithAck("join", { room: "small:a", since: { offset: "5", epoch: "0000000000000000" } });
  assert.deepEqual(r, { ok: true, recovered: false, reason: "epoch", epoch, offset: "10" });

  // TTL: the first message outlives its 1 s, the history itself is still alive.
  const e = await connected(client(t, gw.url));
  const t0 = await e.emitWithAck("join", { room: "ttl:a" });
  await e.emitWithAck("leave", "ttl:a");
  await publish("ttl:a", 1);
  await sleep(700);
  await publish("ttl:a", 2);
  await sleep(500);
  r = await e.emitWithAck("join", { room: "ttl:a", since: { offset: "0", epoch: t0.epoch } });
  assert.deepEqual(r, { ok: true, recovered: false, reason: "expired", epoch: t0.epoch, offset: "2" });
  // Idle past the TTL: the history is lost and comes back with a new epoch.
  await e.emitWithAck("leave", "ttl:a");
  await sleep(1200);
  r = await e.emitWithAck("join", { room: "ttl:a", since: { offset: "2", epoch: t0.epoch } });
  assert.equal(r.reason, "epoch");
  assert.notEqual(r.epoch, t0.epoch);
  assert.equal(r.offset, "0");

  // A room without history: joins as before, messages carry no mark.
  const f = await connected(client(t, gw.url));
  const plain = [];
  f.on("msg", (...args) => plain.push(args));
  assert.deepEqual(await f.emitWithAck("join", "lobby"), { ok: true });
  assert.deepEqual(await f.emitWithAck("join", { room: "lobby2", since: { offset: "1", epoch } }),
    { ok: true, recovered: false, reason: "no_history" });
  await publish("lobby", "x");
  await waitFor(() => plain.length === 1, { what: "plain message" });
  assert.deepEqual(plain[0], ["x"]);
});

test("malformed since: joined without recovery, answered invalid; a malformed argument: a clear error, nothing joined; plain join and the HTTP API", async (t) => {
  const gw = track(t, await startGateway(["--history", "chat:*=100", "--api-key", KEY]));
  const pub = await connected(client(t, gw.url));
  const c = await connected(client(t, gw.url));
  const got = collect(c, "msg");
  const pos = await c.emitWithAck("join", { room: "chat:probe" });
  await c.emitWithAck("leave", "chat:probe");
  const epoch = pos.epoch;
  // A bad position (malformed, forged, ahead of the history) never keeps a socket out of a
  // room (review 8: a forged position locked helper users out): joined, recovered:false.
  for (const [arg, why] of [
    [{ room: "chat:y", since: { offset: 5, epoch } }, /since\.offset/],
    [{ room: "chat:y", since: { offset: "-1", epoch } }, /since\.offset/],
    [{ room: "chat:y", since: { offset: "zz", epoch } }, /since\.offset/],
    [{ room: "chat:y", since: { offset: "9".repeat(30), epoch } }, /since\.offset/],
    [{ room: "chat:probe", since: { offset: "99", epoch } }, /ahead/],
    [{ room: "chat:probe", since: { offset: "18446744073709551615", epoch } }, /ahead/],
    [{ room: "chat:y", since: { offset: "1", epoch: 7 } }, /since\.epoch/],
    [{ room: "chat:y", since: { offset: "1", epoch: "a b" } }, /since\.epoch/],
    [{ room: "chat:y", since: { offset: "0", epoch: "!" } }, /since\.epoch/],
    [{ room: "chat:y", since: { offset: "1" } }, /since/],
    [{ room: "chat:y", since: "1" }, /since/],
  ]) {
    const r = await c.emitWithAck("join", arg);
    assert.equal(r.ok, true, JSON.stringify([arg, r]));
    assert.equal(r.recovered, false, JSON.stringify([arg, r]));
    assert.equal(r.reason, "invalid", JSON.stringify([arg, r]));
    assert.match(r.detail, why, JSON.stringify([arg, r]));
    assert.match(r.offset, /^\d+$/, JSON.stringify([arg, r]));
    // Joined: a message into the room reaches c.
    const n = got.length;
    assert.deepEqual(await pub.emitWithAck("publish", { room: arg.room, event: "msg", data: "in" }), { ok: true });
    await waitFor(() => got.length === n + 1, { what: `a message after ${JSON.stringify(arg)}` });
    assert.deepEqual(await c.emitWithAck("leave", arg.room), { ok: true });
  }
  got.length = 0;
  for (const [arg, why] of [
    [{ room: "chat:x", extra: 1 }, /unknown key `extra`/],
    [{ room: 3 }, /room name/],
    [{ room: "" }, /room name/],
    [["chat:x"], /room name/],
  ]) {
    const r = await c.emitWithAck("join", arg);
    assert.equal(r.ok, false, JSON.stringify(arg));
    assert.match(r.error, why, JSON.stringify(arg));
  }
  // None of them joined: messages into chat:x and chat:probe do not reach c.
  assert.deepEqual(await pub.emitWithAck("publish", { room: "chat:x", event: "msg", data: 1 }), { ok: true });
  // The plain join is unchanged; messages carry the mark as one extra trailing argument.
  assert.deepEqual(await c.emitWithAck("join", "chat:x"), { ok: true });
  await pub.emitWithAck("publish", { room: "chat:x", event: "msg", data: { text: "hi" } });
  const r = await fetch(gw.url + "/api/v1/emit", {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ rooms: "chat:x", event: "msg", args: ["a", 2] }),
  });
  assert.equal(r.status, 200);
  await waitFor(() => got.length === 2, { what: "two messages" });
  const xEpoch = got[0].mark.epoch;
  assert.deepEqual(got, [
    { args: [{ text: "hi" }], mark: { room: "chat:x", offset: "2", epoch: xEpoch } },
    { args: ["a", 2], mark: { room: "chat:x", offset: "3", epoch: xEpoch } },
  ]);
  // A broadcast to a history room and another room at once is refused (one mark per message).
  const r2 = await fetch(gw.url + "/api/v1/emit", {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ rooms: ["chat:x", "other"], event: "msg", data: 1 }),
  });
  assert.equal(r2.status, 400);
  assert.match((await r2.json()).error, /keeps a history/);
  // The same history, for backends.
  const hist = async (q) => {
    const res = await fetch(gw.url + "/api/v1/rooms/chat%3Ax/history" + q, { headers: { authorization: `Bearer ${KEY}` } });
    return { status: res.status, body: await res.json() };
  };
  let h = await hist("");
  assert.equal(h.status, 200);
  assert.deepEqual(h.body, {
    nsp: "/", room: "chat:x", epoch: xEpoch, offset: "3", gap: null,
    messages: [
      { offset: "1", event: "msg", args: [1] },
      { offset: "2", event: "msg", args: [{ text: "hi" }] },
      { offset: "3", event: "msg", args: ["a", 2] },
    ],
  });
  h = await hist(`?since=1&limit=1&epoch=${xEpoch}`);
  assert.deepEqual(h.body.messages.map((x) => x.offset), ["2"]);
  h = await hist("?since=1&epoch=0000000000000000");
  assert.equal(h.status, 409);
  assert.equal(h.body.epoch, xEpoch);
  for (const q of ["?since=abc", "?since=9", "?limit=0", "?limit=1001", "?epoch=a%20b"]) {
    assert.equal((await hist(q)).status, 400, q);
  }
  const none = await fetch(gw.url + "/api/v1/rooms/lobby/history", { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(none.status, 404);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.ok(metricSum(m, "sio_gateway_history_recoveries_total", 'outcome="invalid"') >= 11);
});

test("memory budget (--history-max-bytes): large messages to ever new rooms stay within it, an honest room keeps its recent history", { timeout: 120_000 }, async (t) => {
  const BUDGET = 2 * 1024 * 1024;
  const gw = track(t, await startGateway(["--history", "chat:*=200", "--history-max-bytes", String(BUDGET), "--event-rate", "0"]));
  const metrics = async () => scrapeMetrics(gw.url + "/metrics");
  const held = (m) => metricSum(m, "sio_gateway_history_held_bytes");
  // A reader of the honest room, and one of a room written once (before the flood): both go
  // away with their last offset.
  const { attacker, honest, publishHonest, lastHonest, lastOnce } = await honestRooms(t, gw.url, gw.url);

  // The flood: ~100 KB messages, each to a new room (6 MB in all, 3x the budget), with the
  // honest room written every fifth message.
  const blob = "x".repeat(100_000);
  let honestSent = 5;
  for (let i = 0; i < 60; i++) {
    const r = await attacker.emitWithAck("publish", { room: `chat:flood-${i}`, event: "msg", data: blob });
    assert.deepEqual(r, { ok: true });
    if (i % 5 === 4) await publishHonest(honestSent++);
    if (i % 10 === 9) {
      const h = held(await metrics());
      assert.ok(h > 0 && h <= BUDGET, `after ${i + 1} rooms: ${h} bytes held, budget ${BUDGET}`);
    }
  }
  const m = await metrics();
  assert.ok(held(m) <= BUDGET, `${held(m)} bytes held, budget ${BUDGET}`);
  assert.ok(metricSum(m, "sio_gateway_history_evicted_total", 'reason="lru"') >= 30,
    `rooms evicted: ${metricSum(m, "sio_gateway_history_evicted_total", 'reason="lru"')}`);
  assert.equal(metricSum(m, "sio_gateway_history_appends_total"), 60 + honestSent + 1);

  // The honest room, written all along, kept its recent history: the reader recovers it all.
  const back = await connected(client(t, gw.url));
  const gotBack = collect(back, "msg");
  const ack = await back.emitWithAck("join", { room: "chat:honest", since: { offset: lastHonest.offset, epoch: lastHonest.epoch } });
  assert.equal(ack.recovered, true, JSON.stringify(ack));
  assert.equal(ack.missed, honestSent - 5);
  assert.deepEqual(gotBack.map((x) => x.args[0].n), range(5, honestSent - 1));
  // The room written once, before the flood, was evicted: the reader is told, not given a gap.
  const once = await back.emitWithAck("join", { room: "chat:once", since: { offset: lastOnce.offset, epoch: lastOnce.epoch } });
  assert.equal(once.recovered, false, JSON.stringify(once));
  assert.equal(once.reason, "epoch");
  assert.notEqual(once.epoch, lastOnce.epoch);
  assert.equal(once.offset, "0");

  // One room alone over the budget trims its own oldest messages.
  for (let i = 0; i < 30; i++) {
    assert.deepEqual(await attacker.emitWithAck("publish", { room: "chat:big", event: "msg", data: blob }), { ok: true });
  }
  const m2 = await metrics();
  assert.ok(held(m2) <= BUDGET, `${held(m2)} bytes held, budget ${BUDGET}`);
  assert.ok(metricSum(m2, "sio_gateway_history_evicted_total", 'reason="self_trim"') >= 1);
  const big = await back.emitWithAck("join", { room: "chat:big", since: { offset: "1", epoch: (await back.emitWithAck("join", { room: "chat:big" })).epoch } });
  assert.deepEqual([big.recovered, big.reason], [false, "trimmed"], JSON.stringify(big));
});

const ATTACK = ["--history", "h:*=200", "--max-buffer", "16", "--event-rate", "0"];

test("a recovering join that stops reading holds up only itself: the room's publishers are served", { timeout: 120_000 }, async (t) => {
  const gw = track(t, await startGateway(ATTACK));
  const room = "h:a";
  const { pub, got, epoch } = await filledRoom(t, gw.url, room);
  // The attacker: joins with an early offset, asking no ack, and never reads. (More such joins
  // would wait for their turn, without the lock: the next test.)
  const atk = await rawClient(t, gw.url);
  atk.pause();
  atk.emit("join", { room, since: { offset: "1", epoch } });
  await stalledReplay(gw.url);
  // A publish into the room is acked while the attacker's replay is still stuck (before, it
  // waited for the room's lock until the replay's 10 s deadline, and behind each further one).
  assert.deepEqual(await pub.timeout(30_000).emitWithAck("publish", { room, event: "msg", data: { i: 201 } }), { ok: true });
  let m = await recoveryMetrics(gw.url);
  assert.equal(m.recovered + m.failed, 0, "acked while the attacker's replay was stuck");
  assert.ok(atk.open);
  await waitFor(() => got.length === 201, { what: "the member got the live message" });
  assert.deepEqual([got[200].args[0], got[200].mark.offset], [{ i: 201 }, "201"]);
  // The replay gives up at its deadline, and the attacker is not in the room.
  await waitFor(async () => (await recoveryMetrics(gw.url)).failed === 1, { timeoutMs: 30_000, what: "the replay failed" });
  m = await recoveryMetrics(gw.url);
  assert.equal(m.recovered, 0);
  assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i: 202 } }), { ok: true });
  atk.resume();
  atk.emit("leave", "h:other", 9);
  await waitFor(() => atk.ack(9) !== undefined, { what: "the attacker reads again" });
  // What it got is a prefix of the replay, in order, once each (sent in rounds, the room's
  // lock let go between them), and nothing live.
  const offsets = atk.events("msg").map((a) => Number(a[a.length - 1].offset));
  assert.ok(offsets.length > 16, `replayed before the stall: ${offsets.length}`);
  assert.deepEqual(offsets, range(2, offsets.length + 1));
  assert.ok(!offsets.includes(202), "not joined after a failed replay");
});

test("a connection's recovering joins run one after the other; past 8 at once they are refused", { timeout: 120_000 }, async (t) => {
  const gw = track(t, await startGateway(ATTACK));
  const room = "h:a";
  const { pub, epoch } = await filledRoom(t, gw.url, room);
  const atk = await rawClient(t, gw.url);
  atk.pause();
  atk.emit("join", { room, since: { offset: "1", epoch } });
  const m0 = await stalledReplay(gw.url);
  // While the first is stuck: 7 more wait for their turn (nothing after offset 200 to replay),
  // the 9th is refused.
  for (let id = 1; id <= 8; id++) atk.emit("join", { room, since: { offset: "200", epoch } }, id);
  await waitFor(async () => (await recoveryMetrics(gw.url)).invalid > m0.invalid, { what: "the 9th refused" });
  atk.resume();
  await waitFor(() => [1, 2, 3, 4, 5, 6, 7, 8].every((id) => atk.ack(id) !== undefined), { timeoutMs: 30_000, what: "every ack" });
  // Handlers run concurrently: any one of the eight may be the one past the cap.
  const acks = [1, 2, 3, 4, 5, 6, 7, 8].map((id) => atk.ack(id));
  const refused = acks.filter((a) => !a.ok);
  assert.deepEqual(refused, [{ ok: false, error: "too many recovering joins in progress on this connection (8): wait for their answers" }]);
  for (const a of acks.filter((a) => a.ok)) {
    assert.deepEqual({ ...a, epoch: "-" }, { ok: true, recovered: true, missed: 0, epoch: "-", offset: "200" });
  }
  // The first ran to its end before them: the whole replay, in order, then live messages.
  assert.equal((await recoveryMetrics(gw.url)).recovered, 8);
  assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i: 201 } }), { ok: true });
  await waitFor(() => atk.events("msg").length === 200, { what: "the replay and the live message" });
  assert.deepEqual(atk.events("msg").map((a) => Number(a[a.length - 1].offset)), range(2, 201));
});

test("the served helper rejoins several history rooms after a reconnect, one after the other", { timeout: 60_000 }, async (t) => {
  // Replays longer than the send queue (100 messages, --max-buffer 16): each recovering join
  // takes a while, so joins sent together would overlap (the gateway runs them in turn).
  const gw = track(t, await startGateway(["--history", "chat:*=200", "--max-buffer", "16", "--event-rate", "0"]));
  const src = await (await fetch(gw.url + "/history-client.js")).text();
  const mod = { exports: {} };
  new Function("module", "exports", src)(mod, mod.exports);
  const s = io(gw.url, { forceNew: true, transports: ["websocket"], reconnectionDelay: 100 });
  track(t, s);
  await connected(s);
  const rejoined = new Map();
  const rooms = mod.exports.track(s, { onRejoin: (room, ack) => rejoined.set(room, ack) });
  const names = ["chat:1", "chat:2", "chat:3"];
  for (const r of names) assert.equal((await rooms.join(r)).ok, true);
  const pub = await connected(client(t, gw.url));
  for (const r of names) await pub.emitWithAck("publish", { room: r, event: "msg", data: 1 });
  await waitFor(() => names.every((r) => rooms.position(r).offset === "1"), { what: "positions" });
  s.disconnect();
  for (const r of names) {
    for (let i = 2; i <= 101; i++) await pub.emitWithAck("publish", { room: r, event: "msg", data: "y".repeat(2000) });
  }
  s.connect(); // a new connection: in no room, rejoined by the helper
  await waitFor(() => rejoined.size === names.length, { what: "three rejoins" });
  for (const r of names) {
    assert.deepEqual({ ...rejoined.get(r), epoch: "-" }, { ok: true, recovered: true, missed: 100, epoch: "-", offset: "101" }, r);
  }
});

/** The helper the gateway serves, loaded as CommonJS (as a Node service would). */
async function helperModule(url) {
  const src = await (await fetch(url + "/history-client.js")).text();
  const mod = { exports: {} };
  new Function("module", "exports", src)(mod, mod.exports);
  return mod.exports;
}

/** sessionStorage's interface, in memory. */
function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), map: m };
}

test("the served helper takes no position from another client's publish: forged marks neither lock out, hide messages, nor crash", { timeout: 60_000 }, async (t) => {
  // Review 8: a namespace-wide publish of data shaped like a mark moved the helper's position
  // (another epoch: every rejoin refused; offset 2^64-1: 5 of 50 received; offset +20: 30 of
  // 50, 20 missing, recovered:true; offset "zz": an uncaught SyntaxError in the listener).
  const gw = track(t, await startGateway(["--history", "chat:*=200", "--event-rate", "0"]));
  const SioHistory = await helperModule(gw.url);
  const room = "chat:victim";
  const storage = memoryStorage();
  const victim = io(gw.url, { forceNew: true, transports: ["websocket"], reconnectionDelay: 100 });
  track(t, victim);
  await connected(victim);
  const rejoins = [];
  const resyncs = [];
  const rooms = SioHistory.track(victim, { storage, onRejoin: (r, a) => rejoins.push(a), onResync: (r, a) => resyncs.push(a) });
  const got = [];
  victim.on("chat", (m) => got.push(m.i));
  const news = [];
  victim.on("news", (d) => news.push(d));
  assert.equal((await rooms.join(room)).ok, true);
  const pub = await connected(client(t, gw.url));
  for (let i = 1; i <= 5; i++) await pub.emitWithAck("publish", { room, event: "chat", data: { i } });
  await waitFor(() => rooms.position(room)?.offset === "5", { what: "position 5" });
  const before = rooms.position(room);

  // The attacker reads the epoch by joining, then publishes namespace-wide (not in the room).
  const atk = await connected(client(t, gw.url));
  const { epoch, offset } = await atk.emitWithAck("join", { room });
  await atk.emitWithAck("leave", room);
  const forged = [
    { room, offset: "0", epoch: "!" },
    { room, offset: "0", epoch: "0000000000000000" },
    { room, offset: "18446744073709551615", epoch },
    { room, offset: String(Number(offset) + 20), epoch },
    { room, offset: "zz", epoch },
  ];
  for (const data of forged) assert.deepEqual(await atk.emitWithAck("publish", { event: "news", data }), { ok: true });
  await waitFor(() => news.length === forged.length, { what: "the forged marks delivered" });
  assert.deepEqual(rooms.position(room), before, "a single argument is never a position");

  // A network blip: the helper rejoins from its real position and misses nothing.
  victim.io.engine.close();
  await waitFor(() => !victim.connected, { what: "disconnected" });
  for (let i = 6; i <= 45; i++) await pub.emitWithAck("publish", { room, event: "chat", data: { i } });
  await waitFor(() => rejoins.length === 1, { what: "the rejoin" });
  assert.deepEqual({ ...rejoins[0], epoch: "-" }, { ok: true, recovered: true, missed: 40, epoch: "-", offset: "45" });
  for (let i = 46; i <= 50; i++) await pub.emitWithAck("publish", { room, event: "chat", data: { i } });
  await waitFor(() => got.length === 50, { what: "50 messages" });
  assert.deepEqual(got, range(1, 50));
  assert.deepEqual(resyncs, []);
  assert.deepEqual(JSON.parse(storage.map.get("sio-history:" + room)), { epoch, offset: "50" });
});

test("the served helper with a bad stored position (ahead, another epoch, malformed) still joins, resyncs, and takes the gateway's position", { timeout: 60_000 }, async (t) => {
  const gw = track(t, await startGateway(["--history", "chat:*=200", "--event-rate", "0"]));
  const SioHistory = await helperModule(gw.url);
  const pub = await connected(client(t, gw.url));
  const probe = await connected(client(t, gw.url));
  const rooms = ["chat:ahead", "chat:epoch", "chat:zz"];
  const epochs = {};
  for (const r of rooms) {
    for (let i = 1; i <= 3; i++) await pub.emitWithAck("publish", { room: r, event: "chat", data: { i } });
    epochs[r] = (await probe.emitWithAck("join", { room: r })).epoch;
  }
  // What a forged mark left in sessionStorage before this fix (and survives a reload).
  const storage = memoryStorage();
  storage.setItem("sio-history:chat:ahead", JSON.stringify({ epoch: epochs["chat:ahead"], offset: "18446744073709551615" }));
  storage.setItem("sio-history:chat:epoch", JSON.stringify({ epoch: "0000000000000000", offset: "2" }));
  storage.setItem("sio-history:chat:zz", JSON.stringify({ epoch: epochs["chat:zz"], offset: "zz" }));
  const s = await connected(client(t, gw.url));
  const resyncs = new Map();
  const h = SioHistory.track(s, { storage, onResync: (r, a) => resyncs.set(r, a.reason) });
  const got = [];
  s.on("chat", (m, mark) => got.push(mark.room));
  for (const r of rooms) {
    const ack = await h.join(r);
    assert.equal(ack.ok, true, JSON.stringify([r, ack]));
    assert.equal(ack.recovered, r === "chat:zz" ? undefined : false, JSON.stringify([r, ack]));
    assert.deepEqual(h.position(r), { epoch: epochs[r], offset: "3" }, r);
  }
  assert.deepEqual(Object.fromEntries(resyncs), { "chat:ahead": "invalid", "chat:epoch": "epoch" });
  for (const r of rooms) await pub.emitWithAck("publish", { room: r, event: "chat", data: { i: 4 } });
  await waitFor(() => got.length === 3, { what: "a message in each room" });
  for (const r of rooms) assert.deepEqual(h.position(r), { epoch: epochs[r], offset: "4" }, r);
});

const FLOW = ["--history", "big:*=40", "--event-rate", "0"];

test("replays are bounded by bytes delivered: clients that ask for a big replay and never read pin a window each, not the history", { timeout: 120_000 }, async (t) => {
  const gw = track(t, await startGateway(FLOW));
  const room = "big:a";
  const { epoch } = await hugeRoom(t, gw.url, room);
  const rss0 = vmRss(gw.pid);
  // 8 connections ask for the 20 MB replay from the start and never read. Before, each had up
  // to --max-buffer (128) messages encoded and queued: the whole history, 8 x 20 MB.
  const N = 8;
  await hoarders(t, gw.url, room, { offset: "0", epoch }, N);
  await waitFor(async () => (await recoveryMetrics(gw.url)).reads >= N, { what: "every replay started" });
  const peak = await replayPeaks(gw, 3000);
  const grew = peak.rss - rss0;
  t.diagnostic(`${N} stalled replays: peak outstanding ${peak.outstanding} bytes, RSS grew ${grew} bytes`);
  assert.ok(peak.outstanding > 0, "the gauge counts the replays");
  assert.ok(peak.outstanding <= N * WINDOW, `outstanding ${peak.outstanding} > ${N} x ${WINDOW}`);
  assert.ok(grew < N * 4 * WINDOW, `RSS grew ${grew} bytes with ${N} stalled replays`);
  // At the deadline (or when the stall sweeper cuts them) every replay ends and gives back
  // what it held.
  await waitFor(async () => (await recoveryMetrics(gw.url)).failed === N, { timeoutMs: 30_000, what: "the replays failed" });
  await waitFor(async () => (await replayOutstanding(gw.url)) === 0, { what: "the budget given back" });
});

test("an honest client recovers every message of a big replay, in order (websocket and polling)", { timeout: 120_000 }, async (t) => {
  const gw = track(t, await startGateway(FLOW));
  const room = "big:b";
  const { epoch } = await hugeRoom(t, gw.url, room);
  for (const transports of [["websocket"], ["polling"]]) {
    const s = io(gw.url, { forceNew: true, reconnection: false, transports });
    track(t, s);
    await connected(s);
    const got = collect(s, "msg");
    const ack = await s.timeout(30_000).emitWithAck("join", { room, since: { offset: "0", epoch } });
    assert.deepEqual(ack, { ok: true, recovered: true, missed: HUGE_COUNT, epoch, offset: String(HUGE_COUNT) }, transports[0]);
    assert.deepEqual(offsets(got), range(1, HUGE_COUNT), transports[0]);
    assert.deepEqual(got.map((m) => m.args[0].i), range(1, HUGE_COUNT));
    assert.ok(got.every((m) => m.args[0].big.length === 500_000));
    s.disconnect();
  }
  assert.equal(await replayOutstanding(gw.url), 0);
});

test("a big replay follows its session from polling to websocket: the upgraded client gets every message, in order", { timeout: 120_000 }, async (t) => {
  const gw = track(t, await startGateway(FLOW));
  const room = "big:u";
  const { epoch } = await hugeRoom(t, gw.url, room);
  // A raw polling session (its sid is the session key the handshake gives).
  const base = `${gw.url}/socket.io/?EIO=4`;
  const open = await (await fetch(`${base}&transport=polling`)).text();
  const sid = JSON.parse(open.slice(1)).sid;
  const poll = async () => (await (await fetch(`${base}&transport=polling&sid=${sid}&t=${Math.random()}`)).text()).split("\x1e");
  const post = async (body) => assert.equal(await (await fetch(`${base}&transport=polling&sid=${sid}`, { method: "POST", body })).text(), "ok");
  await post("40");
  // engineioxide pings a new session at once (within a timer tick of the handshake), before or
  // after the CONNECT ack: poll until both came, so that the replay's poll below is not answered
  // with that ping alone. (The pong is not needed: --ping-timeout is 20 s.)
  let connectedAck = false;
  let pinged = false;
  for (let i = 0; i < 5 && !(connectedAck && pinged); i++) {
    const packets = await poll();
    connectedAck ||= packets.some((p) => p.startsWith("40"));
    pinged ||= packets.includes("2");
  }
  assert.ok(connectedAck && pinged, "the CONNECT ack and the first ping in the polls' answers");
  await post(`421${JSON.stringify(["join", { room, since: { offset: "0", epoch } }])}`);
  // One poll of the replay (its first window), then the upgrade: the replay now waits for bytes
  // delivered on the websocket.
  const packets = await poll();
  const before = packets.filter((p) => p.startsWith("42["));
  assert.ok(before.length >= 1 && before.length < HUGE_COUNT, `by polling: ${before.length}`);
  const ws = new WebSocket(`${gw.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
  track(t, { close: () => ws.terminate() });
  const frames = [];
  ws.on("message", (d) => {
    const f = d.toString();
    if (f === "2") ws.send("3");
    frames.push(f);
  });
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  ws.send("2probe");
  await waitFor(() => frames.includes("3probe"), { what: "the probe answered" });
  ws.send("5");
  await waitFor(() => frames.some((f) => f.startsWith("431[")), { timeoutMs: 30_000, what: "the recovering join's ack" });
  const ack = JSON.parse(frames.find((f) => f.startsWith("431[")).slice(3))[0];
  assert.deepEqual(ack, { ok: true, recovered: true, missed: HUGE_COUNT, epoch, offset: String(HUGE_COUNT) });
  const msgs = [...before, ...frames.filter((f) => f.startsWith("42["))].map((f) => JSON.parse(f.slice(2)));
  assert.deepEqual(msgs.map((m) => m[1].i), range(1, HUGE_COUNT));
  assert.deepEqual(msgs.map((m) => Number(m[2].offset)), range(1, HUGE_COUNT));
});
