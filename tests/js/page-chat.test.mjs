// The embedded chat page in headless Chromium (Debian's, driven by playwright-core) with every
// request that leaves 127.0.0.1 blocked: the page must work offline, started the way the
// README's first command (scripts/run.sh) starts the gateway, with the socket.io-client bundle
// npm installed into web/ by lockfile. Also: a page whose bundle did not load says so and its
// forms do not reload; a message before joining gets feedback; a reconnect shows as one; the
// README's curl example shows without "#undefined"; nothing overflows at 375 px; the page names
// the node that served it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { ROOT, startGateway, startRedis, track, waitFor, freePort } from "../lib/harness.mjs";
import { SECRET } from "./cluster-lib.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WEB_BUNDLE = path.join(ROOT, "web/node_modules/socket.io-client/dist/socket.io.min.js");
const API_KEY = "page-test-api-key";

let browser;
before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: scripts/test.sh installs Debian's chromium (or set CHROMIUM)`);
  assert.ok(fs.existsSync(WEB_BUNDLE), `${WEB_BUNDLE} not found: npm ci --prefix web (scripts/run.sh and scripts/test.sh do)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
after(() => browser?.close());

/** A page whose requests may only go to 127.0.0.1; every other one is aborted and recorded. */
async function offlinePage(t, url, { width = 1024 } = {}) {
  const context = await browser.newContext({ viewport: { width, height: 700 } });
  t.after(() => context.close());
  const blocked = [];
  await context.route("**/*", (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === "127.0.0.1") return route.continue();
    blocked.push(u.href);
    return route.abort("internetdisconnected");
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  return { page, blocked, errors };
}

const logText = (page) => page.locator("#log").innerText();
const statusText = (page) => page.locator("#status").innerText();

/** The gateway as scripts/run.sh starts it (the bundle from web/ through SIO_GATEWAY_CLIENT_JS). */
function startLikeRunSh(extra = [], opts = {}) {
  return startGateway(["--api-key", API_KEY, ...extra], { env: { SIO_GATEWAY_CLIENT_JS: WEB_BUNDLE }, ...opts });
}

test("offline: two browsers chat through the page; nothing is fetched from outside", async (t) => {
  const gw = track(t, await startLikeRunSh());
  const a = await offlinePage(t, gw.url);
  const b = await offlinePage(t, gw.url);
  for (const { page } of [a, b]) {
    await waitFor(async () => /^connected/.test(await statusText(page)), { what: "page connected" });
    await page.click("#joinForm button");
    await waitFor(async () => (await logText(page)).includes("joined #lobby"), { what: "joined #lobby" });
  }
  await a.page.fill("#name", "alice");
  await a.page.fill("#msg", "hello offline");
  await a.page.press("#msg", "Enter");
  await waitFor(async () => (await logText(b.page)).includes("[#lobby] alice: hello offline"), { what: "b got alice's message" });
  assert.deepEqual([...a.blocked, ...b.blocked], [], "the page fetched nothing outside 127.0.0.1");
  // The page names its node (and pins the socket to it behind a sticky balancer).
  const nodeId = (await (await fetch(gw.url + "/readyz")).json()).node_id;
  assert.equal(await a.page.locator("#node").innerText(), `node ${nodeId}`);
  assert.deepEqual([...a.errors, ...b.errors], []);
  assert.equal(new URL(a.page.url()).pathname, "/", "no reload");
});

test("the README's curl example and a backend's own event show on the page", async (t) => {
  const gw = track(t, await startLikeRunSh());
  const { page } = await offlinePage(t, gw.url);
  await waitFor(async () => /^connected/.test(await statusText(page)), { what: "page connected" });
  await page.click("#joinForm button");
  await waitFor(async () => (await logText(page)).includes("joined #lobby"), { what: "joined" });
  const emit = (body) => fetch(gw.url + "/api/v1/emit", {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  // README.md, "HTTP API"; docs/deploying.md's compose example.
  assert.equal((await emit({ nsp: "/", rooms: ["lobby"], event: "chat", data: { from: "backend", text: "hi" } })).status, 200);
  assert.equal((await emit({ event: "news", data: "from the API" })).status, 200);
  await waitFor(async () => {
    const log = await logText(page);
    return log.includes("backend: hi") && log.includes("news: from the API");
  }, { what: "both backend messages shown" });
  assert.ok(!(await logText(page)).includes("undefined"), await logText(page));
});

test("a message before joining gets feedback; 375 px wide fits; a reconnect shows as one", async (t) => {
  const port = await freePort();
  let gw = await startLikeRunSh([], { port });
  t.after(() => gw.stop());
  const { page } = await offlinePage(t, gw.url, { width: 375 });
  await waitFor(async () => /^connected/.test(await statusText(page)), { what: "page connected" });
  await page.fill("#msg", "too early");
  await page.press("#msg", "Enter");
  await waitFor(async () => (await logText(page)).includes("not sent: join a room first"), { what: "feedback before join" });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than a 375px screen`);
  await page.click("#joinForm button");
  await waitFor(async () => (await logText(page)).includes("joined #lobby"), { what: "joined" });

  await gw.stop();
  await waitFor(async () => /disconnected/.test(await statusText(page)), { what: "disconnect shown" });
  gw = await startLikeRunSh([], { port });
  await waitFor(async () => /^reconnected/.test(await statusText(page)), { timeoutMs: 20000, what: "reconnect shown" });
  await waitFor(async () => (await logText(page)).includes("reconnected; joining #lobby again"), { what: "rejoin shown" });
});

test("history rooms: the page's node restarts, the lines sent meanwhile come back in order", { timeout: 60_000 }, async (t) => {
  const redis = track(t, await startRedis());
  const node = (id, port) => startLikeRunSh(["--redis", redis.url, "--node-id", id, "--cluster-secret", SECRET,
    "--history", "lobby=100/10m"], { port, waitReady: true });
  const port1 = await freePort();
  let n1 = await node("gateway-1", port1);
  t.after(() => n1.stop());
  const n2 = track(t, await node("gateway-2"));
  const a = await offlinePage(t, n1.url);
  const b = await offlinePage(t, n2.url);
  for (const { page } of [a, b]) {
    await waitFor(async () => /^connected/.test(await statusText(page)), { what: "page connected" });
    await page.click("#joinForm button");
    await waitFor(async () => (await logText(page)).includes("joined #lobby"), { what: "joined #lobby" });
  }
  await b.page.fill("#name", "bob");
  const say = async (text) => {
    await b.page.fill("#msg", text);
    await b.page.press("#msg", "Enter");
    await waitFor(async () => (await logText(b.page)).includes("bob: " + text), { what: "sent " + text });
  };
  await say("before");
  await waitFor(async () => (await logText(a.page)).includes("bob: before"), { what: "a got it live" });

  await n1.stop("SIGKILL");
  await waitFor(async () => /disconnected/.test(await statusText(a.page)), { what: "disconnect shown" });
  for (const m of ["while away 1", "while away 2", "while away 3"]) await say(m);
  n1 = await node("gateway-1", port1);
  await waitFor(async () => /^reconnected/.test(await statusText(a.page)), { timeoutMs: 20000, what: "reconnect shown" });
  await waitFor(async () => (await logText(a.page)).includes("3 missed message(s) recovered"), { what: "recovery shown" });
  await say("after");
  await waitFor(async () => (await logText(a.page)).includes("bob: after"), { what: "live again" });
  const lines = (await logText(a.page)).split("\n").filter((l) => l.startsWith("[#lobby] bob:"));
  assert.deepEqual(lines, ["before", "while away 1", "while away 2", "while away 3", "after"].map((m) => "[#lobby] bob: " + m));
  assert.deepEqual([...a.errors, ...b.errors], []);
});

test("without a client bundle the page says why, and its forms do not reload it", async (t) => {
  const gw = track(t, await startGateway(["--client-js", "/nonexistent/socket.io.min.js"]));
  assert.match(gw.output(), /does not work offline/, "the start-up warning says the page needs the CDN");
  const { page, blocked } = await offlinePage(t, gw.url);
  assert.ok(blocked.some((u) => u.startsWith("https://cdn.socket.io/")), "the page tried the CDN");
  await waitFor(async () => /offline/.test(await statusText(page)), { what: "offline status" });
  assert.match(await logText(page), /npm ci --prefix web/);
  let navigated = 0;
  page.on("framenavigated", () => navigated++);
  await page.click("#joinForm button");
  await page.fill("#msg", "x");
  await page.press("#msg", "Enter");
  await page.waitForTimeout(300);
  assert.equal(navigated, 0, "a form submit reloaded the page");
});
