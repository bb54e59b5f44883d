// The test command's own plumbing (issue 19): scripts/find-bins.sh finds the binaries where
// cargo put them, CARGO_TARGET_DIR included, and fails at once with a clear message when they
// are missing; the harness refuses a missing gateway binary at once instead of timing out.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, startGateway } from "../lib/harness.mjs";

const findBins = (env) => spawnSync("bash", [path.join(ROOT, "scripts/find-bins.sh")], {
  env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000,
});

test("find-bins follows CARGO_TARGET_DIR and fails fast when the binaries are not there", () => {
  const here = findBins({});
  assert.equal(here.status, 0, here.stderr);
  const exports = Object.fromEntries(here.stdout.trim().split("\n").map((l) => {
    const m = /^export (\w+)=(.*)$/.exec(l);
    return [m[1], m[2]];
  }));
  assert.deepEqual(Object.keys(exports).sort(), ["SIO_BENCH_BIN", "SIO_EMIT_BIN", "SIO_TEST_GATEWAY_BIN", "SIO_TEST_NODE_BIN"]);
  // SIO_GATEWAY_* is the gateway's own option namespace (its env variables): the runners' variables stay out of it.
  assert.deepEqual(Object.keys(exports).filter((k) => k.startsWith("SIO_GATEWAY_")), []);
  for (const p of Object.values(exports)) assert.ok(fs.existsSync(p), p);

  // Another target directory, with the same binaries (a link to the real ones).
  const real = path.dirname(path.dirname(exports.SIO_TEST_GATEWAY_BIN));
  const other = fs.mkdtempSync(path.join(os.tmpdir(), "sio-target-"));
  fs.symlinkSync(path.join(real, "debug"), path.join(other, "debug"));
  const moved = findBins({ CARGO_TARGET_DIR: other });
  assert.equal(moved.status, 0, moved.stderr);
  assert.ok(moved.stdout.includes(`SIO_TEST_GATEWAY_BIN=${path.join(other, "debug/sio-gateway")}`), moved.stdout);

  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "sio-target-"));
  const started = Date.now();
  const missing = findBins({ CARGO_TARGET_DIR: empty });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, new RegExp(`${empty}/debug/sio-gateway is missing`));
  assert.ok(Date.now() - started < 30_000);
  fs.rmSync(other, { recursive: true, force: true });
  fs.rmSync(empty, { recursive: true, force: true });
});

test("the harness refuses a missing gateway binary at once", async () => {
  const started = Date.now();
  await assert.rejects(startGateway([], { bin: "/nonexistent/sio-gateway" }), /gateway binary not found: \/nonexistent\/sio-gateway/);
  assert.ok(Date.now() - started < 2000);
});
