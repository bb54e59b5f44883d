// Helpers for the deployment tests (tests/js/deploy-*.test.mjs): read the files of deploy/ and
// docker-compose.yml the way docker compose / kubectl / the image read them, and extract every
// way they configure sio-gateway (SIO_GATEWAY_* variables and flags), so the tests can hold them
// against the real binary.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import YAML from "yaml";
import { ROOT, GATEWAY_BIN, startProcess, waitFor } from "./harness.mjs";

export const COMPOSE_FILE = path.join(ROOT, "docker-compose.yml");
export const K8S_DIR = path.join(ROOT, "deploy/k8s");
export const DOCKERFILE = path.join(ROOT, "deploy/Dockerfile");

/** Every YAML document of a file (YAML 1.1 merge keys `<<` resolved, as compose does). */
export function loadYamlDocs(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { merge: true });
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join("; ")}`);
  }
  return docs.map((d) => d.toJS({ maxAliasCount: -1 })).filter((d) => d != null);
}

/**
 * docker compose variable interpolation: $$ (literal $), ${VAR}, ${VAR:-default}, ${VAR-default},
 * ${VAR:?err}, ${VAR?err}, $VAR. Unset variables without default become "".
 */
export function composeInterpolate(value, env = {}) {
  if (typeof value === "string") {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
      (m, name, op, arg, bare) => {
        if (m === "$$") return "$";
        if (bare) return env[bare] ?? "";
        const v = env[name];
        if (!op) return v ?? "";
        const unset = op.startsWith(":") ? v == null || v === "" : v == null;
        if (op.endsWith("?")) { if (unset) throw new Error(`compose: ${name} required: ${arg}`); return v; }
        return unset ? arg : v;
      });
  }
  if (Array.isArray(value)) return value.map((v) => composeInterpolate(v, env));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, composeInterpolate(v, env)]));
  }
  return value;
}

/** docker-compose.yml as compose sees it with an empty environment (so every default applies). */
export function loadCompose(env = {}) {
  const [doc] = loadYamlDocs(COMPOSE_FILE);
  return composeInterpolate(doc, env);
}

function envToObject(environment) {
  if (!environment) return {};
  if (Array.isArray(environment)) {
    return Object.fromEntries(environment.map((e) => { const i = e.indexOf("="); return i < 0 ? [e, ""] : [e.slice(0, i), e.slice(i + 1)]; }));
  }
  return Object.fromEntries(Object.entries(environment).map(([k, v]) => [k, v == null ? "" : String(v)]));
}

function argsOf(x) {
  if (x == null) return [];
  return Array.isArray(x) ? x.map(String) : String(x).split(/\s+/).filter(Boolean);
}

/** `ENV` of the Dockerfile's last (runtime) stage, as { NAME: value }. */
export function dockerfileEnv() {
  const text = fs.readFileSync(DOCKERFILE, "utf8").replace(/\\\n/g, " ");
  const stages = text.split(/^FROM /m);
  const last = stages[stages.length - 1];
  const env = {};
  for (const line of last.split("\n")) {
    const m = line.match(/^ENV\s+(.*)$/);
    if (!m) continue;
    for (const kv of m[1].trim().split(/\s+/)) {
      const i = kv.indexOf("=");
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1).replace(/^"|"$/g, "");
    }
  }
  return env;
}

/**
 * Every place that runs sio-gateway with configuration: { source, env, args }.
 * - docker compose: each service built from deploy/Dockerfile (or using its image), image ENV
 *   underneath the service's environment;
 * - Kubernetes: the Deployment's container: ConfigMap + Secret (envFrom, in order) then env.
 */
export function gatewayInvocations() {
  const out = [];
  const imageEnv = dockerfileEnv();
  const compose = loadCompose();
  const gatewayImages = new Set(Object.values(compose.services)
    .filter((s) => s.build && (s.build.dockerfile || "").endsWith("deploy/Dockerfile")).map((s) => s.image));
  for (const [name, svc] of Object.entries(compose.services)) {
    const built = svc.build && (svc.build.dockerfile || "").endsWith("deploy/Dockerfile");
    if (!built && !gatewayImages.has(svc.image)) continue;
    out.push({ source: `docker-compose.yml services.${name}`, env: { ...imageEnv, ...envToObject(svc.environment) }, args: argsOf(svc.command) });
  }

  const objects = k8sObjects();
  const byKind = (kind, name) => objects.find((o) => o.kind === kind && o.metadata?.name === name);
  for (const dep of objects.filter((o) => o.kind === "Deployment")) {
    for (const c of dep.spec.template.spec.containers) {
      if (!/sio-gateway/.test(c.image)) continue;
      const env = { ...imageEnv };
      for (const ef of c.envFrom || []) {
        if (ef.configMapRef) {
          const cm = byKind("ConfigMap", ef.configMapRef.name);
          if (!cm) throw new Error(`ConfigMap ${ef.configMapRef.name} referenced by ${dep.metadata.name} not in deploy/k8s`);
          Object.assign(env, envToObject(cm.data));
        }
        if (ef.secretRef) {
          const sec = byKind("Secret", ef.secretRef.name);
          if (!sec) throw new Error(`Secret ${ef.secretRef.name} referenced by ${dep.metadata.name} not in deploy/k8s`);
          Object.assign(env, envToObject(sec.stringData));
          for (const [k, v] of Object.entries(sec.data || {})) env[k] = Buffer.from(v, "base64").toString();
        }
      }
      for (const e of c.env || []) env[e.name] = e.value ?? `<${e.valueFrom ? Object.keys(e.valueFrom)[0] : "unset"}>`;
      out.push({ source: `deploy/k8s Deployment ${dep.metadata.name}/${c.name}`, env, args: [...argsOf(c.command).slice(1), ...argsOf(c.args)], container: c, deployment: dep });
    }
  }
  return out;
}

/** The resources listed by deploy/k8s/kustomization.yaml plus any other manifest in deploy/k8s. */
export function k8sFiles() {
  return fs.readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml").map((f) => path.join(K8S_DIR, f));
}

export function k8sObjects() {
  return k8sFiles().flatMap((f) => loadYamlDocs(f).map((o) => Object.assign(o, { __file: path.basename(f) })));
}

let helpCache;
/** Long flags and SIO_GATEWAY_* variables the real binary documents in `--help`. */
export function gatewayHelp() {
  if (helpCache) return helpCache;
  const text = execFileSync(GATEWAY_BIN, ["--help"], { env: { PATH: process.env.PATH }, timeout: 10000 }).toString();
  const flags = new Set([...text.matchAll(/^\s*(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)/gm)].map((m) => m[1]));
  const envs = new Set([...text.matchAll(/\[env: (SIO_GATEWAY_[A-Z0-9_]+)/g)].map((m) => m[1]));
  helpCache = { text, flags, envs };
  return helpCache;
}

/** Parse a duration as the gateway writes them: 500ms, 10s, 2m, or bare seconds. */
export function parseDurationSeconds(s) {
  const m = String(s).trim().match(/^(\d+(?:\.\d+)?)(ms|s|m)?$/);
  if (!m) throw new Error(`not a duration: ${s}`);
  return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 }[m[2] || "s"]);
}

/** Flags (`--name` or `--name=value`) in an argument list. */
export function flagsIn(args) {
  return args.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0]);
}

/**
 * Start the gateway binary and resolve when `probe` answers 200, failing AT ONCE if the process
 * exits (harness.startGateway keeps polling until its timeout in that case). `args` and `env`
 * are passed as given; `port` must be the port of its --listen / SIO_GATEWAY_LISTEN.
 */
export async function startGatewayFast({ args = [], env = {}, port, probe = "/readyz", name = "gateway", timeoutMs = 20000 }) {
  const proc = startProcess(GATEWAY_BIN, args, { env, name });
  const url = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([
      waitFor(async () => {
        const r = await fetch(url + probe).catch(() => null);
        return r && r.status === 200;
      }, { timeoutMs, what: `${name} ${probe}` }),
      proc.exited.then(() => { throw new Error(`${name}: gateway exited early`); }),
    ]);
  } catch (e) {
    await proc.stop();
    e.message += `\n--- gateway output ---\n${proc.output()}`;
    throw e;
  }
  return Object.assign(proc, { port, url });
}

/**
 * Run `start()` (which picks its own free ports) again when a port it picked was taken by
 * another process in the meantime: freePort() can only say a port WAS free.
 */
export async function withPortRetry(start, attempts = 3) {
  for (let i = 1; ; i++) {
    try {
      return await start();
    } catch (e) {
      if (i >= attempts || !/Address already in use|EADDRINUSE|cannot bind/i.test(e.message)) throw e;
    }
  }
}
