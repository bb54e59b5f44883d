// Three real sio-gateway nodes on a private Redis behind a REAL load balancer (Debian HAProxy and
// nginx, the deploy/ configs as they are, via tests/lib/lb.mjs), sticky and plain round robin.
// socket.io-client clients forced to long-polling and clients that upgrade to WebSocket join one
// room and publish to it; every message must reach every other client exactly once, with no
// "xhr poll error", no "Session ID unknown" and no disconnection.
//
// Sticky: clients keep the sio_node cookie (withCredentials, socket.io-client's cookie jar), the
// balancer pins them, so no request needs forwarding. Round robin: consecutive polls of one
// session land on different nodes; the nodes forward them to the owner (counted).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startHaproxy, startNginx } from "../lib/lb.mjs";
import {
  startCluster, metricOver, connectionsPerNode, disconnectAll, countingClient, waitJoined, publishAll, assertAllDelivered,
} from "./cluster-lib.mjs";

let cluster;
before(async () => { cluster = await startCluster(); });
after(async () => { await cluster?.stop(); });

const K = 10; // messages per client

for (const [lbName, start] of [["haproxy", startHaproxy], ["nginx", startNginx]]) {
  for (const variant of ["sticky", "roundrobin"]) {
    test(`${lbName} ${variant}: polling and websocket clients exchange room broadcasts across 3 nodes, no loss`, async (t) => {
      const lb = await start({ variant, backends: cluster.backends });
      t.after(() => lb.stop());
      const room = `${lbName}-${variant}`;
      const forwardsBefore = await metricOver(cluster.nodes, "sio_gateway_polling_forwards_total", 'result="ok"');
      const clients = [];
      for (let i = 0; i < 4; i++) {
        // Round robin: half without cookies at all, so only the Redis sid records can route.
        const withCredentials = variant === "sticky" || i % 2 === 0;
        clients.push(countingClient(lb.url, { name: `poll-${i}`, room, transports: ["polling"], withCredentials }));
        clients.push(countingClient(lb.url, { name: `ws-${i}`, room, withCredentials }));
      }
      try {
        await waitJoined(clients);
        // Let the upgrading clients finish the upgrade (over the balancer) before counting.
        const upgraded = () => clients.filter((c) => c.name.startsWith("ws-")).every((c) => c.socket.io.engine?.transport?.name === "websocket");
        const deadline = Date.now() + 10000;
        while (!upgraded() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        assert.ok(upgraded(), "every ws- client upgraded to websocket through the balancer");
        await publishAll(clients, room, K);
        await assertAllDelivered(clients, K);
        for (const c of clients) {
          assert.deepEqual(c.errors, [], `${c.name}: no connect_error / disconnect`);
          assert.equal(c.connects, 1, `${c.name}: connected once`);
        }
        // The clients really are spread over the nodes.
        const perNode = await connectionsPerNode(cluster.nodes);
        assert.equal(perNode.reduce((a, b) => a + b, 0), clients.length, `connections per node ${perNode}`);
        assert.ok(perNode.filter((x) => x > 0).length >= 2, `spread over nodes: ${perNode}`);
        const forwards = (await metricOver(cluster.nodes, "sio_gateway_polling_forwards_total", 'result="ok"')) - forwardsBefore;
        if (variant === "roundrobin") assert.ok(forwards > 0, "round robin needed forwarding");
        else assert.equal(forwards, 0, "sticky balancer: no request needed forwarding");
      } finally {
        await disconnectAll(clients, cluster.nodes);
      }
    });
  }
}
