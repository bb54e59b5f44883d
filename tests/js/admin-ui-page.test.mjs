// The official Admin UI page (@socket.io/admin-ui 0.5.1's ui/dist, installed into web/ by
// lockfile and served by the gateway at /admin-ui/) in headless Chromium, against a 2-node
// cluster over a private Redis with clients on both nodes. Requests leaving 127.0.0.1 (the UI's
// web fonts and icon font) are blocked. The UI, connected to node 1 only:
// - logs in with the user and password whose bcrypt hash the nodes were given;
// - lists both servers and every socket with its rooms;
// - disconnects a socket of node 2 from its details page.
// Screenshots go to $SCREENSHOT_DIR (default: a temp dir), printed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";
import { ROOT, startRedis, track, once, waitFor } from "../lib/harness.mjs";
import { startNode } from "./cluster-lib.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const UI = path.join(ROOT, "web/node_modules/@socket.io/admin-ui/ui/dist/index.html");
// bcrypt("s3cret", cost 4)
const HASH = "$2b$04$y8Uuy18aR0ciulVx1pbYhed9YaQlZKHhGZ8NloPl3ee1TJRbDhM2e";
const SHOTS = process.env.SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), "admin-ui-"));

let browser;
before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: scripts/test.sh installs Debian's chromium (or set CHROMIUM)`);
  assert.ok(fs.existsSync(UI), `${UI} not found: npm ci --prefix web (scripts/run.sh and scripts/test.sh do)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
after(() => browser?.close());

async function client(t, url, room) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  await once(s, "connect");
  assert.deepEqual(await s.emitWithAck("join", room), { ok: true });
  return s;
}

test("the Admin UI page on node 1 shows both nodes and their sockets, and disconnects a socket of node 2", async (t) => {
  const redis = track(t, await startRedis());
  const flags = ["--admin-ui", "full", "--admin-ui-password-hash", HASH];
  const n1 = track(t, await startNode(redis.url, "gateway-1", flags));
  const n2 = track(t, await startNode(redis.url, "gateway-2", flags));
  const near = await client(t, n1.url, "lobby");
  const far = await client(t, n2.url, "games");

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  t.after(() => context.close());
  await context.route("**/*", (r) => (new URL(r.request().url()).hostname === "127.0.0.1" ? r.continue() : r.abort()));
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${n1.url}/admin-ui/`);
  await page.getByLabel("Server URL").fill(n1.url);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill("s3cret");
  await page.getByRole("button", { name: "Connect" }).click();
  await waitFor(async () => (await page.locator("body").innerText()).includes("CONNECTED") && !(await page.locator("body").innerText()).includes("DISCONNECTED"), { what: "UI connected" });
  await page.screenshot({ path: path.join(SHOTS, "dashboard.png") });

  // Servers: both nodes (server_stats of node 2 reach node 1's admin namespace through Redis).
  await page.getByText("Servers", { exact: true }).first().click();
  await waitFor(async () => {
    const text = await page.locator("body").innerText();
    return text.includes("gateway-1") && text.includes("gateway-2");
  }, { timeoutMs: 10000, what: "both servers listed" });
  await page.screenshot({ path: path.join(SHOTS, "servers.png") });

  // Sockets: both clients, the far one with its room.
  await page.getByText("Sockets", { exact: true }).first().click();
  await waitFor(async () => {
    const text = await page.locator("body").innerText();
    return text.includes(near.id) && text.includes(far.id);
  }, { what: "both sockets listed" });
  await page.screenshot({ path: path.join(SHOTS, "sockets.png") });
  const farId = far.id;
  await page.getByText(farId).click();
  await waitFor(async () => (await page.locator("body").innerText()).includes("games"), { what: "the far socket's room" });

  // Disconnect it: the button in the Status row of its details.
  const gone = once(far, "disconnect", 10000);
  // The socket's (namespace) Status row, the last of the two (the first is its client's).
  await page.locator("tr", { hasText: "Status" }).locator("button").last().click();
  assert.equal((await gone)[0], "io server disconnect");
  assert.ok(near.connected, "only that socket");
  await page.screenshot({ path: path.join(SHOTS, "socket-disconnected.png") });
  assert.deepEqual(errors, []);
  t.diagnostic(`screenshots in ${SHOTS}`);
});
