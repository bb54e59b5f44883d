// Random-frame fuzzer (issue 14 item 5) against a real gateway binary, over WebSocket and over
// HTTP long-polling: pure random bytes, mutated valid Engine.IO / Socket.IO packets (connect,
// events, acks, binary placeholders and attachments, wrong namespaces, huge numbers, deep
// nesting, invalid UTF-8, truncated JSON), raw polling bodies with \x1e separators, bad
// sid / EIO / transport query params and upgrade attempts. After each batch: the process is
// alive, nothing "panicked" in its output, /healthz answers and a stock socket.io-client
// connects, joins a room and round-trips a publish to a second client. Then the same on two
// nodes over a private redis-server (fuzzed publishes cross Redis into the other node).
//
// Seeded: FUZZ_SEED (else random; always printed, so a failure replays with the same seed and
// FUZZ_FRAMES). FUZZ_FRAMES: frames per transport (default 5,000 in the suite; scripts/fuzz.sh
// runs many more).
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { startGateway, startRedis, track, once, waitFor } from "../lib/harness.mjs";
import { startNode } from "./cluster-lib.mjs";

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const FRAMES = Number(process.env.FUZZ_FRAMES || 5000);
const LONG = !!process.env.FUZZ_LONG;
const BATCH = Math.max(250, Math.min(LONG ? 20000 : 1250, Math.ceil(FRAMES / 4)));
const MAX_PAYLOAD = 100_000;
const SEP = "\x1e";
console.log(`# fuzz-frames: FUZZ_SEED=${SEED} FUZZ_FRAMES=${FRAMES} (replay: FUZZ_SEED=${SEED} FUZZ_FRAMES=${FRAMES} node --test js/fuzz-frames.test.mjs)`);

// ---------------------------------------------------------------- seeded PRNG (mulberry32)

function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
    bytes: (n) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
  return r;
}

// ---------------------------------------------------------------- frame generators

const NAMESPACES = ["", "/", "/x", "/chat-1", "/../", "/%00", "/" + "n".repeat(300), "/\u00e9\u4e2d", "/a/b/c", "/*"];
const NUMS = ["0", "-0", "1", "-1", "1e308", "1e309", "-1e309", "9007199254740993", "18446744073709551616",
  "99999999999999999999999999999999999999", "0.1", "1.7976931348623157e308", "NaN", "Infinity", "01", "1.", ".5", "0x10"];
const STRINGS = ['"r"', '""', '"\\u0000"', '"\\ud800"', '"\\udc00\\ud800"', '"' + "x".repeat(1000) + '"',
  '"room\\"with\\\\escapes"', '"\\uZZZZ"', '"*"', '"user:alice"', '"#"', "null", "true", "{}", "[]"];

function jsonValue(r, depth = 0) {
  if (depth > 4) return r.pick(NUMS.concat(STRINGS));
  switch (r.int(7)) {
    case 0: return r.pick(NUMS);
    case 1: return r.pick(STRINGS);
    case 2: return `[${Array.from({ length: r.int(4) }, () => jsonValue(r, depth + 1)).join(",")}]`;
    case 3: return `{${Array.from({ length: r.int(4) }, () => `${r.pick(STRINGS.slice(0, 9))}:${jsonValue(r, depth + 1)}`).join(",")}}`;
    case 4: return `{"_placeholder":${r.pick(["true", "false", "1", '"x"'])},"num":${r.pick(NUMS)}}`;
    case 5: return `{"room":${r.pick(STRINGS)},"event":${r.pick(STRINGS)},"data":${jsonValue(r, depth + 1)}}`;
    default: return r.pick(["1", '"e"', "null"]);
  }
}

function deepNest(r) {
  const n = r.pick([10, 100, 127, 128, 129, 500, 5000, 20000]);
  const open = r.pick(["[", '{"a":']);
  const close = open === "[" ? "]" : "}";
  return open.repeat(n) + "1" + (r.chance(0.7) ? close.repeat(n) : close.repeat(r.int(n)));
}

/** A Socket.IO packet (without the Engine.IO "4" prefix), valid or nearly so. */
function sioPacket(r) {
  const ns = r.chance(0.8) ? "" : `${r.pick(NAMESPACES)},`;
  const id = r.chance(0.6) ? "" : r.pick(["1", "0", "42", "4294967296", "99999999999999999999", "-1", "1.5", "a"]);
  const ev = r.pick(['"publish"', '"join"', '"leave"', '"other"', '"connect"', '"disconnect"', '"error"', "1", "null", "{}", "[]", '""']);
  const att = r.pick(["0", "1", "2", "-1", "999999", "", "x"]);
  switch (r.int(14)) {
    case 0: return `0${ns}${r.chance(0.5) ? jsonValue(r) : ""}`;
    case 1: return `1${ns}`;
    case 2: return `2${ns}${id}[${ev},${jsonValue(r)}]`;
    case 3: return `2${ns}${id}["publish",{"room":${r.pick(STRINGS)},"event":${r.pick(STRINGS)},"data":${jsonValue(r)}}]`;
    case 4: return `2${ns}${id}["join",${r.pick(STRINGS)}]`;
    case 5: return `3${ns}${id}[${jsonValue(r)}]`;
    case 6: return `5${att}-${ns}${id}[${ev},${jsonValue(r)}]`;
    case 7: return `5${att}-${ns}${id}["publish",{"room":"r","event":"e","data":{"_placeholder":true,"num":${r.pick(NUMS)}}}]`;
    case 8: return `6${att}-${ns}${id}[${jsonValue(r)}]`;
    case 9: return `2${ns}${id}[${ev},${deepNest(r)}]`;
    case 10: return `2${ns}${id}${jsonValue(r)}`;
    case 11: return `${r.pick(["7", "8", "9", "-", " ", ""])}${ns}${jsonValue(r)}`;
    case 12: return `2${ns}["publish",{"room":"r","event":"e","data":${r.pick(NUMS)}}]`;
    default: return `2["publish",{"room":"r","event":"e","data":1}]`;
  }
}

/** An Engine.IO packet as text. */
function eioText(r) {
  switch (r.int(10)) {
    case 0: return r.pick(["2", "3", "2probe", "3probe", "5", "6", "1", "0", "7", ""]);
    case 1: return `b${r.bytes(r.int(64)).toString("base64")}`;
    case 2: return `b${r.pick(["!!!", "=", "A", "AAA=A", ""])}`;
    default: return `4${sioPacket(r)}`;
  }
}

/** Mutate a string or buffer: flips, inserts, deletes, truncation, duplication, invalid UTF-8. */
function mutate(r, input) {
  let b = Buffer.isBuffer(input) ? Buffer.from(input) : Buffer.from(input, "utf8");
  const rounds = 1 + r.int(4);
  for (let k = 0; k < rounds; k++) {
    const at = b.length ? r.int(b.length) : 0;
    switch (r.int(7)) {
      case 0: if (b.length) b[at] ^= 1 << r.int(8); break;
      case 1: b = Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(8)), b.subarray(at)]); break;
      case 2: b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(8)))]); break;
      case 3: b = b.subarray(0, at); break; // truncated
      case 4: b = Buffer.concat([b, b.subarray(at)]); break;
      case 5: b = Buffer.concat([b.subarray(0, at), Buffer.from(r.pick([[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]])), b.subarray(at)]); break;
      default: b = Buffer.concat([b.subarray(0, at), Buffer.from(r.pick(['"', "[", "]", "{", "}", ",", "\\", SEP, "\x00", "-", ":"])), b.subarray(at)]);
    }
  }
  return b;
}

/**
 * One websocket frame: { data: string|Buffer, binary }. Text frames may carry invalid UTF-8
 * (sent as a text opcode with raw bytes).
 */
function wsFrame(r) {
  const k = r.int(100);
  if (k < 10) return { data: r.bytes(r.int(300)), binary: r.chance(0.5) };
  if (k < 50) return { data: eioText(r), binary: false };
  if (k < 85) return { data: mutate(r, eioText(r)), binary: r.chance(0.1) };
  if (k < 95) return { data: r.bytes(r.int(40)), binary: true }; // an attachment
  if (k < 97) return { data: "4" + sioPacket(r) + " ".repeat(MAX_PAYLOAD), binary: false }; // over --max-payload
  return { data: `42["publish",{"room":"r","event":"e","data":${deepNest(r)}}]`, binary: false };
}

/** One long-polling POST body: 1..6 Engine.IO packets joined by \x1e, maybe mutated. */
function pollBody(r) {
  const k = r.int(100);
  if (k < 10) return { body: r.bytes(r.int(300)), frames: 1 };
  const n = 1 + r.int(6);
  const parts = Array.from({ length: n }, () => eioText(r));
  let body = parts.join(SEP);
  if (k < 40) return { body: mutate(r, body), frames: n };
  if (k < 42) body += " ".repeat(MAX_PAYLOAD);
  return { body, frames: n };
}

function badQuery(r, sid) {
  return r.pick([
    `EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`,
    `EIO=3&transport=polling&sid=${encodeURIComponent(sid)}`,
    `EIO=5&transport=polling`,
    `EIO=abc&transport=polling`,
    `EIO=4&transport=carrier-pigeon`,
    `EIO=4&transport=polling&sid=${"A".repeat(r.pick([0, 1, 20, 21, 5000]))}`,
    `EIO=4&transport=polling&sid=%ff%fe`,
    `EIO=4&transport=polling&sid=${encodeURIComponent(sid)}&sid=other`,
    `EIO=4&transport=websocket&sid=${encodeURIComponent(sid)}`,
    `transport=polling`,
    `EIO=4`,
    `EIO=4&transport=polling&j=0&b64=1`,
    `EIO=4&transport=polling&t=${"x".repeat(2000)}`,
    `%%%&&&==`,
  ]);
}

// ---------------------------------------------------------------- health checks

/** Watch a process's output for "panicked" (independent of the harness's output truncation). */
function panicWatch(proc) {
  const st = { hits: [], tail: "" };
  const on = (d) => {
    const s = st.tail + d.toString();
    const i = s.indexOf("panicked");
    if (i >= 0) st.hits.push(s.slice(Math.max(0, i - 200), i + 400));
    st.tail = s.slice(-16);
  };
  proc.child.stdout.on("data", on);
  proc.child.stderr.on("data", on);
  return st;
}

function assertAlive(gw, watch, what) {
  assert.ok(gw.running, `${gw.name} exited after ${what} (FUZZ_SEED=${SEED}):\n${gw.output().slice(-4000)}`);
  assert.deepEqual(watch.hits, [], `${gw.name} panicked after ${what} (FUZZ_SEED=${SEED})`);
}

async function member(url, transport, room) {
  const s = io(url, { forceNew: true, reconnection: false, transports: [transport], timeout: 5000 });
  try {
    await once(s, "connect", 8000);
    assert.deepEqual(await s.timeout(5000).emitWithAck("join", room), { ok: true });
  } catch (e) {
    s.disconnect();
    throw e;
  }
  return s;
}

/** /healthz answers 200 on every node; stock clients connect, join, and a publish round-trips. */
async function healthy(urls, room, transport) {
  for (const u of urls) {
    const h = await fetch(`${u}/healthz`);
    await h.text();
    assert.equal(h.status, 200, `${u}/healthz`);
  }
  const a = await member(urls[0], transport, room);
  const b = await member(urls[urls.length - 1], transport, room);
  try {
    const got = once(b, "fz", 8000);
    const n = Math.random();
    assert.deepEqual(await a.timeout(5000).emitWithAck("publish", { room, event: "fz", data: { n } }), { ok: true });
    assert.deepEqual(await got, { n }, "publish round trip");
  } finally {
    a.disconnect();
    b.disconnect();
  }
}

// ---------------------------------------------------------------- the two fuzzers

/** Send `count` frames over raw websockets (`lanes` in parallel); reconnects whenever closed. */
async function fuzzWebsocket(r, urls, count, lanes = 4) {
  let sent = 0;
  let sessions = 0;
  const lane = async () => {
    while (sent < count) {
      const url = r.pick(urls);
      const upgradeQuery = r.chance(0.05) ? r.pick(["EIO=3&transport=websocket", "EIO=4&transport=polling", "EIO=4&transport=websocket&sid=nope", "EIO=4"]) : "EIO=4&transport=websocket";
      const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?${upgradeQuery}`, { maxPayload: 0 });
      sessions++;
      const open = await new Promise((resolve) => {
        ws.once("open", () => resolve(true));
        ws.once("error", () => resolve(false));
        ws.once("unexpected-response", (_q, res) => { res.resume(); resolve(false); });
      });
      if (!open) { ws.terminate(); sent++; continue; }
      ws.on("error", () => {});
      ws.on("message", (m, isBinary) => { if (!isBinary && m.toString() === "2") ws.send("3"); });
      if (r.chance(0.8)) ws.send(r.pick(["40", "40", "40/chat-1,", `40{"token":"x"}`, "40/x,"]));
      // A burst on this connection, until it closes or the burst ends.
      const burst = 1 + r.int(60);
      for (let i = 0; i < burst && sent < count && ws.readyState === WebSocket.OPEN; i++) {
        const f = wsFrame(r);
        await new Promise((resolve) => ws.send(f.data, { binary: f.binary }, () => resolve()));
        sent++;
      }
      if (r.chance(0.5)) await new Promise((resolve) => setTimeout(resolve, r.int(5)));
      if (r.chance(0.7)) ws.close(); else ws.terminate();
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  return { sent, sessions };
}

async function handshake(url, note) {
  // A failed request (a keep-alive connection the server closed after an error answer) is
  // noted; the batch's liveness checks decide whether the gateway is fine.
  const res = await fetch(`${url}/socket.io/?EIO=4&transport=polling`).catch((e) => {
    note(`handshake ${e.cause?.code ?? e.message}`);
    return null;
  });
  if (!res) return null;
  const text = await res.text();
  if (res.status !== 200 || !text.startsWith("0{")) return null;
  try {
    return JSON.parse(text.slice(1)).sid;
  } catch {
    return null;
  }
}

/** Send `count` frames in long-polling POST bodies (`lanes` in parallel), GETs and upgrade tries between. */
async function fuzzPolling(r, urls, count, lanes = 4) {
  let sent = 0;
  let requests = 0;
  const statuses = new Map();
  const note = (s) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
  const lane = async () => {
    let url = r.pick(urls);
    let sid = null;
    while (sent < count) {
      if (!sid || r.chance(0.02)) {
        url = r.pick(urls);
        sid = await handshake(url, note);
        requests++;
        if (!sid) { sent++; continue; }
        if (r.chance(0.8)) {
          await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, { method: "POST", body: "40" })
            .then((x) => x.arrayBuffer()).catch(() => {});
          requests++;
        }
      }
      const kind = r.int(100);
      try {
        if (kind < 75) {
          const { body, frames } = pollBody(r);
          const q = r.chance(0.9) ? `EIO=4&transport=polling&sid=${encodeURIComponent(sid)}` : badQuery(r, sid);
          const headers = { "content-type": r.pick(["text/plain;charset=UTF-8", "application/octet-stream", "application/json", "x/garbage"]) };
          const res = await fetch(`${url}/socket.io/?${q}`, { method: r.chance(0.95) ? "POST" : r.pick(["PUT", "DELETE", "PATCH"]), body, headers, signal: AbortSignal.timeout(5000) });
          await res.arrayBuffer();
          note(res.status);
          sent += frames;
          if (res.status !== 200 && r.chance(0.5)) sid = null;
        } else if (kind < 90) {
          // A GET poll (short: a pending poll would hold the lane for --ping-interval).
          const q = r.chance(0.7) ? `EIO=4&transport=polling&sid=${encodeURIComponent(sid)}` : badQuery(r, sid);
          const res = await fetch(`${url}/socket.io/?${q}`, { signal: AbortSignal.timeout(r.pick([20, 50, 200])) });
          const text = await res.text();
          note(res.status);
          if (res.status !== 200 || text.split(SEP).includes("1")) sid = null;
          sent++;
        } else if (kind < 96) {
          // Upgrade attempt of this polling session to websocket, with fuzzed probes.
          const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket&sid=${encodeURIComponent(sid)}`);
          const open = await new Promise((resolve) => {
            ws.once("open", () => resolve(true));
            ws.once("error", () => resolve(false));
            ws.once("unexpected-response", (_q, res) => { res.resume(); resolve(false); });
          });
          ws.on("error", () => {});
          if (open) {
            const probes = [r.pick(["2probe", "2", "5", "2probe"]), r.chance(0.5) ? "5" : eioText(r), eioText(r)];
            for (const p of probes.slice(0, 1 + r.int(3))) {
              if (ws.readyState !== WebSocket.OPEN) break;
              ws.send(r.chance(0.2) ? mutate(r, p) : p);
              sent++;
            }
            await new Promise((resolve) => setTimeout(resolve, r.int(10)));
          } else {
            sent++;
          }
          ws.terminate();
          sid = null;
        } else {
          // A plain HTTP request that claims to upgrade, or garbage query params.
          const headers = r.chance(0.5) ? { connection: "Upgrade", upgrade: r.pick(["websocket", "h2c", "x"]), "sec-websocket-version": r.pick(["13", "8", "x"]) } : {};
          const res = await fetch(`${url}/socket.io/?${badQuery(r, sid)}`, { headers, signal: AbortSignal.timeout(2000) }).catch(() => null);
          if (res) { await res.arrayBuffer().catch(() => {}); note(res.status); }
          sent++;
        }
      } catch (e) {
        // aborted / reset by the server: fine, the session is probably gone
        note(e.name === "TimeoutError" ? "timeout" : `error ${e.cause?.code ?? e.message}`);
        sid = null;
        sent++;
      }
      requests++;
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  return { sent, requests, statuses: Object.fromEntries(statuses) };
}

const GATEWAY_ARGS = ["--event-rate", "0", "--namespace", "/,/chat-*", "--max-payload", String(MAX_PAYLOAD)];

async function run(t, { urls, procs, watches, transport, count, seed }) {
  const r = prng(seed);
  let total = 0;
  let batch = 0;
  const extra = {};
  while (total < count) {
    const n = Math.min(BATCH, count - total);
    const res = transport === "websocket" ? await fuzzWebsocket(r, urls, n) : await fuzzPolling(r, urls, n);
    total += res.sent;
    batch++;
    for (const [k, v] of Object.entries(res)) {
      if (k === "sent") continue;
      if (typeof v === "number") extra[k] = (extra[k] ?? 0) + v;
      else for (const [s, c] of Object.entries(v)) (extra[k] ??= {})[s] = (extra[k][s] ?? 0) + c;
    }
    procs.forEach((p, i) => assertAlive(p, watches[i], `${transport} batch ${batch} (${total} frames)`));
    await healthy(urls, `fz-${transport}-${batch}`, "websocket");
    await healthy(urls, `fz-${transport}-${batch}-p`, "polling");
  }
  procs.forEach((p, i) => assertAlive(p, watches[i], `${transport}: all ${total} frames`));
  assert.ok(total >= count, `sent ${total} of ${count}`);
  t.diagnostic(`${transport}: ${total} frames sent in ${batch} batches (seed ${seed}) ${JSON.stringify(extra)}`);
  console.log(`# fuzz-frames ${transport} on ${urls.length} node(s): ${total} frames sent (FUZZ_SEED=${SEED}) ${JSON.stringify(extra)}`);
  return total;
}

for (const transport of ["websocket", "polling"]) {
  test(`one node survives ${FRAMES} random ${transport} frames; stock clients still connect, join and publish`, async (t) => {
    const gw = track(t, await startGateway(GATEWAY_ARGS));
    const watch = panicWatch(gw);
    await healthy([gw.url], "fz-before", "websocket");
    await run(t, { urls: [gw.url], procs: [gw], watches: [watch], transport, count: FRAMES, seed: SEED + (transport === "polling" ? 1 : 0) });
    // The gateway still counts what it refuses (metrics render after all of it).
    const m = await fetch(`${gw.url}/metrics`);
    assert.equal(m.status, 200);
    assert.match(await m.text(), /sio_gateway_connections_total/);
  });
}

test("two nodes over Redis survive random frames on both transports; cross-node publish still works", async (t) => {
  const redis = await startRedis();
  const n1 = await startNode(redis.url, "gateway-1", GATEWAY_ARGS);
  const n2 = await startNode(redis.url, "gateway-2", GATEWAY_ARGS);
  t.after(async () => { await n1.stop(); await n2.stop(); await redis.stop(); });
  const procs = [n1, n2];
  const watches = procs.map(panicWatch);
  const urls = [n1.url, n2.url];
  await healthy(urls, "fz2-before", "websocket");
  const count = Math.max(500, Math.ceil(FRAMES / 5));
  for (const [i, transport] of ["websocket", "polling"].entries()) {
    await run(t, { urls, procs, watches, transport, count, seed: SEED + 2 + i });
  }
  assert.ok(redis.running, "redis-server still up");
  await waitFor(async () => (await fetch(`${n1.url}/readyz`)).status === 200, { what: "node 1 ready" });
});
