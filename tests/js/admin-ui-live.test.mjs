// The Admin UI's live view of what is done to sockets by others than the socket itself
// (`--admin-ui`, crates/gateway/src/admin; the adapter's room watch), spoken to by a stock
// socket.io-client on the admin namespace as @socket.io/admin-ui's page does:
// - 2 nodes over Redis, the UI on node 1, a socket on node 2: `room_joined` / `room_left` when
//   that socket is joined/left through node 1's HTTP API, through the UI's own `join`/`leave`
//   commands (applied on node 2), and through a Node.js peer's `io.in(id).socketsJoin(room)`;
//   `socket_disconnected` when the UI disconnects it. Each report comes once.
// - 1 node: the same through the HTTP API and the UI's commands (the single-node adapter);
//   `event_sent` for each message of a history replay with `--admin-ui-events`, with its
//   arguments and a timestamp (also for a replay from the Redis stream, in cluster mode), and
//   none without the option.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startGateway, startRedis, track, once, waitFor } from "../lib/harness.mjs";
import { startNode, API_KEY } from "./cluster-lib.mjs";
import { startNodePeer } from "./fixtures/adapter-cluster.mjs";

// bcrypt("s3cret", cost 4), as in admin-ui.test.mjs.
const HASH = "$2b$04$y8Uuy18aR0ciulVx1pbYhed9YaQlZKHhGZ8NloPl3ee1TJRbDhM2e";
const ADMIN = ["--admin-ui", "full", "--admin-ui-password-hash", HASH];

async function admin(t, url) {
  const s = io(`${url}/admin`, {
    forceNew: true, reconnection: false, transports: ["websocket"],
    auth: { username: "admin", password: "s3cret" },
  });
  track(t, s);
  const events = [];
  s.onAny((ev, ...args) => events.push([ev, ...args]));
  await once(s, "connect");
  await waitFor(() => events.some(([e]) => e === "all_sockets"), { what: "all_sockets" });
  return { s, events };
}

async function client(t, url) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  await once(s, "connect");
  return s;
}

async function api(url, path, body) {
  const r = await fetch(`${url}/api/v1${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, `${path}: ${r.status} ${await r.text()}`);
}

/** The room reports (`room_joined`/`room_left`) for socket `id` and `room`. */
const reports = (a, kind, room, id) =>
  a.events.filter(([e, nsp, r, sid]) => e === kind && nsp === "/" && r === room && sid === id);

/** Wait for exactly one `kind` report of `room` for `id` (a second would have come with it). */
async function reported(a, kind, room, id, how) {
  await waitFor(() => reports(a, kind, room, id).length > 0, { what: `${kind} ${room} (${how})` });
  const [[, , , , at]] = reports(a, kind, room, id);
  assert.ok(!Number.isNaN(Date.parse(at)), `a timestamp: ${at}`);
}

test("admin UI, 2 nodes: joins and leaves by the API, the UI and a Node peer on another node's socket are live", async (t) => {
  const redis = track(t, await startRedis());
  const n1 = track(t, await startNode(redis.url, "gateway-1", ADMIN));
  const n2 = track(t, await startNode(redis.url, "gateway-2", ADMIN));
  const peer = track(t, await startNodePeer(redis.url));
  const far = await client(t, n2.url);
  const farId = far.id;
  const a = await admin(t, n1.url);

  // Node 1's HTTP API, for a socket of node 2.
  await api(n1.url, "/sockets/join", { rooms: farId, target_rooms: ["api-room"] });
  await reported(a, "room_joined", "api-room", farId, "HTTP API");
  await api(n1.url, "/sockets/leave", { rooms: farId, target_rooms: ["api-room"] });
  await reported(a, "room_left", "api-room", farId, "HTTP API");
  // Joining a room it is in already changes nothing, and is not reported.
  await api(n1.url, "/sockets/join", { rooms: farId, target_rooms: ["again"] });
  await reported(a, "room_joined", "again", farId, "HTTP API");
  await api(n1.url, "/sockets/join", { rooms: farId, target_rooms: ["again", "ui-room"] });
  await waitFor(() => reports(a, "room_joined", "ui-room", farId).length > 0, { what: "second join" });
  assert.equal(reports(a, "room_joined", "again", farId).length, 1, "an unchanged room is not reported");
  await api(n1.url, "/sockets/leave", { rooms: farId, target_rooms: ["ui-room"] });
  await reported(a, "room_left", "ui-room", farId, "HTTP API");

  // The UI's own commands, sent to node 1, applied by node 2.
  a.s.emit("join", "/", "ui-room", farId);
  await waitFor(() => reports(a, "room_joined", "ui-room", farId).length === 2, { what: "room_joined (UI command)" });
  a.s.emit("leave", "/", "ui-room", farId);
  await waitFor(() => reports(a, "room_left", "ui-room", farId).length === 2, { what: "room_left (UI command)" });

  // A Node.js peer's io.in(<id>).socketsJoin / socketsLeave over the Redis adapter.
  const onPeer = await client(t, peer.url);
  assert.deepEqual(await onPeer.emitWithAck("join-all", { from: farId, room: "node-room" }), { ok: true });
  await reported(a, "room_joined", "node-room", farId, "Node peer socketsJoin");
  assert.deepEqual(await onPeer.emitWithAck("leave-all", { from: farId, room: "node-room" }), { ok: true });
  await reported(a, "room_left", "node-room", farId, "Node peer socketsLeave");

  // Every report above came once.
  for (const [kind, room, n] of [["room_joined", "api-room", 1], ["room_left", "api-room", 1],
    ["room_joined", "ui-room", 2], ["room_left", "ui-room", 2], ["room_joined", "node-room", 1],
    ["room_left", "node-room", 1]]) {
    assert.equal(reports(a, kind, room, farId).length, n, `${kind} ${room}: ${JSON.stringify(a.events.filter(([e]) => e.startsWith("room_")))}`);
  }

  // A disconnect applied on node 2 by the UI's command on node 1.
  const gone = once(far, "disconnect");
  a.s.emit("_disconnect", "/", false, farId);
  await gone;
  await waitFor(() => a.events.some(([e, nsp, id]) => e === "socket_disconnected" && nsp === "/" && id === farId), { what: "socket_disconnected" });
});

/** One node with a history room; the admin, and a replay of 3 messages to a new socket. */
async function replay(t, extra, { redis } = {}) {
  const flags = [...ADMIN, "--history", "chat:*=100", ...extra];
  const gw = track(t, redis
    ? await startNode(redis.url, "gateway-1", flags)
    : await startGateway([...flags, "--api-key", API_KEY]));
  const a = await admin(t, gw.url);
  const first = await client(t, gw.url);
  const at = await first.emitWithAck("join", { room: "chat:r" });
  assert.equal(at.ok, true, JSON.stringify(at));
  for (let i = 0; i < 3; i++) {
    assert.equal((await first.emitWithAck("publish", { room: "chat:r", event: "msg", data: { n: i } })).ok, true);
  }
  const back = await client(t, gw.url);
  const ack = await back.emitWithAck("join", { room: "chat:r", since: { offset: at.offset, epoch: at.epoch } });
  assert.equal(ack.missed, 3, JSON.stringify(ack));
  // The replay's reports left before the join was acknowledged; the API join's report below,
  // made after that ack, is the mark that they had their chance to arrive.
  await api(gw.url, "/sockets/join", { rooms: back.id, target_rooms: ["mark"] });
  await reported(a, "room_joined", "mark", back.id, "single-node HTTP API");
  const sent = a.events.filter(([e, , id]) => e === "event_sent" && id === back.id);
  const received = a.events.filter(([e]) => e === "event_received");
  return { gw, a, first, back, sent, received };
}

test("admin UI, 1 node, --admin-ui-events: event_sent for each replayed message, event_received for join and publish; the API's and the UI's joins live", async (t) => {
  const { a, first, back, sent, received } = await replay(t, ["--admin-ui-events", "true"]);
  assert.equal(sent.length, 3, JSON.stringify(a.events.filter(([e]) => e === "event_sent")));
  // The relay's own events are reported as received, with their argument, as instrument() does.
  const got = (id, ev) => received.filter(([, nsp, sid, args]) => nsp === "/" && sid === id && args[0] === ev);
  assert.deepEqual(got(first.id, "publish").map(([, , , args]) => args[1]),
    [0, 1, 2].map((n) => ({ room: "chat:r", event: "msg", data: { n } })), JSON.stringify(received));
  assert.equal(got(first.id, "join").length, 1);
  const [[, , , [, rejoin], at]] = got(back.id, "join");
  assert.equal(rejoin.room, "chat:r");
  assert.ok(rejoin.since && !Number.isNaN(Date.parse(at)), JSON.stringify(rejoin));
  sent.forEach(([, nsp, , args, at], i) => {
    assert.equal(nsp, "/");
    assert.equal(args[0], "msg");
    assert.deepEqual(args[1], { n: i });
    assert.equal(args[2].room, "chat:r", "the history's mark, as the client got it");
    assert.ok(!Number.isNaN(Date.parse(at)), `a timestamp: ${at}`);
  });
  // The single-node adapter reports the UI's commands too.
  a.s.emit("join", "/", "ui-room", back.id);
  await reported(a, "room_joined", "ui-room", back.id, "single-node UI command");
  a.s.emit("leave", "/", "ui-room", back.id);
  await reported(a, "room_left", "ui-room", back.id, "single-node UI command");
});

test("admin UI, cluster mode, --admin-ui-events: event_sent for each message replayed from the Redis stream", async (t) => {
  const redis = track(t, await startRedis());
  const { a, sent } = await replay(t, ["--admin-ui-events", "true"], { redis });
  assert.equal(sent.length, 3, JSON.stringify(a.events.filter(([e]) => e === "event_sent")));
  assert.deepEqual(sent.map(([, , , args]) => [args[0], args[1]]), [0, 1, 2].map((n) => ["msg", { n }]));
});

test("admin UI, 1 node, without --admin-ui-events: no event_sent, no event_received", async (t) => {
  const { sent, received } = await replay(t, []);
  assert.deepEqual(sent, []);
  assert.deepEqual(received, [], "no event_received either");
});
