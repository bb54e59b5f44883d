// Credentials that expire end the connection (`--auth-expiry close`, the default): a socket
// authenticated with a JWT is cut once its `exp` + --jwt-leeway passes, one admitted by the auth
// webhook once the answer's `exp` passes; stock clients then reconnect, and authenticate again.
// Before, a socket stayed connected (in its user:<sub> room, with its token's grants) for as long
// as its connection lasted, whatever its token said. `--auth-expiry ignore` keeps that behaviour.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { io } from "socket.io-client";
import { startGateway, track, once, waitFor, scrapeMetrics, metricSum, sleep } from "../lib/harness.mjs";
import { jwt as signJwt, now } from "../lib/jwt.mjs";

const SECRET = "jwt-expiry-secret-0123456789";
const KEY = "backend-api-key-expiry";
const jwt = (claims) => signJwt(claims, { key: SECRET });

function client(t, url, opts = {}) {
  const s = io(url, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200, transports: ["websocket"], ...opts });
  track(t, s);
  return s;
}
/** Resolve "connected" or the connect_error message. */
function outcome(s) {
  return new Promise((resolve) => {
    if (s.connected) return resolve("connected");
    s.once("connect", () => resolve("connected"));
    s.once("connect_error", (e) => resolve(e.message));
  });
}
/** Every connect, disconnect (with its reason and time) and connect_error of `s`. */
function journal(s) {
  const j = [];
  s.on("connect", () => j.push({ what: "connect", id: s.id, at: Date.now() }));
  s.on("disconnect", (reason) => j.push({ what: "disconnect", reason, at: Date.now() }));
  s.on("connect_error", (e) => j.push({ what: "connect_error", message: e.message, at: Date.now() }));
  return j;
}
async function sockets(gw) {
  const r = await fetch(gw.url + "/api/v1/sockets", { headers: { authorization: `Bearer ${KEY}` } });
  return (await r.json()).sockets;
}

test("a socket whose JWT expires is cut at exp + --jwt-leeway: an auth callback reconnects with a fresh token, the expired token is refused, a valid one stays", { timeout: 60_000 }, async (t) => {
  const gw = track(t, await startGateway(["--auth", "jwt", "--jwt-secret", SECRET, "--jwt-leeway", "1s", "--api-key", KEY]));
  const exp = now() + 2;
  // A: websocket, an auth callback that presents a short token first, a fresh one after.
  let calls = 0;
  const a = client(t, gw.url, { auth: (cb) => cb({ token: jwt({ sub: "alice", exp: calls++ === 0 ? exp : now() + 600 }) }) });
  const ja = journal(a);
  // B: polling, the same short token on every try.
  const b = client(t, gw.url, { transports: ["polling"], auth: { token: jwt({ sub: "bob", exp }) } });
  const jb = journal(b);
  // C: a token valid for 10 minutes.
  const c = client(t, gw.url, { auth: { token: jwt({ sub: "carol", exp: now() + 600 }) } });
  const jc = journal(c);
  for (const s of [a, b, c]) assert.equal(await outcome(s), "connected");

  await waitFor(() => ja.filter((e) => e.what === "connect").length === 2, { timeoutMs: 15_000, what: "A reconnected" });
  await waitFor(() => jb.some((e) => e.what === "connect_error"), { timeoutMs: 15_000, what: "B's reconnection refused" });
  b.disconnect();
  for (const [name, j] of [["A", ja], ["B", jb]]) {
    const cut = j.find((e) => e.what === "disconnect");
    assert.ok(cut, `${name} was cut`);
    // A cut that looks lost, so that the client reconnects by itself.
    assert.match(cut.reason, /^transport (close|error)$/, name);
    // Not before the token is refused at CONNECT: past exp + leeway (jsonwebtoken accepts it
    // through the second exp + leeway), so that the reconnection is not let in again.
    assert.ok(cut.at >= (exp + 2) * 1000, `${name} cut ${(exp + 2) * 1000 - cut.at} ms before the token is refused`);
  }
  assert.equal(jb.find((e) => e.what === "connect_error").message, "invalid token: token expired");
  assert.equal(calls, 2, "A's callback ran again for the reconnection");
  // A is back with its fresh token, and is not cut again; C was never cut.
  await sleep(1500);
  assert.ok(a.connected && c.connected);
  assert.equal(ja.filter((e) => e.what === "disconnect").length, 1);
  assert.deepEqual(jc.map((e) => e.what), ["connect"]);
  assert.deepEqual((await sockets(gw)).map((s) => s.user).sort(), ["alice", "carol"]);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_connections_closed_expired_total"), 2);
});

test("--auth-expiry ignore: a socket stays connected past its token's exp (checked at CONNECT only)", { timeout: 60_000 }, async (t) => {
  const gw = track(t, await startGateway(["--auth", "jwt", "--jwt-secret", SECRET, "--jwt-leeway", "0s", "--auth-expiry", "ignore", "--can-join", "public:*"]));
  const exp = now() + 1;
  const s = client(t, gw.url, { reconnection: false, auth: { token: jwt({ sub: "dave", exp }) } });
  const j = journal(s);
  assert.equal(await outcome(s), "connected");
  await waitFor(() => Date.now() > (exp + 2) * 1000, { timeoutMs: 10_000, what: "two seconds past exp" });
  assert.deepEqual(await s.timeout(5000).emitWithAck("join", "public:x"), { ok: true });
  assert.deepEqual(j.map((e) => e.what), ["connect"]);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_connections_closed_expired_total"), 0);
});

test("the auth webhook's exp: the session is cut then; an exp already past refuses, one that is not a number is a bad answer", { timeout: 60_000 }, async (t) => {
  let granted;
  const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (d) => (data += d));
    req.on("end", () => {
      const { auth } = JSON.parse(data);
      const exp = { short: now() + 2, past: now() - 10, bad: "soon", none: undefined }[auth?.kind];
      if (auth?.kind === "short") granted = exp;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ user: auth?.kind, ...(exp === undefined ? {} : { exp }) }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => { server.closeAllConnections?.(); server.close(); });
  const gw = track(t, await startGateway(["--auth", "webhook", "--auth-webhook", `http://127.0.0.1:${server.address().port}/auth`]));

  const short = client(t, gw.url, { reconnection: false, auth: { kind: "short" } });
  const none = client(t, gw.url, { reconnection: false, auth: { kind: "none" } });
  const js = journal(short);
  const jn = journal(none);
  assert.equal(await outcome(short), "connected");
  assert.equal(await outcome(none), "connected");
  await waitFor(() => js.some((e) => e.what === "disconnect"), { timeoutMs: 15_000, what: "the short grant's session cut" });
  assert.ok(js.find((e) => e.what === "disconnect").at >= granted * 1000, "not cut before the grant's exp");
  assert.equal(await outcome(client(t, gw.url, { reconnection: false, auth: { kind: "past" } })), "refused: the backend's grant has expired (exp)");
  assert.match(await outcome(client(t, gw.url, { reconnection: false, auth: { kind: "bad" } })), /^authentication service unavailable: backend answered with an invalid exp/);
  // A grant without exp does not expire.
  await sleep(1000);
  assert.ok(none.connected);
  assert.deepEqual(jn.map((e) => e.what), ["connect"]);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_connections_closed_expired_total"), 1);
  assert.equal(metricSum(m, "sio_gateway_auth_failures_total", 'reason="webhook_refused"'), 1);
  assert.equal(metricSum(m, "sio_gateway_auth_failures_total", 'reason="webhook_error"'), 1);
});
