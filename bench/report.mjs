// Prints the comparison table of one bench/compare.sh run (Markdown) from the JSON
// results sio-bench wrote into the run's directory: node bench/report.mjs DIR
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
const load = (name) => {
  const f = join(dir, `${name}.json`);
  if (!existsSync(f)) return undefined;
  try { return JSON.parse(readFileSync(f, "utf8")); } catch { return undefined; }
};
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5));
const fmt = (v, d = 0) => (v === undefined || v === null || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
// advantage > 1 means the gateway is better (lower is better unless higher=true).
const adv = (g, n, higher) => {
  if (g === undefined || n === undefined || g === null || n === null) return "–";
  if (higher) return n > 0 ? `${(g / n).toFixed(2)}×` : "–";
  return g > 0 ? `${(n / g).toFixed(2)}×` : "–";
};

const rows = [];
const row = (label, g, n, higher, d = 1, unit = "") =>
  rows.push(`| ${label} | ${fmt(g, d)}${g != null ? unit : ""} | ${fmt(n, d)}${n != null ? unit : ""} | ${adv(g, n, higher)} |`);
const note = (label, text) => rows.push(`| ${label} | ${text} | | |`);

const gi = load("gateway-idle"), ni = load("node-idle");
row("idle RSS per connection (KB)", gi?.bytes_per_connection / 1000, ni?.bytes_per_connection / 1000, false, 2);
const gc = load("gateway-connect"), nc = load("node-connect");
row("handshakes per second", gc?.handshakes_per_s, nc?.handshakes_per_s, true, 0);
row("handshake latency p99 (ms)", gc?.latency?.p99_ms, nc?.latency?.p99_ms, false, 2);

const fanouts = [...new Set(files.filter((f) => /^(gateway|node)-fanout-/.test(f)).map((f) => f.replace(/^(gateway|node)-/, "")))]
  .sort((a, b) => {
    const [, oa, ra] = a.match(/fanout-(\w+)-([\d.]+)/); const [, ob, rb] = b.match(/fanout-(\w+)-([\d.]+)/);
    return oa === ob ? Number(ra) - Number(rb) : oa.localeCompare(ob);
  });
for (const f of fanouts) {
  const [, origin, rate] = f.match(/fanout-(\w+)-([\d.]+)/);
  const g = load(`gateway-${f}`), n = load(`node-${f}`);
  const gs = g?.steps?.[0], ns = n?.steps?.[0];
  const p = `${origin} ${rate}/s × ${g?.receivers ?? n?.receivers} rcv:`;
  if (g?.skipped || n?.skipped) note(`${p} skipped`, `gateway: ${g?.skipped ?? g?.error ?? "ran"}; node: ${n?.skipped ?? n?.error ?? "ran"}`);
  if (g?.error || n?.error) note(`${p} error`, `gateway: ${g?.error ?? "-"}; node: ${n?.error ?? "-"}`);
  row(`${p} deliveries/s`, gs?.deliveries_per_s, ns?.deliveries_per_s, true, 0);
  row(`${p} loss (%)`, gs ? gs.loss_ratio * 100 : undefined, ns ? ns.loss_ratio * 100 : undefined, false, 3);
  row(`${p} latency p50 (ms)`, gs?.latency?.p50_ms, ns?.latency?.p50_ms, false, 2);
  row(`${p} latency p99 (ms)`, gs?.latency?.p99_ms, ns?.latency?.p99_ms, false, 2);
  row(`${p} latency p999 (ms)`, gs?.latency?.p999_ms, ns?.latency?.p999_ms, false, 2);
  row(`${p} server CPU per delivery (µs)`, gs?.server_cpu_us_per_delivery, ns?.server_cpu_us_per_delivery, false, 2);
  row(`${p} generator CPU (s)`, gs?.generator_cpu_s, ns?.generator_cpu_s, false, 2);
}
for (const origin of ["emitter", "client"]) {
  const g = load(`gateway-ramp-${origin}`), n = load(`node-ramp-${origin}`);
  if (!g && !n) continue;
  const best = (r) => r?.steps?.filter((s) => s.offered_rate === r.highest_lossless_rate)[0];
  const last = (r) => r?.steps?.[r.steps.length - 1];
  row(`ramp (${origin}): highest lossless deliveries/s`, g?.highest_lossless_deliveries_per_s, n?.highest_lossless_deliveries_per_s, true, 0);
  row(`ramp (${origin}): highest lossless deliveries/s with p99 ≤ ${g?.max_p99_ms ?? n?.max_p99_ms} ms`, g?.highest_within_p99_deliveries_per_s, n?.highest_within_p99_deliveries_per_s, true, 0);
  row(`ramp (${origin}): p99 at the highest lossless rate (ms)`, best(g)?.latency?.p99_ms, best(n)?.latency?.p99_ms, false, 2);
  row(`ramp (${origin}): CPU per delivery at that rate (µs)`, best(g)?.server_cpu_us_per_delivery, best(n)?.server_cpu_us_per_delivery, false, 2);
  note(`ramp (${origin}): steps (offered broadcasts/s → deliveries/s, loss %)`,
    ["gateway", "node"].map((k, i) => `${k}: ` + ([g, n][i]?.steps ?? []).map((s) => `${fmt(s.offered_rate)}→${fmt(s.deliveries_per_s)} (${fmt(s.loss_ratio * 100, 2)}%)`).join(", ")).join("<br>"));
  const gl = last(g), nl = last(n);
  if (gl && gl.generator_cpu_s > 0.9 * gl.wall_s) note(`ramp (${origin}) gateway`, "generator core saturated in the last step: the limit may be sio-bench, not the server");
  if (nl && nl.generator_cpu_s > 0.9 * nl.wall_s) note(`ramp (${origin}) node`, "generator core saturated in the last step");
}

const meta = existsSync(join(dir, "meta.txt")) ? readFileSync(join(dir, "meta.txt"), "utf8").trim() : "";
const extra = existsSync(join(dir, "NOTE")) ? readFileSync(join(dir, "NOTE"), "utf8").trim() : "";
console.log(meta.split("\n").map((l) => `- ${l}`).join("\n"));
if (extra) console.log(`\n**${extra}**`);
console.log("\n| metric | sio-gateway | Node.js socket.io | gateway advantage |\n|---|---:|---:|---:|");
console.log(rows.join("\n"));
console.log("\n(advantage: how many times better sio-gateway is; > 1 = gateway better, for lower-is-better metrics node/gateway)");
