// Helpers shared by history-single.test.mjs and history-cluster.test.mjs: websocket clients,
// a recorder that splits each message's trailing history mark from its arguments, and the raw
// websocket client of the recovery attack (it stops reading while its replay is sent).
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import WebSocket from "ws";
import fs from "node:fs";
import { track, once, sleep, waitFor, scrapeMetrics, metricSum } from "../lib/harness.mjs";

/** A websocket socket.io-client, closed with the test. */
export function client(t, url) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  return s;
}

/** `s`, once connected. */
export async function connected(s) {
  if (!s.connected) await once(s, "connect");
  return s;
}

/** Every `event` received, as {args, mark}: the mark is the trailing argument. */
export function collect(s, event) {
  const got = [];
  s.on(event, (...args) => got.push({ args: args.slice(0, -1), mark: args[args.length - 1] }));
  return got;
}

/**
 * A raw websocket Socket.IO client on `/`, closed with the test: `emit(event, arg, ackId?)`
 * sends an event by hand (no ack id: no ack asked), `pause()` stops reading (its kernel buffers
 * fill, then the gateway's send queue), `resume()` reads again. `frames` is every Engine.IO
 * text frame read; `events(name)` the parsed arguments of each `name` event; `ack(id)` the
 * first argument of ack `id`, once read. Pings are answered.
 */
export async function rawClient(t, url) {
  const ws = new WebSocket(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
  track(t, { close: () => ws.terminate() });
  const frames = [];
  ws.on("message", (d) => {
    const f = d.toString();
    frames.push(f);
    if (f === "2") ws.send("3");
  });
  await once(ws, "open");
  ws.send("40");
  await waitFor(() => frames.some((f) => f.startsWith("40")), { what: "namespace connected" });
  return {
    frames,
    emit: (event, arg, ackId = "") => ws.send(`42${ackId}${JSON.stringify([event, arg])}`),
    pause: () => ws._socket.pause(),
    resume: () => ws._socket.resume(),
    get open() { return ws.readyState === WebSocket.OPEN; },
    events: (name) => frames.filter((f) => f.startsWith("42[")).map((f) => JSON.parse(f.slice(2)))
      .filter((p) => p[0] === name).map((p) => p.slice(1)),
    ack: (id) => {
      const head = `43${id}[`;
      const f = frames.find((x) => x.startsWith(head));
      return f === undefined ? undefined : JSON.parse(f.slice(head.length - 1))[0];
    },
  };
}

/** The history metrics of the recovery attack tests, read from `/metrics`. */
export async function recoveryMetrics(url) {
  const m = await scrapeMetrics(url + "/metrics");
  const outcome = (o) => metricSum(m, "sio_gateway_history_recoveries_total", `outcome="${o}"`);
  return {
    reads: metricSum(m, "sio_gateway_history_read_seconds_count"),
    recovered: outcome("recovered"),
    failed: outcome("failed"),
    received: metricSum(m, "sio_gateway_events_received_total"),
    invalid: metricSum(m, "sio_gateway_dropped_messages_total", 'reason="invalid"'),
  };
}

// The recovery attack (gateways given --history "h:*=200" --max-buffer 16): 200 messages of
// 40 KB (8 MB, more than the kernel buffers and 16 packets take) to replay to a raw websocket
// that does not read.
const BIG = "x".repeat(40 * 1024);

/** A member of `room` (joined first), and the room filled with 200 big messages. */
export async function filledRoom(t, url, room) {
  const pub = await connected(client(t, url));
  const member = await connected(client(t, url));
  const got = collect(member, "msg");
  const pos = await member.emitWithAck("join", { room });
  assert.equal(pos.ok, true);
  for (let i = 1; i <= 200; i++) {
    assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i, big: BIG } }), { ok: true });
  }
  await waitFor(() => got.length === 200, { what: `the member got ${got.length}/200` });
  return { pub, member, got, epoch: pos.epoch };
}

/** A recovering join of a paused client has read the history and is stuck sending its replay. */
export async function stalledReplay(url) {
  await waitFor(async () => (await recoveryMetrics(url)).reads >= 1, { what: "the replay started" });
  await sleep(300);
  const m = await recoveryMetrics(url);
  assert.equal(m.recovered + m.failed, 0, "the replay is larger than what the client's buffers take");
  return m;
}

/**
 * The memory-budget tests' start: an attacker and an honest publisher on `writeUrl`, and a
 * reader on `readUrl` of `chat:honest` (5 messages) and `chat:once` (1, before any flood) that
 * goes away with its last offsets.
 */
export async function honestRooms(t, writeUrl, readUrl) {
  const attacker = await connected(client(t, writeUrl));
  const honest = await connected(client(t, writeUrl));
  const publishHonest = async (n) =>
    assert.deepEqual(await honest.emitWithAck("publish", { room: "chat:honest", event: "msg", data: { n } }), { ok: true });
  const reader = await connected(client(t, readUrl));
  const got = collect(reader, "msg");
  assert.equal((await reader.emitWithAck("join", { room: "chat:honest" })).ok, true);
  assert.equal((await reader.emitWithAck("join", { room: "chat:once" })).ok, true);
  for (let n = 0; n < 5; n++) await publishHonest(n);
  assert.deepEqual(await honest.emitWithAck("publish", { room: "chat:once", event: "msg", data: "once" }), { ok: true });
  await waitFor(() => got.length === 6, { what: "the reader's six messages" });
  const lastHonest = got.filter((m) => m.mark.room === "chat:honest").at(-1).mark;
  const lastOnce = got.find((m) => m.mark.room === "chat:once").mark;
  reader.disconnect();
  return { attacker, honest, publishHonest, lastHonest, lastOnce };
}

// The byte-flow tests (gateways given --history "big:*=40"): 40 messages of ~500 KB (20 MB)
// in one room's history, replayed from its start to clients that never read.
const HUGE = "y".repeat(500_000);
export const HUGE_COUNT = 40;
/** A replay's window of bytes queued and not yet delivered (history::flow::WINDOW). */
export const WINDOW = 1 << 20;

/** `room` filled with HUGE_COUNT messages of ~500 KB; its epoch. */
export async function hugeRoom(t, url, room) {
  const pub = await connected(client(t, url));
  const pos = await pub.emitWithAck("join", { room });
  assert.equal(pos.ok, true);
  for (let i = 1; i <= HUGE_COUNT; i++) {
    assert.deepEqual(await pub.emitWithAck("publish", { room, event: "msg", data: { i, big: HUGE } }), { ok: true });
  }
  return { pub, epoch: pos.epoch };
}

/** `n` raw websocket clients that send a recovering join of `room` from `since`, never reading. */
export async function hoarders(t, url, room, since, n) {
  const all = [];
  for (let i = 0; i < n; i++) {
    const c = await rawClient(t, url);
    c.pause();
    c.emit("join", { room, since });
    all.push(c);
  }
  return all;
}

/** The resident memory of process `pid`, in bytes (VmRSS of /proc/<pid>/status). */
export function vmRss(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  assert.ok(m, "VmRSS in /proc/<pid>/status");
  return Number(m[1]) * 1024;
}

/** The highest replay bytes outstanding (the gauge) and RSS of gateway `gw` seen over `ms`. */
export async function replayPeaks(gw, ms) {
  let outstanding = 0;
  let rss = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const m = await scrapeMetrics(gw.url + "/metrics");
    outstanding = Math.max(outstanding, metricSum(m, "sio_gateway_history_replay_outstanding_bytes"));
    rss = Math.max(rss, vmRss(gw.pid));
    await sleep(100);
  }
  return { outstanding, rss };
}

/** The replay bytes outstanding on `url` now (the gauge). */
export async function replayOutstanding(url) {
  return metricSum(await scrapeMetrics(url + "/metrics"), "sio_gateway_history_replay_outstanding_bytes");
}
