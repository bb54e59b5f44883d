// The HTTP API (/api/v1) of a single gateway node, driven with fetch against real
// socket.io-client connections: emit (rooms, except, args, binary-free JSON), socketsJoin /
// socketsLeave, disconnectSockets, fetchSockets (presence with user rooms), allRooms; and the
// failure surface: API disabled without a key, no key, wrong key, key rotation, bad JSON,
// missing fields, unknown namespace, oversize body, reserved event names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startGateway, track, once, waitFor, scrapeMetrics, metricSum } from "../lib/harness.mjs";

const KEY = "test-api-key-1";
const KEY2 = "test-api-key-2-rotated";

function client(t, url, nsp = "/", opts = {}) {
  const s = io(url + nsp, { forceNew: true, reconnection: false, transports: ["websocket"], ...opts });
  track(t, s);
  return s;
}
async function connected(s) {
  if (!s.connected) await once(s, "connect");
  return s;
}
function collect(s, event) {
  const got = [];
  s.on(event, (...args) => got.push(args));
  return got;
}
async function api(gw, method, path, body, { key = KEY, raw, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined && !h["content-type"]) h["content-type"] = "application/json";
  const r = await fetch(gw.url + "/api/v1" + path, { method, headers: h, body: payload });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: r.status, body: json, headers: r.headers };
}

test("API disabled without --api-key: every endpoint is 404", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway([]));
  for (const [m, p] of [["POST", "/emit"], ["GET", "/sockets"], ["GET", "/rooms"], ["GET", "/openapi.json"]]) {
    const r = await api(gw, m, p, m === "POST" ? { event: "x" } : undefined);
    assert.equal(r.status, 404, `${m} ${p}`);
    assert.match(r.body.error, /disabled/);
  }
});

test("API keys: missing, wrong, rotated", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway(["--api-key", `${KEY},${KEY2}`]));
  let r = await api(gw, "GET", "/rooms", undefined, { key: null });
  assert.equal(r.status, 401);
  assert.match(r.body.error, /missing API key/);
  assert.match(r.headers.get("www-authenticate"), /Bearer/);
  r = await api(gw, "GET", "/rooms", undefined, { key: "test-api-key-x" });
  assert.equal(r.status, 401);
  assert.equal(r.body.error, "invalid API key");
  r = await api(gw, "GET", "/rooms", undefined, { key: null, headers: { authorization: `Basic ${KEY}` } });
  assert.equal(r.status, 401);
  assert.equal((await api(gw, "GET", "/rooms", undefined, { key: KEY })).status, 200);
  assert.equal((await api(gw, "GET", "/rooms", undefined, { key: KEY2 })).status, 200);
  // The key is checked before the body is even parsed.
  r = await api(gw, "POST", "/emit", undefined, { key: "nope-nope", raw: "{" });
  assert.equal(r.status, 401);
});

test("emit: namespace, rooms, except, several args; counted as broadcasts{origin=http}", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway(["--api-key", KEY, "--namespace", "/,/chat"]));
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => connected(client(t, gw.url))));
  const d = await connected(client(t, gw.url, "/chat"));
  assert.deepEqual(await a.emitWithAck("join", "r1"), { ok: true });
  assert.deepEqual(await b.emitWithAck("join", "r1"), { ok: true });
  assert.deepEqual(await b.emitWithAck("join", "vip"), { ok: true });
  const got = [a, b, c, d].map((s) => collect(s, "news"));

  let r = await api(gw, "POST", "/emit", { rooms: ["r1"], except: "vip", event: "news", data: { n: 1 } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { ok: true });
  await waitFor(() => got[0].length === 1, { what: "a gets news" });
  assert.deepEqual(got[0][0], [{ n: 1 }]);

  // Whole namespace "/", several arguments.
  r = await api(gw, "POST", "/emit", { event: "news", args: [1, "two", { three: 3 }] });
  assert.equal(r.status, 200);
  await waitFor(() => got[2].length === 1, { what: "c gets the namespace-wide emit" });
  assert.deepEqual(got[2][0], [1, "two", { three: 3 }]);
  // Another namespace.
  r = await api(gw, "POST", "/emit", { nsp: "/chat", event: "news", data: "chat only" });
  assert.equal(r.status, 200);
  await waitFor(() => got[3].length === 1, { what: "d in /chat gets it" });
  assert.deepEqual(got[3][0], ["chat only"]);
  // b (in vip) never got the first one; everyone in / got exactly the second.
  await waitFor(() => got[1].length === 1 && got[0].length === 2);
  assert.deepEqual(got[1][0], [1, "two", { three: 3 }]);
  assert.equal(got[2].length, 1);
  assert.equal(got[3].length, 1);

  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_broadcasts_total", 'origin="http"'), 3);
  assert.ok(metricSum(m, "sio_gateway_http_requests_total", 'route="api"') >= 3);
});

test("socketsJoin / socketsLeave / fetchSockets / allRooms / disconnectSockets", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway(["--api-key", KEY]));
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => connected(client(t, gw.url))));
  assert.deepEqual(await a.emitWithAck("join", "team"), { ok: true });
  assert.deepEqual(await b.emitWithAck("join", "team"), { ok: true });
  assert.deepEqual(await a.emitWithAck("join", "only-a"), { ok: true });
  assert.deepEqual(await b.emitWithAck("join", "only-b"), { ok: true });

  let r = await api(gw, "POST", "/sockets/join", { rooms: "team", except: [], target_rooms: ["lobby", "all-team"] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await api(gw, "GET", "/rooms");
  assert.equal(r.status, 200);
  for (const room of ["team", "lobby", "all-team"]) assert.ok(r.body.rooms.includes(room), `${room} in ${r.body.rooms}`);

  r = await api(gw, "GET", "/sockets?room=lobby");
  assert.equal(r.status, 200);
  assert.equal(r.body.total, 2);
  const ids = r.body.sockets.map((s) => s.id).sort();
  assert.deepEqual(ids, [a.id, b.id].sort());
  const sa = r.body.sockets.find((s) => s.id === a.id);
  assert.deepEqual([...sa.rooms].sort(), ["all-team", "lobby", "only-a", "team"]);
  assert.equal(sa.user, null);
  assert.equal(sa.node, (await (await fetch(gw.url + "/readyz")).json()).node_id, "node is the configured node id");

  // Delivery to a room joined through the API.
  const gotA = collect(a, "hello");
  r = await api(gw, "POST", "/emit", { rooms: "all-team", event: "hello", data: 1 });
  assert.equal(r.status, 200);
  await waitFor(() => gotA.length === 1);

  r = await api(gw, "POST", "/sockets/leave", { rooms: ["team"], except: ["only-b"], target_rooms: "lobby" });
  assert.equal(r.status, 200);
  r = await api(gw, "GET", "/sockets?room=lobby");
  assert.deepEqual(r.body.sockets.map((s) => s.id), [b.id]);

  r = await api(gw, "GET", "/sockets?limit=1");
  assert.equal(r.body.total, 3);
  assert.equal(r.body.sockets.length, 1);

  const gone = once(a, "disconnect");
  r = await api(gw, "POST", "/sockets/disconnect", { rooms: ["only-a"] });
  assert.equal(r.status, 200);
  assert.equal((await gone)[0], "io server disconnect");
  assert.ok(b.connected && c.connected);
  r = await api(gw, "GET", "/sockets");
  assert.equal(r.body.total, 2);
});

test("a socket id addresses that socket (rooms / except), as on Node.js; clients cannot join id rooms", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway(["--api-key", KEY, "--max-rooms", "2"]));
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => connected(client(t, gw.url))));
  const got = [a, b, c].map((s) => collect(s, "dm"));
  let r = await api(gw, "POST", "/emit", { rooms: [a.id], event: "dm", data: "to-a" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await api(gw, "POST", "/emit", { except: [a.id, b.id], event: "dm", data: "not-a-b" });
  assert.equal(r.status, 200);
  await waitFor(() => got[0].length === 1 && got[2].length === 1, { what: "a and c get theirs" });
  // A marker after both emits: b got neither, a only its own.
  r = await api(gw, "POST", "/emit", { event: "dm", data: "marker" });
  await waitFor(() => got.every((g) => g.some(([d]) => d === "marker")), { what: "marker everywhere" });
  assert.deepEqual(got.map((g) => g.map(([d]) => d)), [["to-a", "marker"], ["marker"], ["not-a-b", "marker"]]);

  // socketsJoin / disconnectSockets by id.
  r = await api(gw, "POST", "/sockets/join", { rooms: b.id, target_rooms: "picked" });
  assert.equal(r.status, 200);
  r = await api(gw, "GET", "/sockets?room=picked");
  assert.deepEqual(r.body.sockets.map((s) => s.id), [b.id]);
  assert.deepEqual(r.body.sockets[0].rooms, ["picked"], "own-id room left out of the listing");
  const gone = once(c, "disconnect");
  r = await api(gw, "POST", "/sockets/disconnect", { rooms: [c.id] });
  assert.equal(r.status, 200);
  assert.equal((await gone)[0], "io server disconnect");
  assert.ok(a.connected && b.connected);

  // A client cannot join (eavesdrop on) another socket's id room, nor leave its own.
  for (const room of [a.id, b.id]) {
    const ack = await b.emitWithAck("join", room);
    assert.equal(ack.ok, false, `join ${room}`);
    assert.match(ack.error, /own room \(named after its id\)/);
  }
  const leaveOwn = await b.emitWithAck("leave", b.id);
  assert.equal(leaveOwn.ok, false);
  assert.match(leaveOwn.error, /own room/);
  r = await api(gw, "POST", "/emit", { rooms: [a.id], event: "dm", data: "to-a-2" });
  await waitFor(() => got[0].length === 3);
  assert.equal(got[1].filter(([d]) => d === "to-a-2").length, 0, "b did not get a's message");
  r = await api(gw, "POST", "/emit", { rooms: [b.id], event: "dm", data: "to-b" });
  await waitFor(() => got[1].some(([d]) => d === "to-b"), { what: "b still in its own room" });
  // The own-id room does not count toward --max-rooms (2): b is in "picked" and may join one more.
  // Names with the shape of an id but no such socket are ordinary rooms.
  assert.deepEqual(await b.emitWithAck("join", "support-requests"), { ok: true });
  assert.equal((await b.emitWithAck("join", "third")).ok, false);
  assert.deepEqual(await a.emitWithAck("join", "Xz3_k9-abcdefghijklm"), { ok: true });
});

test("bad requests: clear 4xx JSON errors, never 5xx", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway(["--api-key", KEY, "--max-payload", "2000"]));
  const cases = [
    ["POST", "/emit", { raw: "{not json" }, 400, /syntax|JSON|parse/i],
    ["POST", "/emit", { body: { data: 1 } }, 422, /missing field `event`/],
    ["POST", "/emit", { body: { event: "" } }, 400, /event/],
    ["POST", "/emit", { body: { event: "connect" } }, 400, /reserved/],
    ["POST", "/emit", { body: { event: "x", data: 1, args: [1] } }, 400, /not both/],
    ["POST", "/emit", { body: { event: "x", rooms: 5 } }, 422, /.+/],
    ["POST", "/emit", { body: { event: "x", rooms: [""] } }, 400, /rooms/],
    ["POST", "/emit", { body: { event: "x", nsp: "/nope" } }, 404, /unknown namespace `\/nope`/],
    ["POST", "/emit", { raw: JSON.stringify({ event: "x", data: "y".repeat(5000) }) }, 413, /limit/i],
    ["POST", "/emit", { raw: "{}", headers: { "content-type": "text/plain" } }, 415, /Content-Type/i],
    ["POST", "/sockets/join", { body: { rooms: "a" } }, 422, /target_rooms/],
    ["POST", "/sockets/join", { body: { target_rooms: [] } }, 400, /at least one/],
    ["GET", "/sockets?limit=-1", {}, 400, /limit/],
    ["GET", "/rooms?nsp=/zzz", {}, 404, /unknown namespace/],
    ["GET", "/nothing", {}, 404, /no such API endpoint/],
  ];
  for (const [m, p, o, status, re] of cases) {
    const r = await api(gw, m, p, o.body, { raw: o.raw, headers: o.headers });
    assert.equal(r.status, status, `${m} ${p} ${JSON.stringify(o)} -> ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body.error, "string", `${m} ${p}: JSON error body`);
    assert.match(r.body.error, re, `${m} ${p}`);
  }
  // The node is still fine.
  assert.equal((await api(gw, "GET", "/rooms")).status, 200);
});

test("openapi.json describes every served path", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway(["--api-key", KEY, "--history", "r*=10"]));
  const r = await api(gw, "GET", "/openapi.json", undefined, { key: null });
  assert.equal(r.status, 200);
  assert.equal(r.body.openapi, "3.0.3");
  const paths = Object.keys(r.body.paths).sort();
  assert.deepEqual(paths, ["/emit", "/rooms", "/rooms/{room}/history", "/sockets", "/sockets/disconnect", "/sockets/join", "/sockets/leave"]);
  // Every documented path answers (not 404) with the key.
  for (const p of paths) {
    const method = Object.keys(r.body.paths[p])[0].toUpperCase();
    const res = await api(gw, method, p.replace("{room}", "r1"), method === "POST" ? {} : undefined);
    assert.notEqual(res.status, 404, p);
    assert.ok(res.status < 500, p);
  }
});
