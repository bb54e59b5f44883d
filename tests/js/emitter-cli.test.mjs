// End to end: the `sio-emit` CLI (target/debug/sio-emit, built from crates/emitter) publishes on
// a private redis-server, and a real Node socket.io 4.8.1 server with @socket.io/redis-adapter
// 8.3.0 delivers to real socket.io-client sockets: emit to all, to a room, except, join then
// room emit, binary, namespaces, serverSideEmit, disconnect, and clear CLI errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { createClient } from "redis";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { io as ioc } from "socket.io-client";
import { ROOT, startRedis, track, waitFor, once, freePort } from "../lib/harness.mjs";

const BIN = process.env.SIO_EMIT_BIN || path.join(ROOT, "target/debug/sio-emit");

/** Run sio-emit to completion (bounded), resolving { code, stderr }. */
function sioEmit(args, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`sio-emit ${args.join(" ")} timed out`)); }, timeoutMs);
    child.once("exit", (code) => { clearTimeout(timer); resolve({ code, stderr }); });
    child.once("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Record every event a client receives, in order. */
function recorder(socket) {
  const events = [];
  socket.onAny((event, ...args) => events.push([event, ...args]));
  return events;
}

test("sio-emit drives a Node socket.io cluster through Redis", async (t) => {
  assert.ok(fs.existsSync(BIN), `${BIN} missing: run cargo build -p sio-emitter`);
  const redis = await startRedis();
  const pub = createClient({ url: redis.url });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", () => {});
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server({ adapter: createAdapter(pub, sub) });
  t.after(async () => {
    io.close();
    await pub.quit().catch(() => {});
    await sub.quit().catch(() => {});
    await redis.stop();
  });
  io.listen(0);
  const port = io.httpServer.address().port;
  for (const nsp of [io.of("/"), io.of("/admin")]) {
    nsp.on("connection", (s) => s.join(s.handshake.auth.rooms ?? []));
  }
  const sse = [];
  io.on("sse", (...args) => sse.push(args));

  const url = `http://127.0.0.1:${port}`;
  const connect = (nsp, rooms) =>
    track(t, ioc(url + nsp, { transports: ["websocket"], auth: { rooms }, reconnection: false }));
  const c1 = connect("/", ["a"]);
  const c2 = connect("/", ["a", "muted"]);
  const c3 = connect("/", []);
  const admin = connect("/admin", []);
  await Promise.all([c1, c2, c3, admin].map((c) => once(c, "connect")));
  await waitFor(() => io.of("/").adapter.rooms.get("muted")?.size === 1, { what: "rooms joined" });
  const [e1, e2, e3, ea] = [c1, c2, c3, admin].map(recorder);

  const run = async (...args) => {
    const r = await sioEmit(["--redis", redis.url, ...args]);
    assert.equal(r.code, 0, `sio-emit ${args.join(" ")} failed: ${r.stderr}`);
  };
  // A broadcast to everyone after each step: when it has arrived everywhere, any event the
  // step sent (earlier, on the same Redis subscription) has arrived too. No sleeps.
  let markers = 0;
  const barrier = async (recs = [e1, e2, e3]) => {
    const n = ++markers;
    await run("emit", "marker", String(n));
    await waitFor(() => recs.every((e) => e.some(([ev, x]) => ev === "marker" && x === n)), { what: `marker ${n}` });
  };
  const names = (e) => e.map(([ev]) => ev).filter((ev) => ev !== "marker");

  // emit to all, with JSON arguments of every kind
  await run("emit", "all", "1", '{"x":"y"}', '"s"', "[true,null]", "1.5");
  await barrier();
  for (const e of [e1, e2, e3]) assert.deepStrictEqual(e.find(([ev]) => ev === "all"), ["all", 1, { x: "y" }, "s", [true, null], 1.5]);

  // to a room
  await run("--to", "a", "emit", "to-a", '"hi"');
  await barrier();
  assert.deepStrictEqual([names(e1), names(e2), names(e3)], [["all", "to-a"], ["all", "to-a"], ["all"]]);

  // except
  await run("--to", "a", "--except", "muted", "emit", "not-muted");
  await barrier();
  assert.deepStrictEqual([names(e1).at(-1), names(e2).at(-1), names(e3).at(-1)], ["not-muted", "to-a", "all"]);

  // join then emit to the new room
  await run("--to", "a", "join", "newroom");
  await waitFor(() => io.of("/").adapter.rooms.get("newroom")?.size === 2, { what: "join applied" });
  await run("--to", "newroom", "--volatile", "emit", "in-newroom");
  await barrier();
  assert.deepStrictEqual([names(e1).at(-1), names(e2).at(-1), names(e3).at(-1)], ["in-newroom", "in-newroom", "all"]);

  // leave
  await run("--to", "muted", "leave", "newroom");
  await waitFor(() => io.of("/").adapter.rooms.get("newroom")?.size === 1, { what: "leave applied" });

  // binary argument
  await run("--to", "newroom", "emit", "bin", "hex:deadbeef", '"after"');
  await barrier();
  const bin = e1.find(([ev]) => ev === "bin");
  assert.deepStrictEqual([...new Uint8Array(bin[1])], [0xde, 0xad, 0xbe, 0xef]);
  assert.equal(bin[2], "after");
  assert.ok(!names(e2).includes("bin"), "left the room, must not receive");

  // another namespace (leading slash added by the emitter)
  await run("--nsp", "admin", "emit", "adm", '{"n":1}');
  await waitFor(() => ea.length === 1, { what: "admin event" });
  assert.deepStrictEqual(ea[0], ["adm", { n: 1 }]);

  // serverSideEmit reaches the server's handlers
  await run("server-side-emit", "sse", '"x"', "2");
  await waitFor(() => sse.length === 1, { what: "serverSideEmit" });
  assert.deepStrictEqual(sse[0], ["x", 2]);

  // disconnect the muted socket only
  const reason = once(c2, "disconnect");
  await run("--to", "muted", "disconnect");
  assert.equal((await reason)[0], "io server disconnect");
  await barrier([e1, e3]);
  assert.ok(c1.connected && c3.connected && !c2.connected);

  // disconnect --close also closes the underlying connections: the /admin socket, which was not
  // targeted but shares c1's connection (socket.io-client multiplexing), is disconnected too,
  // and the engine has no connection left. Without --close it would stay.
  assert.equal(io.engine.clientsCount, 2);
  const adminGone = once(admin, "disconnect");
  await run("disconnect", "--close");
  await adminGone;
  await waitFor(() => io.engine.clientsCount === 0, { what: "connections closed" });
  assert.ok(!c1.connected && !c3.connected);
});

test("sio-emit reports bad input and unreachable Redis with a non-zero exit", async () => {
  assert.ok(fs.existsSync(BIN), `${BIN} missing: run cargo build -p sio-emitter`);
  let r = await sioEmit(["--redis", "redis://127.0.0.1:1", "emit", "ev", "{bad json"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /argument 1 is not valid JSON/);
  const port = await freePort(); // nothing listens there
  r = await sioEmit(["--redis", `redis://127.0.0.1:${port}`, "--connect-timeout", "2", "emit", "ev", "1"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot connect to Redis|timed out connecting/);
  r = await sioEmit(["--redis", "redis://127.0.0.1:1", "emit", "connect"]);
  assert.notEqual(r.code, 0);
  r = await sioEmit(["--redis", "not a url", "emit", "ev"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /invalid Redis URL/);
});
