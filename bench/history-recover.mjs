// Time to recover N missed messages of a history room (issue 17): a subscriber joins with
// `{room}`, leaves; N messages are published; a new subscriber (on --recover-url, another node
// in cluster mode) joins with `since` and the time until it has all N and the ack is measured.
// Usage: node bench/history-recover.mjs --url URL [--recover-url URL] [--room R] [--n 1000] [--runs 5]
// Not a test (no assertion beyond "all N arrived, in order"); uses tests/node_modules.
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const require = createRequire(new URL("../tests/package.json", import.meta.url));
const { io } = require("socket.io-client");

const { values: o } = parseArgs({
  options: {
    url: { type: "string" },
    "recover-url": { type: "string" },
    room: { type: "string", default: "h:recover" },
    n: { type: "string", default: "1000" },
    runs: { type: "string", default: "5" },
  },
});
const N = Number(o.n);
const connect = (url) => new Promise((resolve, reject) => {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  s.once("connect", () => resolve(s));
  s.once("connect_error", reject);
});

const times = [];
for (let run = 0; run < Number(o.runs); run++) {
  const room = `${o.room}:${run}`;
  const pub = await connect(o.url);
  const a = await connect(o.url);
  const pos = await a.emitWithAck("join", { room });
  a.disconnect();
  const acks = [];
  for (let i = 0; i < N; i++) acks.push(pub.emitWithAck("publish", { room, event: "m", data: { i } }));
  const res = await Promise.all(acks);
  if (!res.every((r) => r.ok)) throw new Error("a publish failed: " + JSON.stringify(res.find((r) => !r.ok)));
  const b = await connect(o["recover-url"] || o.url);
  let got = 0;
  let inOrder = true;
  // In offset order (publishes sent without waiting may be appended in another order than sent).
  let prev = [-1n, -1n];
  b.on("m", (d, mark) => {
    const cur = mark.offset.split("-").map(BigInt);
    const c = [cur[0], cur[1] ?? 0n];
    if (c[0] < prev[0] || (c[0] === prev[0] && c[1] <= prev[1])) inOrder = false;
    prev = c;
    got++;
  });
  const t0 = process.hrtime.bigint();
  const ack = await b.emitWithAck("join", { room, since: { offset: pos.offset, epoch: pos.epoch } });
  while (got < N) await new Promise((r) => setTimeout(r, 1));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!ack.recovered || ack.missed !== N || !inOrder) throw new Error("bad recovery: " + JSON.stringify(ack));
  times.push(ms);
  pub.disconnect();
  b.disconnect();
}
times.sort((x, y) => x - y);
console.log(JSON.stringify({ n: N, runs: times.length, ms: times.map((t) => +t.toFixed(1)), median_ms: +times[Math.floor(times.length / 2)].toFixed(1) }));
