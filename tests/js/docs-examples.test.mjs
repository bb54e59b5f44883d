// Copy-paste examples in README.md and docs/*.md run verbatim. A code block marked with
// `<!-- example: NAME -->` on the line before its fence is run here by the runner of that name;
// the only edits are the ones a reader makes on their machine: the host:port of the node (a free
// port here), the Redis URL (a private redis-server), and `sio-gateway` / `cargo run --release
// -p sio-gateway --` meaning the built binary. A marked block without a runner, or a runner whose
// block is gone, fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { io } from "socket.io-client";
import { ROOT, GATEWAY_BIN, startGateway, startRedis, freePort, track, once, waitFor, waitForPort } from "../lib/harness.mjs";

const DOCS = ["README.md", ...fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

/** Every marked block: { name, lang, code, file }. */
function examples() {
  const out = [];
  for (const file of DOCS) {
    const lines = fs.readFileSync(path.join(ROOT, file), "utf8").split("\n");
    for (let i = 0; i < lines.length; i++) {
      const m = /^<!-- example: ([\w-]+) -->$/.exec(lines[i]);
      if (!m) continue;
      const fence = /^(\s*)```(\w*)$/.exec(lines[i + 1] ?? "");
      assert.ok(fence, `${file}:${i + 1}: the example marker must be followed by a code fence`);
      const end = lines.findIndex((l, j) => j > i + 1 && l.trim() === "```");
      out.push({ name: m[1], lang: fence[2], code: lines.slice(i + 2, end).join("\n"), file });
    }
  }
  return out;
}
const ALL = examples();
const example = (name) => {
  const e = ALL.find((x) => x.name === name);
  assert.ok(e, `example ${name} is not marked in the docs any more`);
  return e;
};

/** Run a shell example with the built binary first on PATH. */
function sh(code, { env = {}, cwd = ROOT } = {}) {
  const r = spawnSync("bash", ["-euo", "pipefail", "-c", code], {
    cwd, encoding: "utf8", timeout: 30000,
    env: { ...process.env, PATH: `${path.dirname(GATEWAY_BIN)}:${process.env.PATH}`, ...env },
  });
  return r;
}

/** A client in `room` that records `event`s. */
async function listener(t, url, room, event) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  await once(s, "connect");
  assert.deepEqual(await s.emitWithAck("join", room), { ok: true });
  const got = [];
  s.on(event, (...a) => got.push(a.length === 1 ? a[0] : a));
  return got;
}

/** Run a JS example as an ES module in a directory under tests/ (so it finds tests/node_modules,
 * as a reader's project finds its own). */
function runModule(t, code, env = {}) {
  const dir = fs.mkdtempSync(path.join(ROOT, "tests", ".example-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "example.mjs");
  fs.writeFileSync(file, code);
  return spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 20000, env: { ...process.env, ...env } });
}

/** The project's virtualenv python (scripts/test.sh makes it), else python3. */
const PYTHON = [path.join(ROOT, "tests/.venv/bin/python"), "python3"].find((p) => p === "python3" || fs.existsSync(p));

const RUNNERS = {
  async client(t, e) {
    const gw = track(t, await startGateway());
    const got = await listener(t, gw.url, "lobby", "chat");
    const code = e.code.replaceAll("http://localhost:3000", gw.url);
    const r = runModule(t, `import { io } from "socket.io-client";\n${code}\nsetTimeout(() => socket.close(), 300);\n`);
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => got.length === 1, { what: "the example's chat message" });
    assert.deepEqual(got[0], { text: "hi" });
  },
  async config(t, e) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-example-"));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, "gateway.toml"), e.code);
    const r = sh("sio-gateway check-config gateway.toml", { cwd: dir });
    assert.equal(r.status, 0, r.stderr + r.stdout);
  },
  async "check-config"(t, e) {
    // The file it checks is the TOML example of the same README.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-example-"));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, "gateway.toml"), example("config").code);
    const r = sh(e.code, { cwd: dir });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /OK/);
    // And the documented failure: exit 2, the key named.
    fs.writeFileSync(path.join(dir, "gateway.toml"), 'max_payload = "big"\n');
    const bad = sh(e.code, { cwd: dir });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr + bad.stdout, /max_payload/);
  },
  async cluster(t, e) {
    const redis = track(t, await startRedis());
    const ports = new Map();
    const nodes = [];
    for (const line of e.code.split("\n").filter((l) => l.startsWith("cargo run --release -p sio-gateway -- "))) {
      let args = line.slice("cargo run --release -p sio-gateway -- ".length).split(/\s+/);
      args = await Promise.all(args.map(async (a) => {
        if (a === "redis://127.0.0.1:6379") return redis.url;
        const m = /^127\.0\.0\.1:(\d+)$/.exec(a);
        if (!m) return a;
        if (!ports.has(m[1])) ports.set(m[1], await freePort());
        return `127.0.0.1:${ports.get(m[1])}`;
      }));
      const port = Number(args[args.indexOf("--listen") + 1].split(":")[1]);
      nodes.push(track(t, await startGateway(args, { port, waitReady: true })));
    }
    assert.equal(nodes.length, 2, "two nodes in the example");
    const got = await listener(t, nodes[1].url, "lobby", "chat");
    const a = io(nodes[0].url, { forceNew: true, reconnection: false, transports: ["websocket"] });
    track(t, a);
    await once(a, "connect");
    assert.deepEqual(await a.emitWithAck("join", "lobby"), { ok: true });
    assert.deepEqual(await a.emitWithAck("publish", { room: "lobby", event: "chat", data: { text: "through Redis" } }), { ok: true });
    await waitFor(() => got.length === 1, { what: "a message across the two nodes" });
  },
  async api(t, e) {
    const gw = track(t, await startGateway(["--api-key", "example-key-0123456789"]));
    const got = await listener(t, gw.url, "lobby", "chat");
    const r = sh(e.code.replaceAll("http://127.0.0.1:3000", gw.url), { env: { KEY: "example-key-0123456789" } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true });
    await waitFor(() => got.length === 1, { what: "the API's chat message" });
    assert.deepEqual(got[0], { from: "backend", text: "hi" });
  },
  async "api-compose"(t, e) {
    const key = /Bearer ([\w-]+)/.exec(e.code)[1];
    // The compose demo key, accepted as docker-compose.yml accepts it: with the opt-in.
    const gw = track(t, await startGateway(["--api-key", key, "--allow-demo-secrets", "true"]));
    const got = await listener(t, gw.url, "lobby", "news");
    const r = sh(e.code.replaceAll("http://localhost:8080", gw.url));
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => got.length === 1, { what: "the news event" });
    assert.equal(got[0], "from the API");
  },
};

Object.assign(RUNNERS, {
  async "jwt-connect"(t, e) {
    const secret = "example-jwt-secret-0123456789";
    // The gateway exactly as the paragraph above the example starts it.
    const gw = track(t, await startGateway(["--auth", "jwt", "--jwt-secret", secret, "--can-join", "user:{sub}", "--can-publish", "user:{sub}"]));
    const r = runModule(t, e.code.replaceAll("http://localhost:3000", gw.url), { JWT_SECRET: secret });
    assert.equal(r.status, 0, r.stderr);
    const [own, other] = r.stdout.trim().split("\n");
    assert.equal(own, "{ ok: true }");
    assert.match(other, /ok: false/);
    assert.match(other, /not allowed to join room `user:bob`/);
  },
  async pysio(t, e) {
    const redis = track(t, await startRedis());
    const gw = track(t, await startGateway(["--redis", redis.url, "--pysio-channel", "socketio", "--cluster-secret", "example-cluster-secret-0123"], { waitReady: true }));
    assert.match(gw.output(), /pysio="socketio"/, "the start-up line names the channel");
    const got = await listener(t, gw.url, "lobby", "chat");
    const r = spawnSync(PYTHON, ["-c", e.code.replaceAll("redis://127.0.0.1:6379", redis.url)], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => got.length === 1, { what: "python's chat message" });
    assert.deepEqual(got[0], { from: "python", text: "hi" });
  },
  async "node-emitter"(t, e) {
    const redis = track(t, await startRedis());
    const gw = track(t, await startGateway(["--redis", redis.url, "--cluster-secret", "example-cluster-secret-0123"], { waitReady: true }));
    const got = await listener(t, gw.url, "lobby", "chat");
    const r = runModule(t, e.code.replaceAll("redis://127.0.0.1:6379", redis.url));
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => got.length === 1, { what: "the emitter's chat message" });
    assert.deepEqual(got[0], { from: "node", text: "hi" });
  },
});

/** Run a shell example in the background, in its own process group (killed after the test). */
function shBackground(t, code) {
  const child = spawn("bash", ["-euo", "pipefail", "-c", code], { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  t.after(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } });
  return { output: () => out };
}

/** The three local nodes of docs/deploying.md ("Try it on one machine"), on free ports. */
async function localNodes(t) {
  const redis = track(t, await startRedis());
  const ports = [await freePort(), await freePort(), await freePort()];
  const code = example("local-nodes").code
    .replaceAll("target/release/sio-gateway", GATEWAY_BIN)
    .replaceAll("redis://127.0.0.1:6379", redis.url)
    .replaceAll("300$i", "${P[$i]}");
  const run = shBackground(t, `P=(x ${ports.join(" ")})\n${code}`);
  for (const p of ports) {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${p}/readyz`).catch(() => null))?.status === 200,
      { timeoutMs: 15000, what: `local node on ${p}` }).catch((e) => { throw new Error(`${e.message}\n${run.output()}`); });
  }
  // What a reader's balancer example says, for this machine's ports.
  const lb = (code) => ports.reduce((c, p, i) => c.replaceAll(`127.0.0.1:300${i + 1}`, `127.0.0.1:${p}`), code);
  return { ports, lb };
}

/** Two stock clients through the balancer at `url` chat across nodes; the page names a node. */
async function chatThrough(t, url) {
  const page = await (await fetch(url + "/")).text();
  assert.match(page, /node gateway-[123]/);
  const got = await listener(t, url, "lobby", "chat");
  const a = io(url, { forceNew: true, reconnection: false, transports: ["polling", "websocket"] });
  track(t, a);
  await once(a, "connect");
  assert.deepEqual(await a.emitWithAck("join", "lobby"), { ok: true });
  assert.deepEqual(await a.emitWithAck("publish", { room: "lobby", event: "chat", data: { text: "via the balancer" } }), { ok: true });
  await waitFor(() => got.length === 1, { what: "a message through the balancer" });
}

Object.assign(RUNNERS, {
  async "local-nodes"(t) {
    const { ports } = await localNodes(t);
    // One cluster: a client on node 1 reaches a client on node 3.
    const got = await listener(t, `http://127.0.0.1:${ports[2]}`, "lobby", "chat");
    const a = io(`http://127.0.0.1:${ports[0]}`, { forceNew: true, reconnection: false, transports: ["websocket"] });
    track(t, a);
    await once(a, "connect");
    assert.deepEqual(await a.emitWithAck("join", "lobby"), { ok: true });
    assert.deepEqual(await a.emitWithAck("publish", { room: "lobby", event: "chat", data: { text: "across" } }), { ok: true });
    await waitFor(() => got.length === 1, { what: "a message from node 1 to node 3" });
  },
  async "local-haproxy"(t, e) {
    const { lb } = await localNodes(t);
    const [port, stats] = [await freePort(), await freePort()];
    const run = shBackground(t, lb(e.code).replace("127.0.0.1:8080", `127.0.0.1:${port}`).replace("127.0.0.1:8404", `127.0.0.1:${stats}`));
    await waitForPort(port, "127.0.0.1", 10000).catch((err) => { throw new Error(`${err.message}\n${run.output()}`); });
    await chatThrough(t, `http://127.0.0.1:${port}`);
  },
  async "local-nginx"(t, e) {
    const { lb } = await localNodes(t);
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-lb-"));
    fs.chmodSync(dir, 0o755); // nginx workers (an unprivileged user under root) write temp files here
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const run = shBackground(t, lb(e.code).replace("127.0.0.1:8081", `127.0.0.1:${port}`).replaceAll("/tmp/sio-lb", dir));
    await waitForPort(port, "127.0.0.1", 10000).catch((err) => { throw new Error(`${err.message}\n${run.output()}`); });
    await chatThrough(t, `http://127.0.0.1:${port}`);
  },
});

test("every marked example has a runner", () => {
  assert.ok(ALL.length >= Object.keys(RUNNERS).length);
  for (const e of ALL) assert.ok(RUNNERS[e.name], `${e.file}: no runner for example ${e.name}`);
  assert.equal(new Set(ALL.map((e) => e.name)).size, ALL.length, "example names are unique");
});

for (const name of Object.keys(RUNNERS)) {
  test(`example ${name} runs verbatim`, (t) => RUNNERS[name](t, example(name)));
}
