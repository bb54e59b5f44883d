// Soak run (issue 14 item 5), driven by bench/soak.sh: CLIENTS stable socket.io-client
// websockets spread over 2 gateway nodes sharing a private redis-server, each in one of ROOMS
// rooms; RATE broadcasts/s published into random rooms (alternating nodes); CHURN extra clients
// per second connect, join a room and disconnect (about one second later) the whole time.
// Reports, per node, RSS at start (all clients in) and at the end, deliveries expected vs
// received by the stable clients (lost, duplicated) and their disconnects. Exits 1 if anything
// was lost, duplicated or disconnected, or a node died.
//
// Env (defaults in brackets): SOAK_SECONDS [600] CLIENTS [1000] ROOMS [50] RATE [50] CHURN [10]
//   GATEWAY_BIN [target/release/sio-gateway] REPORT_EVERY [10] (seconds)
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { startRedis, startGateway, waitFor, sleep, ROOT } from "../tests/lib/harness.mjs";

// socket.io-client from tests/ (pinned by tests/package-lock.json).
const { io } = createRequire(path.join(ROOT, "tests/package.json"))("socket.io-client");

const SECONDS = Number(process.env.SOAK_SECONDS || 600);
const CLIENTS = Number(process.env.CLIENTS || 1000);
const ROOMS = Number(process.env.ROOMS || 50);
const RATE = Number(process.env.RATE || 50);
const CHURN = Number(process.env.CHURN || 10);
const REPORT_EVERY = Number(process.env.REPORT_EVERY || 10);
const BIN = process.env.GATEWAY_BIN || path.join(ROOT, "target/release/sio-gateway");
const SECRET = "soak-cluster-secret-0123456789";

const rssKiB = (pid) => {
  const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : NaN;
};
const mib = (k) => (k / 1024).toFixed(1);
const log = (s) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${s}`);

function connect(url, room) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"], timeout: 10000 });
  const st = { s, room, seen: new Set(), received: 0, dupes: 0, joined: false, disconnects: 0, errors: [] };
  s.on("connect", async () => {
    const ack = await s.timeout(10000).emitWithAck("join", room).catch((e) => ({ ok: false, error: e.message }));
    if (ack.ok) st.joined = true;
    else st.errors.push(`join: ${ack.error}`);
  });
  s.on("connect_error", (e) => st.errors.push(`connect_error: ${e.message}`));
  s.on("disconnect", (reason) => { st.disconnects++; st.joined = false; st.errors.push(`disconnect: ${reason}`); });
  s.on("m", (m) => {
    if (st.seen.has(m.seq)) st.dupes++;
    else { st.seen.add(m.seq); st.received++; }
  });
  return st;
}

const procs = [];
async function main() {
  const redis = await startRedis();
  procs.push(redis);
  const nodes = [];
  for (const id of ["gateway-1", "gateway-2"]) {
    const n = await startGateway(
      ["--redis", redis.url, "--node-id", id, "--cluster-secret", SECRET, "--log-level", "warn"],
      { name: id, waitReady: true, bin: BIN },
    );
    procs.push(n);
    nodes.push(n);
  }
  log(`redis ${redis.url}; nodes ${nodes.map((n) => `${n.name} ${n.url} pid ${n.pid}`).join(", ")}; binary ${BIN}`);

  // Stable clients, connected in steps of 100 so the accept queues never overflow.
  const stable = [];
  for (let i = 0; i < CLIENTS; i++) {
    stable.push(connect(nodes[i % 2].url, `soak-${i % ROOMS}`));
    if (i % 100 === 99) await waitFor(() => stable.every((c) => c.joined || c.errors.length), { timeoutMs: 30000, what: "a step of clients joined" });
  }
  await waitFor(() => stable.every((c) => c.joined), { timeoutMs: 60000, what: `${CLIENTS} clients joined` }).catch((e) => {
    const bad = stable.filter((c) => !c.joined);
    throw new Error(`${e.message}: ${bad.length} not joined, e.g. ${JSON.stringify(bad.slice(0, 3).map((c) => c.errors))}`);
  });
  const publishers = [];
  for (const n of nodes) {
    const p = io(n.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
    await new Promise((resolve, reject) => { p.once("connect", resolve); p.once("connect_error", reject); });
    publishers.push(p);
  }
  const members = new Map();
  for (const c of stable) members.set(c.room, [...(members.get(c.room) ?? []), c]);
  await sleep(1000);
  const rssStart = nodes.map((n) => rssKiB(n.pid));
  log(`${CLIENTS} clients joined ${ROOMS} rooms; RSS at start: ${nodes.map((n, i) => `${n.name} ${mib(rssStart[i])} MiB`).join(", ")}`);

  let seq = 0, acked = 0, refused = 0, expected = 0, churned = 0, churnFailed = 0;
  const churnLive = new Set();
  const t0 = Date.now();
  const end = t0 + SECONDS * 1000;
  // Broadcasts: RATE per second, each into a random room from alternating nodes.
  const pubTimer = setInterval(() => {
    const target = Math.floor(((Date.now() - t0) / 1000) * RATE);
    while (seq < target && Date.now() < end) {
      const n = seq++;
      const room = `soak-${Math.floor(Math.random() * ROOMS)}`;
      // Expected: the stable members of the room that are joined when it is published.
      const exp = (members.get(room) ?? []).filter((c) => c.joined).length;
      publishers[n % 2].timeout(10000).emitWithAck("publish", { room, event: "m", data: { seq: n } })
        .then((ack) => { if (ack?.ok) { acked++; expected += exp; } else refused++; })
        .catch(() => { refused++; });
    }
  }, 20);
  // Churn: CHURN clients per second connect, join a room, and leave about a second later.
  const churnTimer = setInterval(() => {
    if (Date.now() >= end) return;
    const c = connect(nodes[churned % 2].url, `soak-${Math.floor(Math.random() * ROOMS)}`);
    churned++;
    churnLive.add(c);
    setTimeout(() => {
      if (!c.joined) churnFailed++;
      c.s.disconnect();
      churnLive.delete(c);
    }, 800 + Math.random() * 400);
  }, 1000 / CHURN);

  const received = () => stable.reduce((s, c) => s + c.received, 0);
  while (Date.now() < end) {
    await sleep(Math.min(REPORT_EVERY * 1000, end - Date.now()));
    for (const n of nodes) if (!n.running) throw new Error(`${n.name} died:\n${n.output().slice(-3000)}`);
    const el = Math.round((Date.now() - t0) / 1000);
    log(`t=${el}s published ${seq} (acked ${acked}, refused ${refused}) delivered ${received()}/${expected} churned ${churned} RSS ${nodes.map((n) => mib(rssKiB(n.pid))).join(" / ")} MiB`);
  }
  clearInterval(pubTimer);
  clearInterval(churnTimer);
  // Let in-flight acks and deliveries land.
  await waitFor(() => acked + refused >= seq && received() >= expected, { timeoutMs: 10000, what: "in-flight deliveries" }).catch(() => {});
  await sleep(1000);
  for (const c of churnLive) c.s.disconnect();
  const rssEnd = nodes.map((n) => rssKiB(n.pid));
  const got = received();
  const dupes = stable.reduce((s, c) => s + c.dupes, 0);
  const disconnects = stable.reduce((s, c) => s + c.disconnects, 0);
  const lost = expected - got;
  const res = {
    seconds: SECONDS, clients: CLIENTS, rooms: ROOMS, rate: RATE, churnPerSec: CHURN,
    published: seq, acked, refused, expected, received: got, lost, duplicates: dupes,
    stableDisconnects: disconnects, churned, churnFailedToJoin: churnFailed,
    rssMiB: nodes.map((n, i) => ({ node: n.name, start: Number(mib(rssStart[i])), end: Number(mib(rssEnd[i])), growth: Number(mib(rssEnd[i] - rssStart[i])) })),
  };
  console.log(JSON.stringify(res, null, 2));
  for (const n of nodes) log(`${n.name}: RSS ${mib(rssStart[nodes.indexOf(n)])} -> ${mib(rssEnd[nodes.indexOf(n)])} MiB (${mib(rssEnd[nodes.indexOf(n)] - rssStart[nodes.indexOf(n)])} MiB growth)`);
  log(`deliveries: expected ${expected}, received ${got}, lost ${lost}, duplicated ${dupes}; publishes refused ${refused}; stable-client disconnects ${disconnects}; churn ${churned} connects (${churnFailed} failed to join)`);
  for (const c of stable) c.s.disconnect();
  for (const p of publishers) p.disconnect();
  const ok = lost === 0 && dupes === 0 && disconnects === 0 && refused === 0 && churnFailed === 0;
  log(ok ? "soak: ok" : "soak: FAILED (see above)");
  return ok ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(`soak: error: ${e.stack || e}`);
} finally {
  for (const p of procs.reverse()) await p.stop().catch(() => {});
}
process.exit(code);
