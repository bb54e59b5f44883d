// The docker compose topology without a container engine: a private redis-server, three REAL
// gateway nodes configured with the environment of docker-compose.yml's gateway-1..3 (addresses
// made local), and the real HAProxy / nginx with the deploy/ sticky configs in front. Through the
// balancer: the chat page loads, stock socket.io-client connects (long-polling pinned by the
// gateway's sio_node cookie, then the WebSocket upgrade), clients on different nodes chat, and a
// node that drains hands its client over to another node.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { io } from "socket.io-client";
import { ROOT, freePort, startRedis, track, once, waitFor } from "../lib/harness.mjs";
import { startHaproxy, startNginx, NODE_IDS } from "../lib/lb.mjs";
import { gatewayInvocations, startGatewayFast, withPortRetry } from "../lib/deploy.mjs";

const CLIENT_JS = path.join(ROOT, "tests/node_modules/socket.io-client/dist/socket.io.min.js");

/** gateway-1..3 as docker-compose.yml configures them, on 127.0.0.1 free ports. */
async function startComposeNodes(t, redis) {
  const invs = Object.fromEntries(gatewayInvocations().filter((i) => i.source.startsWith("docker-compose"))
    .map((i) => [i.source.split(".").pop(), i]));
  const nodes = [];
  for (const id of NODE_IDS) {
    const gw = await withPortRetry(async () => {
      const port = await freePort();
      const env = Object.fromEntries(Object.entries(invs[id].env).filter(([k]) => k.startsWith("SIO_GATEWAY_")));
      Object.assign(env, {
        SIO_GATEWAY_LISTEN: `127.0.0.1:${port}`,
        SIO_GATEWAY_METRICS_LISTEN: `127.0.0.1:${await freePort()}`,
        SIO_GATEWAY_ADVERTISE: `http://127.0.0.1:${port}`,
        SIO_GATEWAY_REDIS: redis.url,
        SIO_GATEWAY_CLIENT_JS: CLIENT_JS,
        SIO_GATEWAY_LOG_FORMAT: "text",
      });
      const g = await startGatewayFast({ env, port, name: id });
      return Object.assign(g, { metricsUrl: `http://${env.SIO_GATEWAY_METRICS_LISTEN}` });
    });
    nodes.push(track(t, Object.assign(gw, { id, host: "127.0.0.1" })));
  }
  return nodes;
}

/** emitWithAck with a bounded wait and a failure message that says which call it was. */
async function ack(socket, what, ...args) {
  try {
    return await socket.timeout(10000).emitWithAck(...args);
  } catch (e) {
    throw new Error(`${what}: ${e.message} (connected=${socket.connected}, transport=${socket.io.engine?.transport?.name})`);
  }
}

/** Which node answered an Engine.IO handshake through the balancer, from its sticky cookie. */
async function handshakeCookie(url) {
  const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(r.status, 200);
  await r.text();
  const m = (r.headers.get("set-cookie") || "").match(/\bsio_node=([^;]+)/);
  return m ? m[1] : null;
}

for (const [name, start] of [["haproxy", startHaproxy], ["nginx", startNginx]]) {
  test(`compose topology behind ${name} (sticky): chat page, polling pinned by sio_node, upgrade, cross-node chat, HTTP API, drain hand-over`, async (t) => {
    const redis = track(t, await startRedis());
    const nodes = await startComposeNodes(t, redis);
    const lb = track(t, await start({ variant: "sticky", backends: nodes }));

    // The chat page and its client bundle, through the balancer.
    const page = await fetch(`${lb.url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /socket\.io/i);
    assert.equal((await fetch(`${lb.url}/socket.io.min.js`)).status, 200);

    // The gateway names itself in the sticky cookie; the balancer passes it through.
    const cookieNode = await handshakeCookie(lb.url);
    assert.ok(NODE_IDS.includes(cookieNode), `handshake sets sio_node=<node id>, got ${cookieNode}`);

    // Stock clients with a cookie jar (as a browser): `a` long-polls then upgrades to WebSocket,
    // `b` stays on long-polling, so every one of its requests must reach its session's owner.
    const connect = async (opts) => {
      const s = io(lb.url, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500, withCredentials: true, ...opts });
      track(t, s);
      await once(s, "connect", 10000);
      return s;
    };
    const a = await connect({});
    await waitFor(() => a.io.engine.transport.name === "websocket", { what: "upgrade to websocket through the balancer" });
    const b = await connect({ transports: ["polling"] });
    for (let i = 0; i < 5; i++) {
      const r = await ack(b, `b join room-${i}`, "join", `room-${i}`);
      assert.equal(r?.ok, true, `join ack over ${b.io.engine.transport.name}`);
    }
    assert.equal((await ack(a, "a join room-0", "join", "room-0"))?.ok, true);

    // Wherever the two clients landed, Redis carries the publish between nodes.
    const got = once(b, "chat", 10000);
    a.emit("publish", { room: "room-0", event: "chat", data: "hello" });
    assert.equal(await got, "hello");

    // The HTTP API through the balancer, with the compose file's API key (docs/deploying.md's
    // example): every client, on every node, gets the event.
    const apiKey = gatewayInvocations().find((i) => i.source.endsWith("gateway-1")).env.SIO_GATEWAY_API_KEY;
    const fromApi = Promise.all([once(a, "news", 10000), once(b, "news", 10000)]);
    const res = await fetch(`${lb.url}/api/v1/emit`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ event: "news", data: "from the API" }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await fromApi, ["from the API", "from the API"]);

    // Drain the node that holds `a` (known from the nodes' connections gauges): `a` is closed at
    // the transport level and reconnects through the balancer to a node that is still up.
    const conns = async (n) => {
      const text = await (await fetch(`${n.metricsUrl}/metrics`)).text();
      return [...text.matchAll(/^sio_gateway_connections\{[^}]*\} (\d+)/gm)].reduce((x, m) => x + Number(m[1]), 0);
    };
    const counts = await Promise.all(nodes.map(conns));
    assert.equal(counts.reduce((x, y) => x + y, 0), 2, `both clients counted by the nodes' connections gauges: ${counts}`);
    const victim = nodes[counts.findIndex((c) => c > 0)];
    const reconnected = once(a, "connect", 30000);
    victim.signal("SIGTERM");
    await reconnected;
    assert.equal((await ack(a, "a join after drain", "join", "after-drain"))?.ok, true, "a works on its new node");
    assert.equal(await conns(victim).catch(() => 0), 0, "nothing left on the draining node");
    await victim.exited;
  });
}

for (const [name, start] of [["haproxy", startHaproxy], ["nginx", startNginx]]) {
  test(`compose topology behind ${name} (round-robin): long-polling clients keep working (the nodes forward polling requests)`, async (t) => {
    const redis = track(t, await startRedis());
    const nodes = await startComposeNodes(t, redis);
    const lb = track(t, await start({ variant: "roundrobin", backends: nodes }));
    const s = track(t, io(lb.url, { transports: ["polling"], reconnection: false }));
    await once(s, "connect", 10000);
    // Every request of this session is spread over the three nodes by the balancer; two out of
    // three reach a node that does not own the session and must be forwarded.
    for (let i = 0; i < 9; i++) {
      assert.equal((await ack(s, `join room-${i}`, "join", `room-${i}`))?.ok, true);
    }
    assert.ok(s.connected, "still connected after 9 round trips over round-robin long-polling");
    const forwards = await Promise.all(nodes.map(async (n) => {
      const text = await (await fetch(`${n.metricsUrl}/metrics`)).text();
      return Number(text.match(/^sio_gateway_polling_forwards_total\{result="ok"\} (\d+)$/m)?.[1] ?? 0);
    }));
    assert.ok(forwards.reduce((x, y) => x + y, 0) > 0, `some polling requests were forwarded: ${forwards}`);
  });
}
