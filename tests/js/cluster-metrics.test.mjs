// Metrics that count across nodes: `events_sent_total` counts every delivery on the node that
// writes it, so a message published on node 1 and delivered to a client on node 2 moves node 2's
// counter (it moved neither before). Client publishes and HTTP API emits, 2 nodes, one Redis.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scrapeMetrics, metricSum, track, waitFor } from "../lib/harness.mjs";
import { startCluster, countingClient, waitJoined, API_KEY } from "./cluster-lib.mjs";

const sent = async (node) => metricSum(await scrapeMetrics(node.url + "/metrics"), "sio_gateway_events_sent_total");

test("events_sent_total counts cross-node deliveries on the node that writes them", async (t) => {
  const cluster = await startCluster();
  t.after(() => cluster.stop());
  const [n1, n2] = cluster.nodes;
  // a1, a2 on node 1; b1, b2, b3 on node 2; all in room "m".
  const clients = [
    countingClient(n1.url, { name: "a1", room: "m", transports: ["websocket"] }),
    countingClient(n1.url, { name: "a2", room: "m", transports: ["websocket"] }),
    countingClient(n2.url, { name: "b1", room: "m", transports: ["websocket"] }),
    countingClient(n2.url, { name: "b2", room: "m", transports: ["websocket"] }),
    countingClient(n2.url, { name: "b3", room: "m", transports: ["polling"] }),
  ];
  track(t, ...clients.map((c) => c.socket));
  await waitJoined(clients);
  const before = [await sent(n1), await sent(n2), await sent(cluster.nodes[2])];

  // a1 publishes once: a2 (node 1) and b1..b3 (node 2) get it.
  const ack = await clients[0].socket.timeout(5000).emitWithAck("publish", { room: "m", event: "msg", data: { from: "a1", n: 0 } });
  assert.deepEqual(ack, { ok: true });
  await waitFor(() => clients.slice(1).every((c) => c.total === 1), { what: "4 deliveries" });
  await waitFor(async () => (await sent(n1)) - before[0] === 1 && (await sent(n2)) - before[1] === 3,
    { what: "node 1 counted 1 delivery, node 2 counted 3" });

  // The HTTP API on node 2 emits to the room: node 2 writes 3, node 1 writes 2.
  const r = await fetch(n2.url + "/api/v1/emit", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ rooms: ["m"], event: "msg", data: { from: "api", n: 0 } }),
  });
  assert.equal(r.status, 200);
  await waitFor(() => clients.every((c) => c.got.has("api:0")), { what: "5 API deliveries" });
  await waitFor(async () => (await sent(n1)) - before[0] === 3 && (await sent(n2)) - before[1] === 6,
    { what: "node 1 counted 2 more, node 2 counted 3 more" });
  assert.equal((await sent(cluster.nodes[2])) - before[2], 0, "a node without members counts nothing");
});
