// The committed sio-wire fixtures (tests/fixtures/wire/*.json, decoded byte for byte by the Rust
// tests) are still what the installed npm packages publish: capture.mjs is run again into a
// temporary directory. Emitter output is deterministic and must match exactly; adapter and
// sharded output carry random uids/request ids/socket ids, so their cases, channels (ids
// masked), message formats and JSON shapes (values of id fields masked) must match.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { ROOT } from "../lib/harness.mjs";

const FIX = path.join(ROOT, "tests/fixtures/wire");

function run(outDir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(FIX, "capture.mjs")], {
      cwd: path.join(ROOT, "tests"),
      env: { ...process.env, WIRE_FIXTURE_OUT: outDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error("capture.mjs timed out")); }, 60000);
    child.once("exit", (code) => { clearTimeout(timer); code === 0 ? resolve() : reject(new Error(`capture.mjs exited ${code}: ${err}`)); });
  });
}

// Ids that change on every run: adapter uids (6 chars / 16 hex), request ids, socket ids, times.
const ID_KEYS = new Set(["uid", "requestId", "id", "host", "sec-websocket-key", "time", "issued", "rooms", "address"]);
function shape(v, key) {
  if (ID_KEYS.has(key)) return "<id>";
  if (Array.isArray(v)) return v.map((x) => shape(x));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x, k)]));
  return v;
}
function summary(doc) {
  return doc.cases.map((c) => ({
    name: c.name,
    call: c.call,
    messages: c.messages.map((m) => ({
      channel: m.channel.replace(/#[0-9a-f]{16}#$/, "#<uid>#"),
      format: m.json ? "json" : `msgpack:${m.hex.slice(0, 2)}`,
      json: m.json ? shape(JSON.parse(m.json)) : undefined,
    })),
  }));
}

test("committed wire fixtures match what the installed npm packages publish", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-wire-fixtures-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  await run(dir);
  const read = (d, f) => JSON.parse(fs.readFileSync(path.join(d, f), "utf8"));
  assert.deepStrictEqual(read(dir, "emitter.json"), read(FIX, "emitter.json"), "emitter.json is stale: run capture.mjs");
  for (const f of ["adapter.json", "sharded.json"]) {
    const now = read(dir, f);
    const committed = read(FIX, f);
    assert.deepStrictEqual(now.packages, committed.packages, `${f}: package versions changed`);
    assert.deepStrictEqual(summary(now), summary(committed), `${f} is stale: run capture.mjs`);
  }
});
