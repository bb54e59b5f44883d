// Long-polling requests repeated or overlapped the way a dying forwarder and a retrying balancer
// produce them (crates/gateway/src/polling.rs), on one node with raw HTTP so each case is exact:
// - a second poll while the first is still held takes over (the first gets a NOOP) instead of
//   closing the session ("multiple polling");
// - a poll repeated with the same cache-buster `t` (a balancer's retry of a poll whose answer
//   was lost) gets that answer again, not new packets, and nothing is lost;
// - a post repeated with the same `t` is applied once.
// tests/js/faults-node.test.mjs is the same under a real SIGKILL behind HAProxy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startGateway, track, once, sleep } from "../lib/harness.mjs";

const SEP = "\x1e";

async function session(url) {
  const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
  const body = await r.text();
  assert.equal(r.status, 200, body);
  const key = JSON.parse(body.slice(1)).sid;
  const q = (t) => `${url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(key)}&t=${t}`;
  let pongs = 0;
  // `text`: the answer as it came; `packets`: without pings (each answered with a pong).
  const get = async (t) => {
    const r = await fetch(q(t));
    const text = await r.text();
    const packets = [];
    for (const p of text.split(SEP)) {
      if (p === "2") await post(`pong${pongs++}`, ["3"]);
      else packets.push(p);
    }
    return { status: r.status, text, packets: packets.join(SEP) };
  };
  const post = async (t, packets) => {
    const r = await fetch(q(t), { method: "POST", body: packets.join(SEP), headers: { "content-type": "text/plain;charset=UTF-8" } });
    return { status: r.status, text: await r.text() };
  };
  assert.deepEqual(await post("c0", ["40"]), { status: 200, text: "ok" });
  // engineioxide pings a new session at once (within a timer tick of the handshake), before or
  // after the CONNECT ack: poll (answering it) until both came, so that no later poll of the
  // test is answered with that ping.
  let ack = "";
  let pinged = false;
  for (let i = 1; i < 6 && !(ack && pinged); i++) {
    const r = await get(`c${i}`);
    ack += r.packets;
    pinged ||= r.text.split(SEP).includes("2");
  }
  assert.match(ack, /^40\{"sid":/, "CONNECT ack");
  assert.ok(pinged, "the session's first ping");
  return { get, post };
}

test("polling: a newer poll takes over a held one, a retried poll gets its lost answer, a retried post is applied once", async (t) => {
  const gw = await startGateway([]);
  track(t, gw);
  const s = await session(gw.url);

  // 1. A poll held by the engine (nothing to send), then another one: the first gives way.
  const first = s.get("held");
  await sleep(200);
  const second = s.get("next");
  const held = await first;
  assert.deepEqual([held.status, held.text], [200, "6"], "the held poll is answered NOOP");
  assert.equal((await s.post("p1", ['420["join","r"]'])).text, "ok");
  const got = await second;
  assert.equal(got.status, 200, got.text);
  assert.equal(got.packets, '430[{"ok":true}]', "the newer poll serves the session");

  // 2. The same poll again (a balancer's retry after the answer was lost): the same answer.
  const again = await s.get("next");
  assert.deepEqual(again, got, "a retried poll gets the answer its first try lost");

  // 3. A post applied once even when repeated: one message reaches the room's member.
  const member = io(gw.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  track(t, member);
  await once(member, "connect");
  assert.deepEqual(await member.emitWithAck("join", "r"), { ok: true });
  const seen = [];
  member.on("m", (x) => seen.push(x));
  const pub = '421["publish",{"room":"r","event":"m","data":"once"}]';
  assert.deepEqual(await s.post("p2", [pub]), { status: 200, text: "ok" });
  assert.deepEqual(await s.post("p2", [pub]), { status: 200, text: "ok" }, "the retry is answered ok");
  const acks = await s.get("after");
  assert.equal(acks.packets, '431[{"ok":true}]', "one publish ack, not two");
  await sleep(300);
  assert.deepEqual(seen, ["once"]);

  // The session is alive and well after all this.
  assert.equal((await s.post("p3", ['422["leave","r"]'])).text, "ok");
  assert.equal((await s.get("last")).packets, '432[{"ok":true}]');
});
