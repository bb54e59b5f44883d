// Reverse direction of the sio-wire fixtures: bytes ENCODED BY sio-wire
// (tests/fixtures/wire/rust-vectors.json, kept current by crates/wire/tests/rust_vectors.rs)
// are decoded by the real notepack.io, and published on a private Redis to a real socket.io
// 4.8.1 server with @socket.io/redis-adapter 8.3.0, whose clients and responses are checked.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { createClient } from "redis";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { io as ioc } from "socket.io-client";
import { ROOT, startRedis, track, waitFor, once } from "../lib/harness.mjs";

// notepack.io is the codec @socket.io/redis-adapter itself loads (pinned through its lockfile entry).
const require = createRequire(path.join(ROOT, "tests/node_modules/@socket.io/redis-adapter/dist/index.js"));
const notepack = require("notepack.io");

const { vectors } = JSON.parse(fs.readFileSync(path.join(ROOT, "tests/fixtures/wire/rust-vectors.json"), "utf8"));
const byName = Object.fromEntries(vectors.map((v) => [v.name, v]));
const bytesOf = (v) => Buffer.from(v.hex, "hex");

// Decoded JS value -> the `expect` form written by the Rust side.
function normalize(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("hex") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("hex") };
  if (v instanceof Date) return { $date: v.getTime() };
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

test("notepack.io / JSON.parse decode every sio-wire vector to the expected value", () => {
  assert.ok(vectors.length >= 10);
  for (const v of vectors) {
    const bytes = bytesOf(v);
    const decoded = bytes[0] === 0x7b ? JSON.parse(bytes.toString()) : notepack.decode(bytes);
    assert.deepStrictEqual(normalize(decoded), v.expect, v.name);
    if (bytes[0] !== 0x7b) {
      // and notepack re-encodes the decoded value to the very same bytes
      assert.equal(notepack.encode(decoded).toString("hex"), v.hex, `${v.name}: notepack re-encoding differs`);
    }
  }
});

test("a real socket.io + redis-adapter node acts on sio-wire messages", async (t) => {
  const redis = await startRedis();
  const clients = [];
  const client = () => {
    const c = createClient({ url: redis.url });
    c.on("error", () => {}); // reconnect noise after redis-server stops at the end
    clients.push(c);
    return c;
  };
  const [pub, sub, spy, adapterPub] = [client(), client(), client(), client()];
  await Promise.all([pub, sub, spy, adapterPub].map((c) => c.connect()));
  const io = new Server({ adapter: createAdapter(adapterPub, sub) });
  // Cleanup runs after the socket.io clients tracked below are closed (hooks run in order).
  t.after(async () => {
    io.close();
    for (const c of clients) await c.quit().catch(() => {});
    await redis.stop();
  });
  const seen = [];
  await spy.pSubscribe("socket.io-response#*", (msg, channel) => seen.push({ channel: channel.toString(), msg }), true);

  io.listen(0);
  const port = io.httpServer.address().port;
  io.on("connection", (s) => s.join(s.handshake.auth.rooms ?? []));
  const sse = [];
  io.on("sse", (...args) => sse.push(args));

  const c1 = track(t, ioc(`http://127.0.0.1:${port}`, { transports: ["websocket"], auth: { rooms: ["room1"] } }));
  const c2 = track(t, ioc(`http://127.0.0.1:${port}`, { transports: ["websocket"], auth: { rooms: ["room1", "skip"] } }));
  await Promise.all([once(c1, "connect"), once(c2, "connect")]);
  await waitFor(() => io.of("/").adapter.rooms.get("skip")?.size === 1, { what: "rooms joined" });

  const publish = (name) => pub.publish(byName[name].channel, bytesOf(byName[name]));

  // broadcast to all: every argument type arrives as the Node client would see it
  let got = once(c1, "hello");
  const all = [];
  c1.once("hello", (...a) => all.push(...a));
  await publish("broadcast_all");
  await got;
  assert.deepStrictEqual(all.slice(0, 8), ["world", 1, 300, -5, 1.5, null, true, { a: [1, 2] }]);
  assert.ok(Buffer.isBuffer(all[8]) || all[8] instanceof ArrayBuffer);
  assert.deepStrictEqual([...new Uint8Array(all[8])], [1, 2, 3]);
  assert.deepStrictEqual(all.slice(9), ["é€😀", "x".repeat(40), "2023-11-14T22:13:20.123Z"]);

  // room channel
  got = once(c1, "to-room");
  await publish("broadcast_room");
  assert.equal(await got, "r1");

  // rooms + except: c2 is in "skip" and must not get it; c1 gets it exactly once
  const multi2 = [];
  c2.on("multi", (x) => multi2.push(x));
  got = once(c1, "multi");
  await publish("broadcast_rooms_except_flags");
  assert.equal(await got, 2);

  // binary that came from socketioxide's placeholder form
  const bin = [];
  c1.once("bin", (...a) => bin.push(...a));
  got = once(c1, "bin");
  await publish("broadcast_from_socketioxide_binary");
  await got;
  assert.deepStrictEqual([...new Uint8Array(bin[0].file)], [0xde, 0xad, 0xbe, 0xef]);
  assert.equal(bin[1], "t");

  // sockets join request: both sockets in room1 now also in "joined"
  await publish("request_sockets_join");
  await waitFor(() => io.of("/").adapter.rooms.get("joined")?.size === 2, { what: "remote join applied" });

  // serverSideEmit request reaches the server's handlers
  await publish("request_server_side_emit");
  await waitFor(() => sse.length === 1, { what: "serverSideEmit delivered" });
  assert.deepStrictEqual(sse[0], [1, { k: "v" }]);

  // fetchSockets request: the Node node answers on the response channel
  await publish("request_fetch_sockets");
  const fetchResp = await waitFor(() => seen.find((m) => m.msg[0] === 0x7b && JSON.parse(m.msg).requestId === "rq0001"), { what: "fetch response" });
  const sockets = JSON.parse(fetchResp.msg).sockets;
  assert.equal(sockets.length, 2);
  assert.ok(sockets.every((s) => s.rooms.includes("room1") && s.rooms.includes("joined")));

  // broadcast with ack (msgpack request): client count (JSON) then one msgpack ack per client
  c1.on("ask", (n, cb) => cb({ ok: n }));
  c2.on("ask", (n, cb) => cb({ ok: n + 1 }));
  await publish("request_broadcast_with_ack");
  await waitFor(() => seen.filter((m) => m.msg[0] !== 0x7b).length === 2, { what: "two acks" });
  const count = seen.find((m) => m.msg[0] === 0x7b && JSON.parse(m.msg).type === 8);
  assert.deepStrictEqual(JSON.parse(count.msg), { type: 8, requestId: "rq0002", clientCount: 2 });
  const acks = seen.filter((m) => m.msg[0] !== 0x7b).map((m) => notepack.decode(m.msg));
  assert.deepStrictEqual(acks.map((a) => a.packet.ok).sort(), [7, 8]);
  assert.ok(acks.every((a) => a.type === 9 && a.requestId === "rq0002"));

  assert.deepStrictEqual(multi2, [], "the except room was not excluded");
});

test("a real socket.io node with the SHARDED redis-adapter acts on sio-wire cluster messages", async (t) => {
  const redis = await startRedis();
  const clients = [];
  const client = () => {
    const c = createClient({ url: redis.url });
    c.on("error", () => {});
    clients.push(c);
    return c;
  };
  const [pub, sub, spy, adapterPub] = [client(), client(), client(), client()];
  await Promise.all([pub, sub, spy, adapterPub].map((c) => c.connect()));
  const io = new Server({ adapter: createShardedAdapter(adapterPub, sub) });
  t.after(async () => {
    io.close();
    for (const c of clients) await c.quit().catch(() => {});
    await redis.stop();
  });
  // Responses to our (Rust) uid come on key#nsp#<uid>#.
  const responses = [];
  await spy.sSubscribe("socket.io#/#0123456789abcdef#", (msg) => responses.push(msg), true);
  io.listen(0);
  const port = io.httpServer.address().port;
  io.on("connection", (s) => s.join(s.handshake.auth.rooms ?? []));
  const sse = [];
  io.on("sse", (...args) => sse.push(args));
  const c1 = track(t, ioc(`http://127.0.0.1:${port}`, { transports: ["websocket"], auth: { rooms: ["room1"] } }));
  const c2 = track(t, ioc(`http://127.0.0.1:${port}`, { transports: ["websocket"], auth: { rooms: ["skip"] } }));
  await Promise.all([once(c1, "connect"), once(c2, "connect")]);
  // The sharded adapter SSUBSCRIBEs the dynamic room channel once the room exists.
  await waitFor(async () => (await pub.sendCommand(["PUBSUB", "SHARDNUMSUB", "socket.io#/#room1#"]))[1] >= 1,
    { what: "dynamic room channel subscribed" });
  const publish = (name) => {
    assert.ok(byName[name].sharded, name);
    return pub.sPublish(byName[name].channel, bytesOf(byName[name]));
  };

  let got = once(c1, "s-room");
  await publish("sharded_broadcast_room");
  assert.equal(await got, "r1");

  const bin2 = [];
  c2.on("s-bin", (x) => bin2.push(x));
  got = once(c1, "s-bin");
  await publish("sharded_broadcast_binary");
  assert.deepStrictEqual([...new Uint8Array(await got)], [9, 9]);

  await publish("sharded_sockets_join");
  await waitFor(() => io.of("/").adapter.rooms.get("s-joined")?.size === 1, { what: "sharded join applied" });

  await publish("sharded_server_side_emit");
  await waitFor(() => sse.length === 1, { what: "sharded serverSideEmit" });
  assert.deepStrictEqual(sse[0], [3]);

  await publish("sharded_fetch_sockets");
  await waitFor(() => responses.length === 1, { what: "fetchSockets response on our uid channel" });
  const resp = JSON.parse(responses[0].toString());
  assert.equal(resp.type, 8);
  assert.equal(resp.data.requestId, "rq0004");
  assert.equal(resp.data.sockets.length, 2);
  assert.deepStrictEqual(bin2, [], "the except room was not excluded");
});
