// Shared harness for the cross-process tests: free ports, a private redis-server,
// gateway nodes as real processes, readiness waits and guaranteed cleanup.
//
// Every test starts what it needs through these helpers and registers the
// returned handles with `track(t, ...)` (or calls `stop()` itself), so no
// process outlives its test even when an assertion throws.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "../..");
export const GATEWAY_BIN =
  process.env.SIO_TEST_GATEWAY_BIN || path.join(ROOT, "target/debug/sio-gateway");

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Poll `fn` until it returns a truthy value (or resolves to one), or fail after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${lastErr.message}` : ""}`);
}

/** Wait until something accepts TCP connections on host:port. */
export function waitForPort(port, host = "127.0.0.1", timeoutMs = 10000) {
  return waitFor(
    () =>
      new Promise((resolve) => {
        const s = net.connect(port, host);
        s.once("connect", () => { s.destroy(); resolve(true); });
        s.once("error", () => resolve(false));
      }),
    { timeoutMs, what: `port ${port}` },
  );
}

/** A spawned child with its output captured (for failure messages) and a stop() that always reaps it. */
export function startProcess(cmd, args, { env = {}, name = cmd, cwd = ROOT } = {}) {
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (d) => {
    output += d.toString();
    if (output.length > 200000) output = output.slice(-100000);
    if (process.env.SIO_TEST_VERBOSE) process.stderr.write(`[${name}] ${d}`);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const handle = {
    name,
    child,
    pid: child.pid,
    exited,
    output: () => output,
    get running() { return child.exitCode === null && child.signalCode === null; },
    signal(sig) { if (handle.running) child.kill(sig); },
    async stop(sig = "SIGKILL") {
      if (handle.running) child.kill(sig);
      await exited;
    },
  };
  return handle;
}

/** A private redis-server on a free port, nothing persisted. */
export async function startRedis({ port } = {}) {
  port = port ?? (await freePort());
  const proc = startProcess(
    process.env.REDIS_SERVER || "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
    { name: `redis:${port}` },
  );
  await waitForPort(port);
  return Object.assign(proc, { port, url: `redis://127.0.0.1:${port}` });
}

/**
 * Start a gateway node. `args` are extra CLI flags; `--listen` is chosen here unless given.
 * Resolves once `/healthz` answers 200.
 */
export async function startGateway(args = [], { env = {}, name, port, waitReady = false, bin = GATEWAY_BIN } = {}) {
  if (!fs.existsSync(bin)) {
    throw new Error(`gateway binary not found: ${bin} (build it, or set SIO_TEST_GATEWAY_BIN; scripts/test.sh does both)`);
  }
  port = port ?? (await freePort());
  const hasListen = args.includes("--listen");
  const fullArgs = hasListen ? args : ["--listen", `127.0.0.1:${port}`, ...args];
  const proc = startProcess(bin, fullArgs, {
    env: { RUST_LOG: process.env.RUST_LOG || "info", ...env },
    name: name || `gateway:${port}`,
  });
  const url = `http://127.0.0.1:${port}`;
  const probe = waitReady ? "/readyz" : "/healthz";
  try {
    await waitFor(async () => {
      if (!proc.running) throw new Error(`gateway exited early:\n${proc.output()}`);
      const r = await fetch(url + probe).catch(() => null);
      return r && r.status === 200;
    }, { timeoutMs: 15000, what: `gateway ${url}${probe}` });
  } catch (e) {
    await proc.stop();
    throw new Error(`${e.message}\n--- gateway output ---\n${proc.output()}`);
  }
  return Object.assign(proc, { port, url });
}

/** Register handles (processes, sockets, anything with stop()/close()/disconnect()) for cleanup after the test. */
export function track(t, ...handles) {
  t.after(async () => {
    for (const h of handles.reverse()) {
      try {
        if (typeof h.stop === "function") await h.stop();
        else if (typeof h.disconnect === "function") h.disconnect();
        else if (typeof h.close === "function") await h.close();
      } catch { /* best effort */ }
    }
  });
  return handles.length === 1 ? handles[0] : handles;
}

/** Resolve with the first emission of `event` on `emitter`, or reject after `timeoutMs`. */
export function once(emitter, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off?.(event, on);
      reject(new Error(`timed out waiting for '${event}'`));
    }, timeoutMs);
    const on = (...args) => { clearTimeout(timer); resolve(args.length <= 1 ? args[0] : args); };
    emitter.once(event, on);
  });
}

/** Fetch and parse Prometheus text into { "name{labels}": value }. */
export async function scrapeMetrics(url) {
  const text = await (await fetch(url)).text();
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

/** Sum every sample of a metric family, optionally filtered by a label substring like 'reason="x"'. */
export function metricSum(samples, name, labelFilter = "") {
  let sum = 0;
  for (const [k, v] of Object.entries(samples)) {
    const base = k.split("{")[0];
    if (base === name && k.includes(labelFilter)) sum += v;
  }
  return sum;
}

export { sleep };
