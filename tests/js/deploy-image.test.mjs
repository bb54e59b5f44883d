// The container image, without a container engine: the Dockerfile builds with the command
// docs/deploying.md documents, its build context (after .dockerignore) holds everything the
// build reads, its runtime settings agree with each other, and its health probe script works
// against real HTTP servers (against a real gateway too: see deploy-config.test.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { spawn } from "node:child_process";
import { ROOT, freePort, track } from "../lib/harness.mjs";
import { DOCKERFILE, dockerfileEnv, loadYamlDocs } from "../lib/deploy.mjs";

const DOCS = path.join(ROOT, "docs/deploying.md");
const HEALTHCHECK = path.join(ROOT, "deploy/healthcheck.sh");
const dockerfile = () => fs.readFileSync(DOCKERFILE, "utf8");
/** Dockerfile instructions with line continuations joined and comments dropped. */
const instructions = () => dockerfile().replace(/\\\n/g, " ").split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));

/** The `cargo ...` command of a RUN instruction or a shell line, whitespace-normalised. */
function cargoBuild(text) {
  const m = text.match(/\bcargo build\b[^&;|\n]*/);
  return m && m[0].trim().replace(/\s+/g, " ");
}

test("the image is built with exactly the cargo command docs/deploying.md shows", () => {
  const run = instructions().find((l) => /^RUN\b.*\bcargo build\b/.test(l));
  assert.ok(run, "the Dockerfile has a RUN cargo build");
  const fromDockerfile = cargoBuild(run);
  assert.equal(fromDockerfile, "cargo build --profile dist --locked -p sio-gateway");
  const docs = fs.readFileSync(DOCS, "utf8");
  const blocks = [...docs.matchAll(/```(?:sh|bash|console)?\n([\s\S]*?)```/g)].map((m) => m[1]);
  const documented = blocks.flatMap((b) => b.split("\n")).map((l) => l.trim()).filter((l) => l.startsWith("cargo build")).map(cargoBuild);
  assert.deepEqual([...new Set(documented)], [fromDockerfile], "docs/deploying.md shows the Dockerfile's cargo build command");
  // ...and the binary it installs is the one the ENTRYPOINT runs.
  assert.match(run, /install -m 0755 target\/dist\/sio-gateway \/usr\/local\/bin\/sio-gateway/);
  assert.ok(instructions().some((l) => l === 'ENTRYPOINT ["/usr/local/bin/sio-gateway"]'));
  assert.match(docs, /target\/dist\/sio-gateway/);
  // The shipped profile has no debug info and no symbols; the release profile keeps line tables
  // for profiling.
  const ws = fs.readFileSync(path.join(ROOT, "Cargo.toml"), "utf8");
  const dist = ws.match(/\[profile\.dist\]([^[]*)/)?.[1] ?? "";
  assert.match(dist, /inherits = "release"/);
  assert.match(dist, /debug = 0/);
  assert.match(dist, /strip = "symbols"/);
});

/** .dockerignore semantics for the patterns we use: anchored at the context root, `**` any depth. */
function dockerIgnored(rel, patterns) {
  const toRe = (p) => new RegExp("^" + p.replace(/^\//, "").replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*\*\//g, "(?:.*/)?").replace(/\*\*/g, ".*").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]") + "$");
  const res = patterns.map(toRe);
  const parts = rel.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join("/");
    if (res.some((re) => re.test(prefix))) return true;
  }
  return false;
}

test("the build context (after .dockerignore) holds everything the Dockerfile and the cargo build read", () => {
  const patterns = fs.readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  assert.ok(!patterns.some((p) => p.startsWith("!")), "no negations (the matcher here does not implement them)");
  assert.ok(dockerIgnored("target/debug/sio-gateway", patterns), "target/ is excluded");
  assert.ok(dockerIgnored("tests/node_modules/ws/index.js", patterns), "node_modules are excluded");
  assert.ok(dockerIgnored(".git/HEAD", patterns), ".git is excluded");

  const copies = instructions().filter((l) => /^COPY\b/.test(l) && !/--from=/.test(l));
  const sources = copies.flatMap((l) => l.replace(/^COPY\s+/, "").split(/\s+/).filter((w) => !w.startsWith("--")).slice(0, -1));
  assert.ok(sources.length >= 5);
  for (const src of sources) {
    assert.ok(fs.existsSync(path.join(ROOT, src)), `COPY source ${src} exists`);
    assert.ok(!dockerIgnored(src, patterns), `COPY source ${src} is not excluded by .dockerignore`);
  }
  assert.ok(sources.includes("Cargo.lock") && sources.includes("crates"), "the build gets Cargo.lock and crates/");

  // The workspace and everything it reads lives in what is copied: Cargo.toml, Cargo.lock, crates/.
  const inside = (p) => { const r = path.relative(path.join(ROOT, "crates"), p); return !r.startsWith("..") && !path.isAbsolute(r); };
  const ws = fs.readFileSync(path.join(ROOT, "Cargo.toml"), "utf8");
  const members = [...ws.match(/members\s*=\s*\[([^\]]*)\]/)[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  for (const m of members) assert.ok(inside(path.join(ROOT, m)), `workspace member ${m} is under crates/`);
  for (const m of ws.matchAll(/path\s*=\s*"([^"]+)"/g)) assert.ok(inside(path.join(ROOT, m[1])), `path dependency ${m[1]} is under crates/`);
  const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === "target" ? [] : walk(p);
    return [p];
  });
  for (const file of walk(path.join(ROOT, "crates"))) {
    if (file.endsWith("Cargo.toml")) {
      for (const m of fs.readFileSync(file, "utf8").matchAll(/path\s*=\s*"([^"]+)"/g)) {
        assert.ok(inside(path.resolve(path.dirname(file), m[1])), `${path.relative(ROOT, file)}: path ${m[1]} stays under crates/`);
      }
    }
    if (file.endsWith(".rs")) {
      for (const m of fs.readFileSync(file, "utf8").matchAll(/include_(?:str|bytes)!\(\s*"([^"]+)"/g)) {
        assert.ok(inside(path.resolve(path.dirname(file), m[1])), `${path.relative(ROOT, file)}: include ${m[1]} stays under crates/ (the image build copies only crates/)`);
      }
    }
  }

  // The client bundle the image copies out of `npm ci` is where the lockfile's package puts it.
  const copyFrom = instructions().find((l) => /^COPY --from=clientjs /.test(l));
  const bundle = copyFrom.split(/\s+/)[2].replace(/^\/src\//, "web/");
  assert.ok(fs.existsSync(path.join(ROOT, bundle)), `${bundle} exists after npm ci in web/`);
  const dest = copyFrom.split(/\s+/)[3];
  assert.equal(dockerfileEnv().SIO_GATEWAY_CLIENT_JS, dest, "SIO_GATEWAY_CLIENT_JS points at the copied bundle");
});

test("the image's runtime settings agree: toolchain, user, ports, health check", () => {
  const lines = instructions();
  const ws = fs.readFileSync(path.join(ROOT, "Cargo.toml"), "utf8");
  const need = ws.match(/rust-version\s*=\s*"([\d.]+)"/)[1].split(".").map(Number);
  const have = dockerfile().match(/ARG RUST_VERSION=([\d.]+)/)[1].split(".").map(Number);
  assert.ok(have[0] > need[0] || (have[0] === need[0] && have[1] >= need[1]), `rust ${have.join(".")} >= rust-version ${need.join(".")}`);
  assert.ok(lines.some((l) => /^FROM rust:\$\{RUST_VERSION\}-bookworm AS build$/.test(l)));
  assert.ok(lines.some((l) => /^FROM debian:bookworm-slim AS runtime$/.test(l)), "runtime = debian:bookworm-slim");
  const user = lines.find((l) => /^USER /.test(l)).split(/\s+/)[1];
  assert.match(user, /^[1-9]\d*:[1-9]\d*$/, "numeric non-root USER (Kubernetes runAsNonRoot can verify it)");
  const [dep] = loadYamlDocs(path.join(ROOT, "deploy/k8s/deployment.yaml"));
  assert.equal(`${dep.spec.template.spec.securityContext.runAsUser}:${dep.spec.template.spec.securityContext.runAsGroup}`, user, "k8s runAsUser/Group = the image's USER");
  const exposed = lines.filter((l) => /^EXPOSE /.test(l)).flatMap((l) => l.split(/\s+/).slice(1));
  assert.ok(exposed.includes(dockerfileEnv().SIO_GATEWAY_LISTEN.split(":").pop()), "EXPOSE the listen port");
  const hc = lines.find((l) => /^HEALTHCHECK /.test(l));
  const probe = hc.match(/CMD \["([^"]+)"\]/)[1];
  assert.ok(lines.some((l) => l === `COPY deploy/healthcheck.sh ${probe}`), "the HEALTHCHECK runs the copied deploy/healthcheck.sh");
  assert.ok(fs.statSync(HEALTHCHECK).mode & 0o111, "healthcheck.sh is executable (COPY keeps the mode)");
});

function runProbe(listen) {
  return new Promise((resolve) => {
    const p = spawn(HEALTHCHECK, [], { env: { PATH: process.env.PATH, ...(listen ? { SIO_GATEWAY_LISTEN: listen } : {}) } });
    let err = "";
    p.stderr.on("data", (d) => { err += d; });
    const timer = setTimeout(() => p.kill("SIGKILL"), 10000);
    p.on("exit", (code) => { clearTimeout(timer); resolve({ code, err }); });
  });
}

test("deploy/healthcheck.sh: 0 only when GET /healthz answers 200; wildcard listen probed on loopback", async (t) => {
  let status = 200;
  const paths = [];
  const server = http.createServer((req, res) => { paths.push(req.url); res.writeHead(status); res.end(); });
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  track(t, { close: () => new Promise((r) => server.close(r)) });

  assert.equal((await runProbe(`127.0.0.1:${port}`)).code, 0);
  assert.equal((await runProbe(`0.0.0.0:${port}`)).code, 0, "0.0.0.0 is probed on 127.0.0.1");
  assert.deepEqual(paths, ["/healthz", "/healthz"]);
  status = 503;
  const r = await runProbe(`127.0.0.1:${port}`);
  assert.equal(r.code, 1);
  assert.match(r.err, /unhealthy: HTTP\/1\.1 503/);
  const closed = await freePort();
  const c = await runProbe(`127.0.0.1:${closed}`);
  assert.equal(c.code, 1);
  assert.match(c.err, /cannot connect/);
});
