// sio-redis-adapter on a real 3-primary Redis Cluster (redis-cluster:// URL): broadcasts
// propagate, and the server count (PUBSUB NUMSUB summed over every primary, as Node does) lets
// fetchSockets / serverSideEmit complete across nodes attached to different cluster nodes.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { startProcess, freePort, waitForPort, track, waitFor } from "../lib/harness.mjs";
import { startTestNode, connect, ask, received } from "./fixtures/adapter-cluster.mjs";

async function redisCluster(t, n = 3) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-rcluster-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ports = [];
  for (let i = 0; i < n; i++) {
    const port = await freePort();
    ports.push(port);
    track(t, startProcess(process.env.REDIS_SERVER || "redis-server", [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${port}.conf`),
      "--dir", dir, "--protected-mode", "no",
    ], { name: `rcluster:${port}` }));
    await waitForPort(port);
  }
  execFileSync("redis-cli", ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`),
    "--cluster-replicas", "0", "--cluster-yes"], { stdio: "ignore", timeout: 20000 });
  await waitFor(() => ports.every((p) =>
    execFileSync("redis-cli", ["-p", String(p), "cluster", "info"]).toString().includes("cluster_state:ok")),
  { what: "cluster_state:ok", timeoutMs: 20000, intervalMs: 200 });
  return ports;
}

test("adapter on a Redis Cluster", { timeout: 60000 }, async (t) => {
  const ports = await redisCluster(t);
  const n1 = track(t, await startTestNode(`redis-cluster://127.0.0.1:${ports[0]}`));
  const n2 = track(t, await startTestNode(`redis-cluster://127.0.0.1:${ports[1]}`));
  const a = track(t, await connect(n1.url));
  const b = track(t, await connect(n2.url));

  // Each primary only counts its own subscribers; the sum is the number of nodes.
  const perNode = ports.map((p) =>
    Number(execFileSync("redis-cli", ["-p", String(p), "pubsub", "numsub", "socket.io-request#/#"]).toString().trim().split("\n")[1]));
  assert.equal(perNode.reduce((x, y) => x + y, 0), 2, `per primary: ${perNode}`);
  t.diagnostic(`request-channel subscribers per primary: ${perNode.join(",")}`);

  await ask(a, "to-room", { event: "c-all", data: 1 });
  await received(b, "c-all");
  await ask(b, "join", "c-room");
  await ask(a, "to-room", { room: "c-room", event: "c-room-msg", data: 2 });
  await received(b, "c-room-msg");

  const f = await ask(a, "fetch", {});
  assert.equal(f.complete, true, JSON.stringify(f));
  assert.deepEqual([...f.ids].sort(), [a.id, b.id].sort());
  const sse = await ask(b, "server-side-emit", ["hello-sse", "c"]);
  assert.equal(sse.complete, true);
  assert.equal(sse.responses.length, 1);
  assert.equal(sse.responses[0].port, n1.port);
  assert.equal((await n1.stats()).subscriberAlive, true);
});
