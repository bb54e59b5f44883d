// A gateway node's room channels follow its sockets' membership (private Redis, a real
// sio-gateway with --redis, socket.io-client, PUBSUB NUMSUB): a socket's own-id channel is
// subscribed once it connects, a room's channel before the join is acknowledged, and both are
// unsubscribed soon after a leave or a disconnection. The gateway reports each of these
// changes to the adapter, whose full reconciliation (listing every local membership) otherwise
// runs only every 10 s as a safety net: without the reports, the unsubscriptions below would
// take up to 10 s and the 3 s bounds fail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startRedis, track, once, waitFor } from "../lib/harness.mjs";
import { startNode } from "./cluster-lib.mjs";
import { redisClient } from "./fixtures/adapter-cluster.mjs";

const numsub = async (rc, ch) => Number((await rc.sendCommand(["PUBSUB", "NUMSUB", ch]))[1]);
const SOON = 3000; // well under the 10 s safety net

async function client(t, url) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  if (!s.connected) await once(s, "connect");
  return s;
}

test("cluster: room channels follow joins, leaves and disconnections within a tick", { timeout: 60_000 }, async (t) => {
  const redis = track(t, await startRedis());
  const node = track(t, await startNode(redis.url, "gateway-1"));
  const rc = track(t, await redisClient(redis.url));
  const room = "socket.io#/#topic#";

  const a = await client(t, node.url);
  const own = `socket.io#/#${a.id}#`;
  await waitFor(async () => (await numsub(rc, own)) === 1, { what: "own-id channel after connecting", timeoutMs: SOON });

  // A join is acknowledged once the room's channel is subscribed.
  assert.deepEqual(await a.emitWithAck("join", "topic"), { ok: true });
  assert.equal(await numsub(rc, room), 1, "subscribed before the join's ack");

  assert.deepEqual(await a.emitWithAck("leave", "topic"), { ok: true });
  await waitFor(async () => (await numsub(rc, room)) === 0, { what: "room channel after the leave", timeoutMs: SOON });

  // Joined again, then the socket goes: both of its channels are dropped.
  assert.deepEqual(await a.emitWithAck("join", "topic"), { ok: true });
  assert.equal(await numsub(rc, room), 1);
  a.disconnect();
  await waitFor(async () => (await numsub(rc, room)) === 0, { what: "room channel after the disconnection", timeoutMs: SOON });
  await waitFor(async () => (await numsub(rc, own)) === 0, { what: "own-id channel after the disconnection", timeoutMs: SOON });

  // Connections arriving together are subscribed together, each on its own channel.
  const many = await Promise.all(Array.from({ length: 20 }, () => client(t, node.url)));
  for (const s of many) {
    await waitFor(async () => (await numsub(rc, `socket.io#/#${s.id}#`)) === 1, { what: `own-id channel of ${s.id}`, timeoutMs: SOON });
  }
  for (const s of many) s.disconnect();
  for (const s of many) {
    await waitFor(async () => (await numsub(rc, `socket.io#/#${s.id}#`)) === 0, { what: `${s.id}'s channel dropped`, timeoutMs: SOON });
  }
});
