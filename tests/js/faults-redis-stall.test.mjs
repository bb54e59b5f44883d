// A Redis stall under a 2-node cluster (issue 14 item 5): Redis is SIGSTOPped for 7 s (longer
// than the 3 s Redis command timeout) and SIGCONTed, while stock socket.io-client members
// (websocket and polling) sit in one room on both nodes and a client on node 1 publishes to it
// every 25 ms. Unlike a killed Redis, a stopped one keeps its TCP connections open and accepts
// new ones: nothing fails fast, every command just waits. Asserted and printed:
// - the stall is detected on both nodes while it lasts (redis_up 0, /readyz `degraded`;
//   /api/v1/cluster answers 503, its `redis.up` turns false later), and how long that took;
// - no HTTP request (/readyz, /api/v1/cluster, POST /api/v1/emit) and no publish ack takes longer
//   than the command timeout + a margin during the stall;
// - no client disconnects; every publish acked ok reached the members on the publisher's node;
// - cross-node delivery resumes after SIGCONT (the figure is printed; the bound is loose);
// - honest acks: every publish acked `{ok:true}` without `cluster:false`, and every HTTP emit
//   answered 200, reached the other node (before the fix, the subscriber probe tore down every
//   node's subscriber during the stall, and the PUBLISHes of its last 3 s reached nobody there);
//   what a polling member loses in the burst at resume is counted as slow-client drops.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startRedis, scrapeMetrics, metricSum, track, once, sleep, waitFor } from "../lib/harness.mjs";
import { startNode, API_KEY } from "./cluster-lib.mjs";

const COMMAND_TIMEOUT_MS = 3000; // the gateway's and the adapter's Redis command timeout
const MARGIN_MS = 2000;
// The adapter probes its subscriber every 2 s and a probe's PUBLISH times out after 3 s: a stall
// is noticed 3-5 s after it starts, so it lasts 7 s here to be noticed while it lasts.
const STALL_MS = 7000;
const PUBLISH_EVERY_MS = 25;
const auth = { authorization: `Bearer ${API_KEY}` };

/** A timed fetch: { ms, status, body } (status 0 with the error when it failed or hung 20 s). */
async function timed(url, init = {}) {
  const t0 = performance.now();
  try {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(20000) });
    const text = await r.text();
    let body = null;
    try { body = JSON.parse(text); } catch { body = text; }
    return { t0, ms: performance.now() - t0, status: r.status, body };
  } catch (e) {
    return { t0, ms: performance.now() - t0, status: 0, body: String(e) };
  }
}

async function member(t, url, room, transport, name) {
  const s = io(url, { forceNew: true, reconnection: false, transports: [transport] });
  track(t, s);
  await once(s, "connect", 10000);
  assert.deepEqual(await s.timeout(5000).emitWithAck("join", room), { ok: true });
  const st = { name, s, got: new Map(), http: new Set(), disconnects: [] };
  s.on("m", (n) => { if (!st.got.has(n)) st.got.set(n, performance.now()); });
  s.on("h", (d) => st.http.add(d));
  s.on("disconnect", (reason) => st.disconnects.push(reason));
  return st;
}

test("Redis SIGSTOPped 7 s under 2 nodes: detected, no request or ack hangs, no disconnects, delivery resumes", async (t) => {
  const redis = await startRedis();
  const n1 = await startNode(redis.url, "gateway-1");
  const n2 = await startNode(redis.url, "gateway-2");
  t.after(async () => {
    redis.signal("SIGCONT");
    await n1.stop(); await n2.stop(); await redis.stop();
  });
  const nodes = [n1, n2];

  const local = [await member(t, n1.url, "st", "websocket", "n1-ws"), await member(t, n1.url, "st", "polling", "n1-poll")];
  const remote = [await member(t, n2.url, "st", "websocket", "n2-ws"), await member(t, n2.url, "st", "polling", "n2-poll")];
  const pub = await member(t, n1.url, "pub-only", "websocket", "publisher");

  // Cross-node delivery works before the fault (room sync of the fresh members included).
  await waitFor(async () => {
    const ack = await pub.s.timeout(5000).emitWithAck("publish", { room: "st", event: "m", data: -1 });
    assert.deepEqual(ack, { ok: true });
    return remote.every((m) => m.got.has(-1));
  }, { timeoutMs: 10000, intervalMs: 200, what: "cross-node delivery before the fault" });

  // The publisher: one numbered publish every 25 ms, each ack recorded with its latency.
  const pubs = []; // { n, sentAt, ackAt, ack }
  let publishing = true;
  const publisher = (async () => {
    for (let n = 0; publishing; n++) {
      const rec = { n, sentAt: performance.now(), ackAt: null, ack: null };
      pubs.push(rec);
      pub.s.timeout(20000).emitWithAck("publish", { room: "st", event: "m", data: n })
        .then((a) => { rec.ack = a; }, (e) => { rec.ack = { timeout: e.message }; })
        .finally(() => { rec.ackAt = performance.now(); });
      await sleep(PUBLISH_EVERY_MS);
    }
  })();

  // HTTP probes, each kind on each node in its own loop so one slow request does not hide others.
  const probes = []; // { node, kind, t0, ms, status, body }
  let probing = true;
  const loop = (node, kind, req) => (async () => {
    for (let i = 0; probing; i++) {
      const r = await req(i);
      probes.push({ node: node.name, kind, i, ...r });
      await sleep(100);
    }
  })();
  const loops = nodes.flatMap((node) => [
    loop(node, "readyz", () => timed(`${node.url}/readyz`)),
    loop(node, "cluster", () => timed(`${node.url}/api/v1/cluster`, { headers: auth })),
    loop(node, "metrics", () => timed(`${node.url}/metrics`)),
    loop(node, "emit", (i) => timed(`${node.url}/api/v1/emit`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ nsp: "/", rooms: ["st"], event: "h", data: `${node.name}:${i}` }),
    })),
  ]);

  await sleep(1000);
  const stopAt = performance.now();
  redis.signal("SIGSTOP");
  await sleep(STALL_MS);
  redis.signal("SIGCONT");
  const contAt = performance.now();
  // Cross-node delivery is back once a member of node 2 gets a publish sent after SIGCONT.
  const resumed = await waitFor(() => {
    const firsts = remote.map((m) => {
      let first = Infinity;
      for (const p of pubs) if (p.sentAt >= contAt && m.got.has(p.n)) first = Math.min(first, m.got.get(p.n));
      return first;
    });
    return firsts.every(Number.isFinite) && Math.max(...firsts);
  }, { timeoutMs: 15000, what: "cross-node delivery after SIGCONT" }).catch(() => null);
  await sleep(1500);
  publishing = false;
  await publisher;
  probing = false;
  await Promise.all(loops);
  // Every ack is in (or timed out at 20 s), every delivery that will come has come.
  await waitFor(() => pubs.every((p) => p.ackAt !== null), { timeoutMs: 25000, what: "every publish answered" });
  await sleep(1000);

  // Detection: the first time each node's probes said Redis is not usable.
  const detected = {};
  for (const node of nodes) {
    const after = probes.filter((p) => p.node === node.name && p.t0 >= stopAt);
    const first = (pred) => {
      const hit = after.find(pred);
      return hit ? hit.t0 + hit.ms - stopAt : null;
    };
    detected[node.name] = {
      redis_up: first((p) => p.kind === "metrics" && typeof p.body === "string" && /^sio_gateway_redis_up 0$/m.test(p.body)),
      readyz: first((p) => p.kind === "readyz" && p.body?.degraded?.some?.((d) => d.check === "redis")),
      cluster_503: first((p) => p.kind === "cluster" && p.status === 503),
      cluster_redis_down: first((p) => p.kind === "cluster" && p.body?.redis?.up === false),
    };
  }
  t.diagnostic(`stall detected after (ms from SIGSTOP): ${JSON.stringify(detected, (_k, v) => (typeof v === "number" ? Math.round(v) : v))}`);

  // The slowest request of each kind that was in flight during the stall (started before
  // SIGCONT, ended after SIGSTOP).
  const during = (p) => p.t0 < contAt && p.t0 + p.ms > stopAt;
  const worst = {};
  for (const p of probes.filter(during)) {
    const k = `${p.node} ${p.kind}`;
    if (!worst[k] || p.ms > worst[k].ms) worst[k] = p;
  }
  const pubDuring = pubs.filter((p) => p.sentAt < contAt && p.ackAt > stopAt);
  const worstAck = Math.max(...pubDuring.map((p) => p.ackAt - p.sentAt));
  const statuses = {};
  for (const p of probes.filter(during)) statuses[`${p.node} ${p.kind} ${p.status}`] = (statuses[`${p.node} ${p.kind} ${p.status}`] ?? 0) + 1;
  t.diagnostic(`slowest request during the stall (ms): ${JSON.stringify(Object.fromEntries(Object.entries(worst).map(([k, p]) => [k, Math.round(p.ms)])))}; slowest publish ack ${Math.round(worstAck)} ms`);
  t.diagnostic(`responses during the stall: ${JSON.stringify(statuses)}`);
  if (process.env.SIO_TEST_VERBOSE) {
    for (const p of probes.filter((p) => p.kind === "cluster" && during(p))) {
      t.diagnostic(`${p.node} cluster at +${Math.round(p.t0 - stopAt)} ms: ${p.status} in ${Math.round(p.ms)} ms ${JSON.stringify(p.body?.redis)}`);
    }
  }
  const resumeMs = resumed === null ? null : resumed - contAt;
  t.diagnostic(`cross-node delivery resumed ${resumeMs === null ? "never" : `${Math.round(resumeMs)} ms`} after SIGCONT`);

  // The same for the HTTP API: an emit answered 200 during the stall, did the other node get it?
  const emits200 = probes.filter((p) => p.kind === "emit" && p.status === 200 && during(p));
  const otherMissed = emits200.filter((p) => (p.node === n1.name ? remote : local).some((m) => !m.http.has(`${p.node}:${p.i}`)));
  t.diagnostic(`HTTP emits in flight during the stall: ${emits200.length} answered 200, ${otherMissed.length} of them missed by the other node's members `
    + `(${otherMissed.map((p) => `${p.node} sent +${Math.round(p.t0 - stopAt)} ms, answered +${Math.round(p.t0 + p.ms - stopAt)} ms`).join("; ")})`);
  // The acks' shapes and the deliveries they stand for, printed (asserted at the end).
  const shapes = {};
  for (const p of pubs) {
    const a = p.ack;
    const shape = a?.timeout ? "no ack (20 s)" : a?.ok === true ? (a.cluster === false ? "ok, cluster:false" : "ok") : `ok:false`;
    shapes[shape] = (shapes[shape] ?? 0) + 1;
  }
  const okFull = pubs.filter((p) => p.ack?.ok === true && p.ack.cluster !== false);
  const okLocal = pubs.filter((p) => p.ack?.ok === true && p.ack.cluster === false);
  const missed = (members, list) => Object.fromEntries(members.map((m) => [m.name, list.filter((p) => !m.got.has(p.n)).length]));
  const span = (list, f) => (list.length ? `${Math.round(Math.min(...list.map(f)) - stopAt)}..${Math.round(Math.max(...list.map(f)) - stopAt)} ms` : "-");
  const lostFull = okFull.filter((p) => remote.some((m) => !m.got.has(p.n)));
  t.diagnostic(`acks by shape: ${JSON.stringify(shapes)}; {ok:true} publishes missed by node 2's members: ${JSON.stringify(missed(remote, okFull))} `
    + `(sent ${span(lostFull, (p) => p.sentAt)}, acked ${span(lostFull, (p) => p.ackAt)} after SIGSTOP); `
    + `cluster:false publishes that reached node 2 anyway: ${JSON.stringify(Object.fromEntries(remote.map((m) => [m.name, okLocal.filter((p) => m.got.has(p.n)).length])))}`);

  for (const node of nodes) {
    const d = detected[node.name];
    // redis_up and /readyz say it while it lasts; /api/v1/cluster answers 503 (its registry read
    // times out) rather than hanging or answering stale data.
    for (const k of ["redis_up", "readyz", "cluster_503"]) {
      assert.ok(d[k] !== null && d[k] < STALL_MS, `${node.name} ${k} saw the stall while it lasted: ${JSON.stringify(d)}`);
    }
  }
  for (const [k, p] of Object.entries(worst)) {
    assert.ok(p.ms < COMMAND_TIMEOUT_MS + MARGIN_MS, `${k} took ${Math.round(p.ms)} ms during the stall (status ${p.status})`);
  }
  assert.ok(pubDuring.length > 0);
  assert.ok(worstAck < COMMAND_TIMEOUT_MS + MARGIN_MS, `a publish ack took ${Math.round(worstAck)} ms during the stall`);
  for (const m of [...local, ...remote, pub]) assert.deepEqual(m.disconnects, [], `${m.name} stayed connected`);
  for (const m of local) {
    const lost = [...okFull, ...okLocal].filter((p) => !m.got.has(p.n)).map((p) => p.n);
    assert.deepEqual(lost, [], `${m.name} (the publisher's node) got every publish acked ok`);
  }
  assert.ok(resumeMs !== null, "cross-node delivery came back within 15 s of SIGCONT");
  assert.ok(resumeMs < 5000, `cross-node delivery resumed ${Math.round(resumeMs)} ms after SIGCONT`);
  // After the stall every node is ready and no longer degraded.
  for (const node of nodes) {
    await waitFor(async () => {
      const r = await timed(`${node.url}/readyz`);
      return r.status === 200 && !r.body?.degraded;
    }, { timeoutMs: 10000, intervalMs: 100, what: `${node.name} ready and no longer degraded` });
  }
  t.diagnostic(`both nodes no longer degraded ${Math.round(performance.now() - contAt)} ms after SIGCONT (the next subscriber probe)`);

  // Honest acks: a publish acked {ok:true} without cluster:false, and an HTTP emit answered 200,
  // reached the other node. (Before the fix, every node's subscriber was torn down during the
  // stall, and those of the stall's last 3 s reached nobody there.) The PUBLISHes queued during
  // the stall arrive at node 2 in one burst when Redis resumes: its websocket member takes them
  // all; its polling member's queue (--max-buffer packets) may overflow between two polls,
  // and what it loses there must be counted as slow-client drops, not lost silently.
  const wsRemote = remote.filter((m) => m.name.endsWith("-ws"));
  for (const m of wsRemote) {
    assert.deepEqual(okFull.filter((p) => !m.got.has(p.n)).map((p) => p.n), [], `${m.name} got every {ok:true} publish`);
  }
  const emitMissedWs = emits200.filter((p) => (p.node === n1.name ? remote : local)
    .filter((m) => m.name.endsWith("-ws")).some((m) => !m.http.has(`${p.node}:${p.i}`)));
  assert.deepEqual(emitMissedWs.map((p) => p.i), [], "every HTTP emit answered 200 reached the other node's websocket member");
  const pollRemote = remote.find((m) => m.name.endsWith("-poll"));
  const pollMissed = [...okFull, ...okLocal].filter((p) => !pollRemote.got.has(p.n)).length;
  const dropped = metricSum(await scrapeMetrics(`${n2.url}/metrics`), "sio_gateway_dropped_messages_total", 'reason="slow_client"');
  t.diagnostic(`node 2's polling member missed ${pollMissed} publishes in the resume burst; node 2 counted ${dropped} slow-client drops`);
  assert.ok(pollMissed <= dropped, `the polling member's ${pollMissed} missed publishes are counted (slow_client drops: ${dropped})`);
});
