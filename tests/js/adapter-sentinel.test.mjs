// sio-redis-adapter reaching Redis through Sentinel (redis-sentinel:// URL): a real
// redis-server in sentinel mode monitors a private master; our node finds the master through
// it and exchanges broadcasts with a Node.js peer connected to the master directly.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRedis, startProcess, freePort, waitForPort, track, waitFor } from "../lib/harness.mjs";
import { startTestNode, startNodePeer, connect, ask, received } from "./fixtures/adapter-cluster.mjs";

test("adapter sentinel: redis-sentinel:// URL finds the master", { timeout: 60000 }, async (t) => {
  const redis = track(t, await startRedis());
  const sport = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-sentinel-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const conf = path.join(dir, "sentinel.conf");
  fs.writeFileSync(conf, [
    `port ${sport}`,
    "bind 127.0.0.1",
    `dir ${dir}`,
    `sentinel monitor mymaster 127.0.0.1 ${redis.port} 1`,
    "sentinel down-after-milliseconds mymaster 2000",
    "",
  ].join("\n"));
  const sentinel = track(t, startProcess(process.env.REDIS_SERVER || "redis-server", [conf, "--sentinel"], { name: `sentinel:${sport}` }));
  await waitForPort(sport);

  const ours = track(t, await startTestNode(`redis-sentinel://127.0.0.1:${sport}/0?sentinelServiceName=mymaster`));
  const node = track(t, await startNodePeer(redis.url));
  const a = track(t, await connect(ours.url));
  const n = track(t, await connect(node.url));
  await ask(a, "to-room", { event: "via-sentinel", data: "rust" });
  await received(n, "via-sentinel", (d) => d === "rust");
  await ask(n, "to-room", { event: "via-sentinel", data: "node" });
  await received(a, "via-sentinel", (d) => d === "node");
  const s = await ours.stats();
  assert.equal(s.redisUp, true);
  await waitFor(async () => (await ours.stats()).subscriberAlive, { what: "probe through sentinel-found master" });
  assert.equal(sentinel.running, true);
});
