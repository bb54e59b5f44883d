// Configuration surface of the real binary: --help documents every option with its env var
// (and, for every option of the README's option tables, the same env var and default as the
// table), `check-config` accepts a good file (exit 0, effective config) and names the bad key of
// a bad one (exit 2), its effective configuration is a config file that checks back to the same
// output (via the positional file or --config), `webhook_ca_file` must be a PEM certificate
// bundle and webhook URLs http(s)://, a bad flag value at start-up exits 2, --redis with an
// unreachable Redis fails clearly at start-up (exit 1, URL named), env vars and TOML keys take
// effect with precedence flag > env > file, lists in env vars are comma-separated, JSON logs;
// the heap goes on huge pages by one re-exec with GLIBC_TUNABLES (same pid and arguments), off
// by flag, an operator's setting kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startProcess, freePort, track, GATEWAY_BIN, ROOT } from "../lib/harness.mjs";
import { makeTls } from "../lib/tls.mjs";

const OPTIONS = [
  "listen", "redis", "node-id", "advertise", "config", "api-key", "metrics-listen", "namespace",
  "ping-interval", "ping-timeout", "max-payload", "max-connections", "max-buffer", "max-rooms", "conn-rate-per-ip",
  "event-rate", "event-burst",
  "cors-origin", "log-format", "log-level", "drain-period", "can-join", "can-publish",
  "sticky-cookie", "client-js", "webhook-ca-file", "ws-read-buffer", "heap-huge-pages",
  "allow-demo-secrets",
];

function run(args, env = {}) {
  return spawnSync(GATEWAY_BIN, args, { encoding: "utf8", env: { ...process.env, ...env }, timeout: 10000 });
}

function tmpFile(t, name, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-cfg-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

test("--help documents every option and its environment variable", () => {
  const r = run(["--help"]);
  assert.equal(r.status, 0);
  for (const o of OPTIONS) {
    assert.match(r.stdout, new RegExp(`--${o}\\b`), `--${o} in help`);
    const env = "SIO_GATEWAY_" + o.toUpperCase().replaceAll("-", "_");
    assert.ok(r.stdout.includes(env), `${env} in help`);
  }
  assert.match(r.stdout, /check-config/);
  assert.match(r.stdout, /default: 0\.0\.0\.0:3000/);
});

test("check-config: a good file prints OK and the effective config", (t) => {
  const file = tmpFile(t, "good.toml", [
    'listen = "127.0.0.1:4000"',
    'node_id = "node-a"',
    'namespace = ["/", "/tenant-*"]',
    'drain_period = "2s"',
    "max_payload = 200000",
    'api_key = ["0123456789abcdef"]',
    'can_join = ["public:*", "user:{sub}"]',
    'log_format = "json"',
    "",
  ].join("\n"));
  const r = run(["check-config", file]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^OK/);
  assert.match(r.stdout, /node_id = "node-a"/);
  assert.match(r.stdout, /max_payload = 200000/);
  assert.match(r.stdout, /drain_period = "2000ms"/);
  assert.match(r.stdout, /tenant-\{p0\}/);
  assert.ok(!r.stdout.includes("0123456789abcdef"), "API keys are redacted");
});

/** Rows of the README tables `| flag | env | TOML key | default | meaning |`, backticks removed. */
function readmeOptions() {
  const text = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const rows = [];
  let inTable = false;
  for (const line of text.split("\n")) {
    if (line.trim() === "| flag | env | TOML key | default | meaning |") { inTable = true; continue; }
    if (!line.startsWith("|")) { inTable = false; continue; }
    if (!inTable || line.startsWith("|---")) continue;
    const [flag, env, key, dflt] = line.slice(1, -1).split(" | ").map((c) => c.trim().replaceAll("`", ""));
    rows.push({ flag, env, key, dflt });
  }
  return rows;
}

test("--help shows every option of the README tables with the table's env var and default", () => {
  const r = run(["--help"]);
  assert.equal(r.status, 0);
  const rows = readmeOptions();
  assert.ok(rows.length >= 50, `README option rows: ${rows.length}`);
  // One entry of the help per option: from its flag line to the next flag line.
  const entries = new Map();
  for (const m of r.stdout.matchAll(/^ {2,}(?:-\w, )?(--[a-z0-9-]+)[^\n]*\n([\s\S]*?)(?=^ {2,}(?:-\w, )?--|(?![\s\S]))/gm)) {
    entries.set(m[1], m[2]);
  }
  for (const { flag, env, dflt } of rows) {
    const entry = entries.get(flag);
    assert.ok(entry !== undefined, `${flag} in --help`);
    assert.ok(entry.includes(`[env: ${env}`), `${flag}: [env: ${env}] in --help`);
    if (dflt === "–") assert.ok(!entry.includes("[default:"), `${flag}: no default in --help`);
    else assert.ok(entry.includes(`[default: ${dflt}]`), `${flag}: [default: ${dflt}] in --help:\n${entry}`);
  }
  const helpFlags = [...entries.keys()].filter((f) => f !== "--help" && f !== "--version");
  assert.deepEqual(helpFlags.filter((f) => !rows.some((row) => row.flag === f)), [], "options of --help missing from the README");
});

test("check-config: the effective configuration is a config file that checks back to itself", (t) => {
  const tls = makeTls(t);
  const file = tmpFile(t, "in.toml", [
    'listen = "127.0.0.1:4000"',
    'redis = "redis://127.0.0.1:6390"',
    'namespace = ["/", "/tenant-*", "/org/{id}"]',
    'drain_period = "2s"',
    "event_rate = 10",
    'can_join = ["public:*", "user:{sub}"]',
    "can_publish = []",
    'auth = "webhook"',
    'auth_webhook = "https://auth.internal:8443/check"',
    'upstream = "redis-stream"',
    'pysio_channel = "socketio"',
    `webhook_ca_file = "${tls.caFile}"`,
    "",
  ].join("\n"));
  const first = run(["check-config", file]);
  assert.equal(first.status, 0, first.stderr);
  const [okLine, ...rest] = first.stdout.split("\n");
  assert.match(okLine, /^OK: /);
  const effective = rest.join("\n");
  assert.match(effective, /^namespace = \["\/", "\/tenant-\{p0\}", "\/org\/\{id\}"\]$/m);
  assert.match(effective, /^auth = "webhook"$/m);
  assert.doesNotMatch(effective, /^\[/m, "one flat table: no [section] or [[array]] headers");
  // Everything after the OK line is the config file.
  const again = tmpFile(t, "effective.toml", effective);
  for (const args of [["check-config", "--config", again], ["check-config", again]]) {
    const second = run(args);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.stdout.split("\n").slice(1).join("\n"), effective, args.join(" "));
  }
  // Secrets come out as a placeholder, which is refused (key named) until replaced.
  const secret = run(["check-config", tmpFile(t, "secret.toml", 'api_key = ["0123456789abcdef"]\n')]);
  assert.equal(secret.status, 0, secret.stderr);
  const redacted = tmpFile(t, "redacted.toml", secret.stdout.split("\n").slice(1).join("\n"));
  const refused = run(["check-config", redacted]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /`api_key`.*placeholder/);
});

test("check-config: bad files exit 2 and name the bad key", (t) => {
  const cases = [
    ["unknown.toml", 'listen = "127.0.0.1:4000"\nlisten_port = 4000\n', "listen_port"],
    ["type.toml", 'max_payload = "lots"\n', "max_payload"],
    ["value.toml", "event_rate = -5.0\n", "event_rate"],
    ["nsp.toml", 'namespace = ["chat"]\n', "namespace"],
    ["rule.toml", 'can_join = ["user:{id}"]\n', "can_join"],
    ["fmt.toml", 'log_format = "xml"\n', "log_format"],
    ["syntax.toml", "listen = \n", "listen"],
  ];
  for (const [name, text, key] of cases) {
    const r = run(["check-config", tmpFile(t, name, text)]);
    assert.equal(r.status, 2, `${name}: exit 2 (${r.stdout}${r.stderr})`);
    assert.ok(r.stderr.includes(key), `${name}: error names ${key}: ${r.stderr}`);
  }
  const missing = run(["check-config", "/nonexistent/x.toml"]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /cannot read/);
});

test("check-config: webhook_ca_file must hold PEM certificates, webhook URLs must be http(s)://", (t) => {
  const tls = makeTls(t);
  const good = tmpFile(t, "tls.toml", [
    'auth = "webhook"',
    'auth_webhook = "https://auth.internal:8443/check"',
    `webhook_ca_file = "${tls.caFile}"`,
    "",
  ].join("\n"));
  const r = run(["check-config", good]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.includes(`webhook_ca_file = "${tls.caFile}"`), r.stdout);
  const notPem = tmpFile(t, "not-pem.txt", "hello\n");
  const badCert = tmpFile(t, "bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  const cases = [
    ["missing CA file", 'webhook_ca_file = "/nonexistent/ca.pem"\n', "webhook_ca_file", /cannot read/],
    ["not PEM", `webhook_ca_file = "${notPem}"\n`, "webhook_ca_file", /no PEM certificate/],
    ["broken certificate", `webhook_ca_file = "${badCert}"\n`, "webhook_ca_file", /certificate #1/],
    ["a private key is not a CA", `webhook_ca_file = "${path.join(tls.dir, "ca.key")}"\n`, "webhook_ca_file", /no PEM certificate/],
    ["ftp URL", 'upstream = "webhook"\nupstream_webhook = "ftp://x/y"\n', "upstream_webhook", /unsupported scheme `ftp`/],
    ["no scheme", 'auth = "webhook"\nauth_webhook = "backend:80/auth"\n', "auth_webhook", /http:\/\/ or https:\/\//],
  ];
  for (const [name, text, key, re] of cases) {
    const b = run(["check-config", tmpFile(t, "case.toml", text)]);
    assert.equal(b.status, 2, `${name}: exit 2 (${b.stdout}${b.stderr})`);
    assert.ok(b.stderr.includes(`\`${key}\``), `${name}: error names ${key}: ${b.stderr}`);
    assert.match(b.stderr, re, name);
  }
  // The flag at start-up: same check, exit 2.
  const f = run(["--listen", "127.0.0.1:0", "--webhook-ca-file", notPem]);
  assert.equal(f.status, 2);
  assert.match(f.stderr, /webhook_ca_file/);
});

test("a bad flag value at start-up exits 2 with the key named", () => {
  const r = run(["--listen", "127.0.0.1:0", "--namespace", "nochslash"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /namespace/);
});

test("a published placeholder secret is refused at start-up; with --allow-demo-secrets the node starts and warns", async (t) => {
  // The placeholders deploy/k8s/secret.example.yaml and docker-compose.yml publish, by flag,
  // env var and file; also a JWT secret marked `change-me`.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SIO_GATEWAY_")));
  const refuse = (args, env = {}) => spawnSync(GATEWAY_BIN, ["--listen", "127.0.0.1:0", ...args],
    { encoding: "utf8", env: { ...clean, ...env }, timeout: 10000 });
  const file = tmpFile(t, "demo.toml", 'cluster_secret = "compose-demo-secret-change-me"\n');
  for (const [how, r, key] of [
    ["--api-key", refuse(["--api-key", "change-me-api-key"]), "api_key"],
    ["SIO_GATEWAY_API_KEY", refuse([], { SIO_GATEWAY_API_KEY: "compose-demo-api-key-change-me" }), "api_key"],
    ["--cluster-secret", refuse(["--cluster-secret", "change-me-cluster-secret"]), "cluster_secret"],
    ["cluster_secret in a file", refuse(["--config", file]), "cluster_secret"],
    ["--jwt-secret", refuse(["--auth", "jwt", "--jwt-secret", "our-jwt-secret-CHANGE-ME"]), "jwt_secret"],
  ]) {
    assert.equal(r.status, 2, `${how}: exit 2, got ${r.status}\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`\`${key}\`: a published demo placeholder.*openssl rand -hex 32.*--allow-demo-secrets`), how);
  }
  const c = run(["check-config", file]);
  assert.equal(c.status, 2, "check-config refuses what start-up refuses");
  assert.match(c.stderr, /`cluster_secret`: a published demo placeholder/);

  // With the opt-in the node runs, and says so, naming the options but not the values.
  const port = await freePort();
  const p = track(t, startProcess(GATEWAY_BIN, ["--listen", `127.0.0.1:${port}`, "--api-key", "change-me-api-key",
    "--cluster-secret", "a-real-cluster-secret-0123456789"], { name: "gw-demo", env: { SIO_GATEWAY_ALLOW_DEMO_SECRETS: "true" } }));
  await waitReady(`http://127.0.0.1:${port}`, p);
  const warning = () => p.output().split("\n").find((l) => /WARN/.test(l) && /demo secrets/.test(l));
  const deadline = Date.now() + 5000;
  while (!warning() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  assert.ok(warning(), `a WARN line about the demo secret:\n${p.output()}`);
  assert.match(warning(), /api_key/);
  assert.doesNotMatch(warning(), /cluster_secret/, "only the placeholder is named");
  assert.doesNotMatch(p.output(), /change-me-api-key|a-real-cluster-secret/, "no secret value in the log");
  const api = await fetch(`http://127.0.0.1:${port}/api/v1/sockets`, { headers: { authorization: "Bearer change-me-api-key" } });
  assert.equal(api.status, 200, "the demo key works, as asked");
  await p.stop();

  // Real secrets: no warning.
  const port2 = await freePort();
  const q = track(t, startProcess(GATEWAY_BIN, ["--listen", `127.0.0.1:${port2}`, "--api-key", "k3y-0123456789abcdef",
    "--allow-demo-secrets", "true"], { name: "gw-real" }));
  await waitReady(`http://127.0.0.1:${port2}`, q);
  await new Promise((res) => setTimeout(res, 300));
  assert.doesNotMatch(q.output(), /demo secrets/);
  await q.stop();
});

test("--redis with an unreachable Redis fails clearly at start-up", () => {
  const r = run(["--listen", "127.0.0.1:0", "--redis", "redis://127.0.0.1:1"]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /redis:\/\/127\.0\.0\.1:1/, "the error names the Redis URL");
  assert.match(r.stderr, /Redis/);
});

test("env vars, TOML file and precedence flag > env > file > default", async (t) => {
  const filePort = await freePort();
  const file = tmpFile(t, "node.toml", [
    `listen = "127.0.0.1:${filePort}"`,
    'node_id = "from-file"',
    'namespace = ["/", "/from-file"]',
    "",
  ].join("\n"));

  // File alone: its listen address and node id are used.
  const p1 = track(t, startProcess(GATEWAY_BIN, ["--config", file], { name: "gw-file" }));
  const r1 = await waitReady(`http://127.0.0.1:${filePort}`, p1);
  assert.equal(r1.node_id, "from-file");
  await p1.stop();

  // Env beats file (SIO_GATEWAY_CONFIG also works as the way to pass the file).
  const envPort = await freePort();
  const p2 = track(t, startProcess(GATEWAY_BIN, [], {
    name: "gw-env",
    env: { SIO_GATEWAY_CONFIG: file, SIO_GATEWAY_LISTEN: `127.0.0.1:${envPort}`, SIO_GATEWAY_NODE_ID: "from-env" },
  }));
  const r2 = await waitReady(`http://127.0.0.1:${envPort}`, p2);
  assert.equal(r2.node_id, "from-env");
  await p2.stop();

  // Flag beats env.
  const flagPort = await freePort();
  const p3 = track(t, startProcess(GATEWAY_BIN, ["--listen", `127.0.0.1:${flagPort}`, "--node-id", "from-flag"], {
    name: "gw-flag",
    env: { SIO_GATEWAY_CONFIG: file, SIO_GATEWAY_NODE_ID: "from-env" },
  }));
  const r3 = await waitReady(`http://127.0.0.1:${flagPort}`, p3);
  assert.equal(r3.node_id, "from-flag");
  // Namespaces still come from the file (nothing higher set them): /from-file is served.
  const { io } = await import("socket.io-client");
  const s = io(`http://127.0.0.1:${flagPort}/from-file`, { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  await new Promise((res, rej) => { s.once("connect", res); s.once("connect_error", rej); });
  // Env var lists: comma separated.
  await p3.stop();
  const listPort = await freePort();
  const p4 = track(t, startProcess(GATEWAY_BIN, ["--listen", `127.0.0.1:${listPort}`], {
    name: "gw-list",
    env: { SIO_GATEWAY_NAMESPACE: "/a,/b", SIO_GATEWAY_LOG_FORMAT: "json", SIO_GATEWAY_LOG_LEVEL: "info" },
  }));
  await waitReady(`http://127.0.0.1:${listPort}`, p4);
  for (const nsp of ["/a", "/b"]) {
    const c = io(`http://127.0.0.1:${listPort}${nsp}`, { forceNew: true, reconnection: false, transports: ["websocket"] });
    track(t, c);
    await new Promise((res, rej) => { c.once("connect", res); c.once("connect_error", rej); });
  }
  // JSON logs: the start-up line is a JSON object with the node id as a field.
  const line = p4.output().split("\n").find((l) => l.includes("sio-gateway listening"));
  const rec = JSON.parse(line);
  assert.equal(rec.message, "sio-gateway listening");
  assert.ok(rec.node_id);
});

/** The process's environment and arguments as the kernel shows them (after any exec). */
function procInfo(pid) {
  const env = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  const huge = Number(/AnonHugePages:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1]);
  // Mappings advised MADV_HUGEPAGE (VmFlags "hg"): what glibc's hugetlb=1 does to its heap.
  const advised = (fs.readFileSync(`/proc/${pid}/smaps`, "utf8").match(/^VmFlags:.*\bhg\b/gm) ?? []).length;
  return { tunables: env.find((e) => e.startsWith("GLIBC_TUNABLES=")), argv, hugeKb: huge, advised };
}

test("heap huge pages: one re-exec with GLIBC_TUNABLES, same pid and arguments; off by flag; the operator's value wins", async (t) => {
  const { io } = await import("socket.io-client");
  const env = { GLIBC_TUNABLES: "" };
  const port = await freePort();
  const args = ["--listen", `127.0.0.1:${port}`, "--node-id", "heap-on"];
  const on = track(t, startProcess(GATEWAY_BIN, args, { name: "gw-heap-on", env }));
  assert.equal((await waitReady(`http://127.0.0.1:${port}`, on)).node_id, "heap-on");
  const info = procInfo(on.pid); // the pid we spawned is still the node: exec, not a child
  assert.match(info.tunables ?? "", /glibc\.malloc\.hugetlb=1/);
  assert.deepEqual(info.argv.slice(1), args);
  assert.match(on.output(), /heap huge pages requested/, "the start-up log says so");
  assert.doesNotMatch(on.output(), /heap huge pages off/);
  // It serves as before. Whether glibc then advises the grown heap for huge pages is glibc's
  // doing, not the gateway's, and not every start (glibc 2.36 here, the same with the tunables
  // set directly: 4 of 5 starts advised, the heap of the fifth not at all), so it is reported,
  // not asserted; the off case below asserts that nothing is advised without the tunable.
  // 300 websockets grow the heap past a few MiB, so glibc has something to advise.
  const connect300 = async (p) => {
    const clients = [];
    for (let i = 0; i < 300; i++) {
      const s = io(`http://127.0.0.1:${p}`, { forceNew: true, reconnection: false, transports: ["websocket"] });
      clients.push(s);
      track(t, s);
    }
    await Promise.all(clients.map((s) => new Promise((res, rej) => { s.once("connect", res); s.once("connect_error", rej); })));
    return clients;
  };
  const clients = await connect300(port);
  const thp = fs.readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8");
  if (!thp.includes("[never]")) {
    const { advised, hugeKb } = procInfo(on.pid);
    t.diagnostic(`mappings advised MADV_HUGEPAGE: ${advised}, AnonHugePages ${hugeKb} kB, THP ${thp.trim()}`);
  }
  for (const s of clients) s.disconnect();
  await on.stop();

  const offPort = await freePort();
  const off = track(t, startProcess(GATEWAY_BIN, ["--listen", `127.0.0.1:${offPort}`, "--heap-huge-pages", "false"], { name: "gw-heap-off", env }));
  await waitReady(`http://127.0.0.1:${offPort}`, off);
  const offClients = await connect300(offPort);
  const offInfo = procInfo(off.pid);
  for (const s of offClients) s.disconnect();
  assert.ok(!/hugetlb/.test(offInfo.tunables ?? ""), "no tunables added when off");
  assert.equal(offInfo.advised, 0, "nothing advised MADV_HUGEPAGE when off");
  assert.match(off.output(), /heap huge pages off/);
  await off.stop();

  const opPort = await freePort();
  const op = track(t, startProcess(GATEWAY_BIN, ["--listen", `127.0.0.1:${opPort}`], {
    name: "gw-heap-operator", env: { GLIBC_TUNABLES: "glibc.malloc.hugetlb=0" },
  }));
  await waitReady(`http://127.0.0.1:${opPort}`, op);
  assert.equal(procInfo(op.pid).tunables, "GLIBC_TUNABLES=glibc.malloc.hugetlb=0");
  assert.match(op.output(), /heap huge pages off/, "the log follows the operator's hugetlb=0");
  await op.stop();
});

async function waitReady(url, proc) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (!proc.running) throw new Error(`exited early:\n${proc.output()}`);
    const r = await fetch(url + "/readyz").catch(() => null);
    if (r && r.status === 200) return r.json();
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`not ready: ${url}\n${proc.output()}`);
}
