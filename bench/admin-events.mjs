// Load driver of bench/admin-events.sh (not a test): one client sends non-publish events to a
// gateway running under callgrind, optionally with an Admin UI client connected; each measured
// segment is bracketed by `callgrind_control --zero` / `--dump` on the gateway's pid, so the
// dump holds the instructions of that segment alone.
// Usage: node bench/admin-events.mjs URL GATEWAY_PID N ADMIN(0|1)
// Segments: `joinleave` (N `join` + N `leave`, acked) and `other` (N events of an unknown name,
// acked with the no-sink error). Prints one line per segment: name events.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [url, pid, nArg, adminArg] = process.argv.slice(2);
const N = Number(nArg);
const WINDOW = 20; // acks in flight at once

function connect(path, opts = {}) {
  const s = io(url + path, { forceNew: true, reconnection: false, transports: ["websocket"], ...opts });
  return new Promise((res, rej) => {
    s.once("connect", () => res(s));
    s.once("connect_error", rej);
  });
}

const cg = (flag) => execFileSync("callgrind_control", [flag, pid], { stdio: "ignore" });

async function windowed(n, one) {
  for (let i = 0; i < n; i += WINDOW) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + WINDOW); j++) batch.push(one(j));
    await Promise.all(batch);
  }
}

let reports = 0;
if (adminArg === "1") {
  const admin = await connect("/admin");
  admin.onAny(() => { reports++; });
}
const c = await connect("/");
const joinleave = async (n) => windowed(n, async (i) => {
  await c.emitWithAck("join", `r${i % 10}`);
  await c.emitWithAck("leave", `r${i % 10}`);
});
const other = async (n) => windowed(n, (i) => c.emitWithAck("ping-upstream", { n: i }));
// Warm-up: allocator, lazy statics, the first of each path.
await joinleave(200);
await other(200);
for (const [name, run, events] of [["joinleave", joinleave, 2 * N], ["other", other, N]]) {
  cg("--zero");
  await run(N);
  cg("--dump");
  console.log(`${name} ${events}`);
}
console.error(`admin reports received: ${reports}`);
process.exit(0);
