// The backend features across a cluster (private Redis, real sio-gateway nodes with --redis):
// an API emit on one node reaches clients of another; fetchSockets / allRooms / socketsJoin /
// disconnectSockets are cluster-wide; user:<sub> (JWT) reaches a user's devices on every node;
// the upstream stream uses --redis when no --upstream-redis is given; an API publish while
// Redis is down answers 503, never a silent 200, and says which local sockets got it.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { io } from "socket.io-client";
import { startRedis, track, once, waitFor } from "../lib/harness.mjs";
import { startNode, API_KEY } from "./cluster-lib.mjs";

const SECRET = "jwt-cluster-secret-0123456789";
const b64u = (b) => Buffer.from(b).toString("base64url");
function jwt(claims) {
  const input = `${b64u(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${b64u(JSON.stringify(claims))}`;
  return `${input}.${crypto.createHmac("sha256", SECRET).update(input).digest("base64url")}`;
}
const token = (sub) => jwt({ sub, exp: Math.floor(Date.now() / 1000) + 600 });

function client(t, url, opts = {}) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"], ...opts });
  track(t, s);
  return s;
}
async function connected(s) {
  if (!s.connected) await once(s, "connect");
  return s;
}
async function api(node, method, p, body) {
  const r = await fetch(node.url + "/api/v1" + p, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}
function collect(s, event) {
  const got = [];
  s.on(event, (...a) => got.push(a));
  return got;
}

test("cluster: API and auth rooms span every node; 503 when Redis is down", { timeout: 90_000 }, async (t) => {
  const redis = track(t, await startRedis());
  // Joins allowed by the rules, so that the socket-id check (after them) is what refuses.
  const auth = ["--auth", "jwt", "--jwt-secret", SECRET, "--upstream", "redis-stream", "--can-join", "*"];
  const a = track(t, await startNode(redis.url, "gateway-1", auth));
  const b = track(t, await startNode(redis.url, "gateway-2", auth));

  const phone = await connected(client(t, a.url, { auth: { token: token("alice") } }));
  const laptop = await connected(client(t, b.url, { auth: { token: token("alice") } }));
  const bob = await connected(client(t, b.url, { auth: { token: token("bob") } }));
  const got = [phone, laptop, bob].map((s) => collect(s, "dm"));

  // user:<sub> across nodes, from the API of either node.
  let r = await api(a, "POST", "/emit", { rooms: "user:alice", event: "dm", data: "hi alice" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await waitFor(() => got[0].length === 1 && got[1].length === 1, { what: "alice on both nodes" });
  assert.equal(got[2].length, 0);

  // A socket id addresses that socket on whichever node it lives (rooms and except).
  r = await api(a, "POST", "/emit", { rooms: [laptop.id], event: "dm", data: "to laptop" });
  assert.equal(r.status, 200);
  // Node a's emit reaches node b through Redis, node b's own is delivered there at once: wait
  // for the first before sending the second, so the order below is the order they were sent.
  await waitFor(() => got[1].length === 2, { what: "the laptop got node a's emit" });
  r = await api(b, "POST", "/emit", { rooms: "user:alice", except: [phone.id], event: "dm", data: "not phone" });
  assert.equal(r.status, 200);
  await waitFor(() => got[1].length === 3, { what: "laptop gets both" });
  assert.deepEqual(got[1].map(([d]) => d), ["hi alice", "to laptop", "not phone"]);
  r = await api(a, "POST", "/emit", { rooms: "user:alice", event: "dm", data: "marker" });
  await waitFor(() => got[0].length === 2, { what: "marker on the phone" });
  assert.deepEqual(got[0].map(([d]) => d), ["hi alice", "marker"]);
  assert.equal(got[2].length, 0);

  // bob (node b) cannot join the own room of alice's phone (node a): checked cluster-wide.
  const spy = await bob.emitWithAck("join", phone.id);
  assert.equal(spy.ok, false, JSON.stringify(spy));
  assert.match(spy.error, /own room/);

  // fetchSockets is cluster-wide (asked on node a, bob lives on node b).
  r = await api(a, "GET", "/sockets");
  assert.equal(r.status, 200);
  assert.equal(r.body.total, 3);
  const users = Object.fromEntries(r.body.sockets.map((s) => [s.id, s.user]));
  assert.deepEqual(users, { [phone.id]: "alice", [laptop.id]: "alice", [bob.id]: "bob" });
  const bobEntry = r.body.sockets.find((s) => s.id === bob.id);
  assert.deepEqual(bobEntry.rooms, ["user:bob"]);

  // socketsJoin from node a moves sockets on node b; allRooms from node b sees it.
  r = await api(a, "POST", "/sockets/join", { rooms: "user:bob", target_rooms: "escalations" });
  assert.equal(r.status, 200);
  await waitFor(async () => (await api(b, "GET", "/rooms")).body.rooms.includes("escalations"), { what: "allRooms" });
  const gotBob = collect(bob, "page");
  r = await api(a, "POST", "/emit", { rooms: "escalations", event: "page", data: 1 });
  assert.equal(r.status, 200);
  await waitFor(() => gotBob.length === 1, { what: "bob paged through a room joined by API" });

  // Upstream stream on the cluster's Redis.
  const ack = await bob.emitWithAck("report", { x: 1 });
  assert.equal(ack.ok, true);
  assert.match(ack.id, /^\d+-\d+$/);

  // disconnectSockets across nodes.
  const gone = once(bob, "disconnect");
  r = await api(a, "POST", "/sockets/disconnect", { rooms: "user:bob" });
  assert.equal(r.status, 200);
  assert.equal((await gone)[0], "io server disconnect");

  // Redis down: an API publish is answered 503 with a JSON reason, and the body says what did
  // happen: this node's own sockets got it (phone, on node a), the other nodes did not.
  await redis.stop();
  const before = got[0].length;
  r = await api(a, "POST", "/emit", { rooms: "user:alice", event: "dm", data: "local only" });
  assert.equal(r.status, 503, JSON.stringify(r.body));
  assert.match(r.body.error, /^adapter unavailable: delivered on this node \(1 sockets\); delivery to other nodes not confirmed/);
  assert.equal(r.body.local, 1, JSON.stringify(r.body));
  assert.equal(r.body.cluster, false);
  await waitFor(() => got[0].length === before + 1, { what: "the phone (node a) got it" });
  assert.equal(got[0].at(-1)[0], "local only");
  r = await api(a, "GET", "/sockets");
  assert.equal(r.status, 503, JSON.stringify(r.body));
});
