// Real load balancers (Debian haproxy / nginx binaries) in front of three gateway nodes, using
// the configuration files of deploy/ AS IS: no copies that could drift from what operators run.
//
// The deploy/ files take their addresses from the environment (see the comment at the top of
// each): LB_LISTEN and GATEWAY_1..GATEWAY_3 (host:port). HAProxy expands "${NAME}" itself; the
// nginx files are envsubst templates, rendered here exactly like deploy/nginx/render.sh (only
// the load balancer variables are substituted, nginx's own $variables stay). The configs know
// three nodes whose ids (the sio_node cookie values) are gateway-1..gateway-3, so `backends`
// must be exactly those three, in that order.
//
//   const lb = await startHaproxy({ variant: "sticky", backends: [{ id: "gateway-1", host, port }, ...] });
//   fetch(lb.url + "/socket.io/?EIO=4&transport=polling"); ... await lb.stop();
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, freePort, startProcess, waitFor, waitForPort } from "./harness.mjs";

export const DEPLOY = path.join(ROOT, "deploy");
export const NODE_IDS = ["gateway-1", "gateway-2", "gateway-3"];
export const HAPROXY_CONFIGS = {
  sticky: path.join(DEPLOY, "haproxy/haproxy-sticky.cfg"),
  roundrobin: path.join(DEPLOY, "haproxy/haproxy-roundrobin.cfg"),
};
export const NGINX_TEMPLATES = {
  sticky: path.join(DEPLOY, "nginx/sio-gateway-sticky.conf.template"),
  roundrobin: path.join(DEPLOY, "nginx/sio-gateway-roundrobin.conf.template"),
};
/** The variables deploy/nginx/render.sh substitutes (and nothing else). */
export const TEMPLATE_VARS = ["LB_LISTEN", ...Array.from({ length: 9 }, (_, i) => `GATEWAY_${i + 1}`)];

function lbEnv(backends, host, port) {
  if (backends.length !== NODE_IDS.length || backends.some((b, i) => b.id !== NODE_IDS[i])) {
    throw new Error(`the deploy/ load balancer configs are for exactly ${NODE_IDS.join(", ")} (in order); got ${backends.map((b) => b.id).join(", ")}`);
  }
  const env = { LB_LISTEN: `${host}:${port}` };
  backends.forEach((b, i) => { env[`GATEWAY_${i + 1}`] = `${b.host ?? "127.0.0.1"}:${b.port}`; });
  return env;
}

/**
 * envsubst with an explicit variable list, as deploy/nginx/render.sh runs it: `$NAME` and
 * `${NAME}` for NAME in `names` are replaced by env[NAME] (empty when unset); everything else is
 * left byte for byte.
 */
export function renderTemplate(text, env, names = TEMPLATE_VARS) {
  const set = new Set(names);
  return text.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (m, braced, bare) => {
    const name = braced ?? bare;
    return set.has(name) ? (env[name] ?? "") : m;
  });
}

/**
 * Wait until the balancer itself is up, not just "something answers on the port" (freePort()
 * races with other processes): `ownReady` proves it is this process (HAProxy: its stats page
 * answers; nginx: its pid file exists, written only after every listen socket is bound).
 */
async function lbHandle(proc, host, port, extra = {}, ownReady = async () => true) {
  try {
    await Promise.race([
      (async () => {
        await waitFor(ownReady, { timeoutMs: 10000, what: `${proc.name} ready` });
        await waitForPort(port, host, 10000);
      })(),
      proc.exited.then(() => { throw new Error(`${proc.name} exited before listening`); }),
    ]);
  } catch (e) {
    await proc.stop();
    throw new Error(`${e.message}\n--- ${proc.name} output ---\n${proc.output()}`);
  }
  if (!proc.running) throw new Error(`${proc.name} exited:\n${proc.output()}`);
  return Object.assign(proc, { host, port, url: `http://${host}:${port}`, ...extra });
}

/** Start on free ports, again on fresh ones if a port was taken meanwhile (unless `port` was given). */
async function retryBind(port, start) {
  for (let i = 1; ; i++) {
    try {
      return await start(port ?? (await freePort()));
    } catch (e) {
      if (port != null || i >= 3 || !/Address already in use|cannot bind|bind\(\)/i.test(e.message)) throw e;
    }
  }
}

/**
 * haproxy -f deploy/haproxy/haproxy-<variant>.cfg -db, on 127.0.0.1:<port>; its stats frontend
 * (Prometheus /metrics, /stats) on another free port: `statsUrl`.
 */
export function startHaproxy({ variant = "sticky", backends, port, host = "127.0.0.1" }) {
  return retryBind(port, (p) => startHaproxyOnce({ variant, backends, port: p, host }));
}

async function startHaproxyOnce({ variant, backends, port, host }) {
  const file = HAPROXY_CONFIGS[variant];
  if (!file) throw new Error(`unknown haproxy variant ${variant}`);
  const statsPort = await freePort();
  const env = { ...lbEnv(backends, host, port), LB_STATS_LISTEN: `${host}:${statsPort}` };
  const proc = startProcess(process.env.HAPROXY || "haproxy", ["-f", file, "-db"], { env, name: `haproxy-${variant}:${port}` });
  const statsUrl = `http://${host}:${statsPort}`;
  return lbHandle(proc, host, port, { config: file, statsUrl }, async () => {
    const r = await fetch(`${statsUrl}/stats`).catch(() => null);
    return r?.status === 200 && /HAProxy/.test(await r.text());
  });
}

/**
 * nginx with deploy/nginx/sio-gateway-<variant>.conf.template rendered into a temp dir and
 * included from a minimal main config whose pid, logs and temp paths all live in that dir.
 */
export function startNginx({ variant = "sticky", backends, port, host = "127.0.0.1" }) {
  return retryBind(port, (p) => startNginxOnce({ variant, backends, port: p, host }));
}

async function startNginxOnce({ variant, backends, port, host }) {
  const template = NGINX_TEMPLATES[variant];
  if (!template) throw new Error(`unknown nginx variant ${variant}`);
  const env = lbEnv(backends, host, port);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-nginx-"));
  // nginx workers run as an unprivileged user when the master is root: let them write temp files.
  fs.chmodSync(dir, 0o755);
  const rendered = path.join(dir, "sio-gateway.conf");
  fs.writeFileSync(rendered, renderTemplate(fs.readFileSync(template, "utf8"), env));
  const main = path.join(dir, "nginx.conf");
  fs.writeFileSync(main, [
    "worker_processes 1;",
    `pid ${dir}/nginx.pid;`,
    "error_log stderr warn;",
    "events { worker_connections 1024; }",
    "http {",
    `  access_log ${dir}/access.log;`,
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((k) => `  ${k}_temp_path ${dir}/${k}_temp;`),
    `  include ${rendered};`,
    "}",
    "",
  ].join("\n"));
  const proc = startProcess(process.env.NGINX || "nginx", ["-p", dir, "-e", "stderr", "-c", main, "-g", "daemon off;"], { name: `nginx-${variant}:${port}` });
  let handle;
  try {
    handle = await lbHandle(proc, host, port, { config: rendered, dir }, () => fs.existsSync(path.join(dir, "nginx.pid")));
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const stop = handle.stop;
  handle.stop = async (sig = "SIGTERM") => {
    // SIGTERM: fast shutdown, the master stops its worker first (SIGKILL would orphan it, and
    // SIGQUIT would wait for open WebSockets).
    await stop.call(handle, sig);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return handle;
}
