// Prints the comparison table of one bench/compare.sh run (Markdown) from the JSON
// results sio-bench wrote into the run's directory: node bench/report.mjs DIR
// One column per target that ran (sio-gateway, socketioxide, Node.js, floor), then the
// gateway's advantage over each other target (from the medians when there are rounds).
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
// With ROUNDS > 1 the results are in DIR/round-N: every cell is then the median of the rounds,
// followed by each round's value in run order.
const roundDirs = readdirSync(dir).filter((d) => /^round-\d+$/.test(d))
  .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6))).map((d) => join(dir, d));
const dirs = roundDirs.length ? roundDirs : [dir];
const loader = (d) => (name) => {
  const f = join(d, `${name}.json`);
  if (!existsSync(f)) return undefined;
  try { return JSON.parse(readFileSync(f, "utf8")); } catch { return undefined; }
};
const loaders = dirs.map(loader);
let load = loaders[0]; // the round a row's getter reads; row() walks it over the rounds
const files = [...new Set(dirs.flatMap((d) => readdirSync(d).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5))))];
const median = (xs) => {
  const v = xs.filter((x) => x !== undefined && x !== null && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const LABELS = {
  gateway: "sio-gateway",
  socketioxide: "socketioxide + socketioxide-redis",
  node: "Node.js socket.io",
  floor: "floor (1 process, no Redis, client origin only)",
};
const targets = Object.keys(LABELS).filter((t) => files.some((f) => f.startsWith(`${t}-`)));
// Advantage columns: the gateway against each other target that ran.
const others = targets.includes("gateway") ? targets.filter((t) => t !== "gateway") : [];
const fmt = (v, d = 0) => (v === undefined || v === null || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
// advantage > 1 means the gateway is better (lower is better unless higher=true).
const adv = (g, n, higher) => {
  if (g === undefined || n === undefined || g === null || n === null) return "–";
  if (higher) return n > 0 ? `${(g / n).toFixed(2)}×` : "–";
  return g > 0 ? `${(n / g).toFixed(2)}×` : "–";
};

const rows = [];
// get: target -> value (undefined when the target has none)
const row = (label, get, higher, d = 1, unit = "") => {
  const per = Object.fromEntries(targets.map((t) => [t, loaders.map((l) => { load = l; return get(t); })]));
  load = loaders[0];
  const v = Object.fromEntries(targets.map((t) => [t, median(per[t])]));
  const rounds = (t) => (loaders.length > 1 && v[t] != null ? ` (${per[t].map((x) => fmt(x, d)).join(" / ")})` : "");
  const cells = targets.map((t) => `${fmt(v[t], d)}${v[t] != null ? unit : ""}${rounds(t)}`);
  // With rounds: in how many rounds the gateway was better than that target, round by round.
  const wins = (t) => {
    if (loaders.length < 2 || v.gateway == null || v[t] == null) return "";
    const pairs = per.gateway.map((g, i) => [g, per[t][i]]).filter(([g, n]) => g != null && n != null);
    const won = pairs.filter(([g, n]) => (higher ? g > n : g < n)).length;
    return `, better in ${won} of ${pairs.length}`;
  };
  const advs = others.map((t) => adv(v.gateway, v[t], higher) + (targets.includes("gateway") ? wins(t) : ""));
  rows.push(`| ${label} | ${[...cells, ...advs].join(" | ")} |`);
};
const note = (label, text) => rows.push(`| ${label} | ${text} |${" |".repeat(targets.length + others.length - 1)}`);

row("idle RSS per connection (KB)", (t) => load(`${t}-idle`)?.bytes_per_connection / 1000, false, 2);
row("handshakes per second", (t) => load(`${t}-connect`)?.handshakes_per_s, true, 0);
row("handshake latency p99 (ms)", (t) => load(`${t}-connect`)?.latency?.p99_ms, false, 2);

const prefix = new RegExp(`^(${targets.join("|") || "-"})-`);
const fanouts = [...new Set(files.filter((f) => prefix.test(f) && /^\w+-fanout-/.test(f)).map((f) => f.replace(prefix, "")))]
  .sort((a, b) => {
    const [, oa, ra] = a.match(/fanout-(\w+)-([\d.]+)/); const [, ob, rb] = b.match(/fanout-(\w+)-([\d.]+)/);
    return oa === ob ? Number(ra) - Number(rb) : oa.localeCompare(ob);
  });
const status = (r) => (r ? r.skipped ?? r.error ?? "ran" : "not run");
for (const f of fanouts) {
  const [, origin, rate] = f.match(/fanout-(\w+)-([\d.]+)/);
  const r = Object.fromEntries(targets.map((t) => [t, load(`${t}-${f}`)])); // the first round's
  const s = (t) => load(`${t}-${f}`)?.steps?.[0]; // the round row() is reading
  const p = `${origin} ${rate}/s × ${targets.map((t) => r[t]?.receivers).find((x) => x != null)} rcv:`;
  if (targets.some((t) => r[t]?.skipped)) note(`${p} skipped`, targets.map((t) => `${t}: ${status(r[t])}`).join("; "));
  if (targets.some((t) => r[t]?.error)) note(`${p} error`, targets.map((t) => `${t}: ${r[t]?.error ?? "-"}`).join("; "));
  row(`${p} deliveries/s`, (t) => s(t)?.deliveries_per_s, true, 0);
  row(`${p} loss (%)`, (t) => (s(t) ? s(t).loss_ratio * 100 : undefined), false, 3);
  row(`${p} latency p50 (ms)`, (t) => s(t)?.latency?.p50_ms, false, 2);
  row(`${p} latency p99 (ms)`, (t) => s(t)?.latency?.p99_ms, false, 2);
  row(`${p} latency p999 (ms)`, (t) => s(t)?.latency?.p999_ms, false, 2);
  row(`${p} server CPU per delivery (µs)`, (t) => s(t)?.server_cpu_us_per_delivery, false, 2);
  row(`${p} generator CPU (s)`, (t) => s(t)?.generator_cpu_s, false, 2);
}
for (const origin of ["emitter", "client"]) {
  const r = Object.fromEntries(targets.map((t) => [t, load(`${t}-ramp-${origin}`)])); // the first round's
  const cur = (t) => load(`${t}-ramp-${origin}`); // the round row() is reading
  const ran = targets.filter((t) => r[t]);
  if (!ran.length) continue;
  const best = (x) => x?.steps?.filter((s) => s.offered_rate === x.highest_lossless_rate)[0];
  const last = (x) => x?.steps?.[x.steps.length - 1];
  const maxP99 = ran.map((t) => r[t].max_p99_ms).find((x) => x != null);
  row(`ramp (${origin}): highest lossless deliveries/s`, (t) => cur(t)?.highest_lossless_deliveries_per_s, true, 0);
  row(`ramp (${origin}): highest lossless deliveries/s with p99 ≤ ${maxP99} ms`, (t) => cur(t)?.highest_within_p99_deliveries_per_s, true, 0);
  row(`ramp (${origin}): p99 at the highest lossless rate (ms)`, (t) => best(cur(t))?.latency?.p99_ms, false, 2);
  row(`ramp (${origin}): CPU per delivery at that rate (µs)`, (t) => best(cur(t))?.server_cpu_us_per_delivery, false, 2);
  note(`ramp (${origin}): steps (offered broadcasts/s → deliveries/s, loss %)`,
    ran.map((k) => `${k}: ` + (r[k].steps ?? []).map((s) => `${fmt(s.offered_rate)}→${fmt(s.deliveries_per_s)} (${fmt(s.loss_ratio * 100, 2)}%)`).join(", ")).join("<br>"));
  for (const t of ran) {
    const l = last(r[t]);
    if (l && l.generator_cpu_s > 0.9 * l.wall_s) {
      note(`ramp (${origin}) ${t}`, t === "gateway"
        ? "generator core saturated in the last step: the limit may be sio-bench, not the server"
        : "generator core saturated in the last step");
    }
  }
}

const meta = existsSync(join(dir, "meta.txt")) ? readFileSync(join(dir, "meta.txt"), "utf8").trim() : "";
const extra = existsSync(join(dir, "NOTE")) ? readFileSync(join(dir, "NOTE"), "utf8").trim() : "";
console.log(meta.split("\n").map((l) => `- ${l}`).join("\n"));
if (extra) console.log(`\n**${extra}**`);
const advHead = others.length === 1 && others[0] === "node"
  ? ["gateway advantage"]
  : others.map((t) => `gateway advantage over ${t}`);
const head = ["metric", ...targets.map((t) => LABELS[t]), ...advHead];
console.log(`\n| ${head.join(" | ")} |\n|---|${head.slice(1).map(() => "---:").join("|")}|`);
console.log(rows.join("\n"));
if (others.length) {
  console.log(`\n(advantage: how many times better sio-gateway is; > 1 = gateway better, for lower-is-better metrics ${others.length === 1 ? others[0] : "other"}/gateway)`);
}
