// Connect-time authentication with real socket.io-client connections: JWT (HS256 secret, RS256
// public key, JWKS file with reload), every refusal reaching the client as connect_error with
// its message and counted in auth_failures_total; the auth webhook (accept with user / rooms /
// data / grants, refuse with the backend's message, timeout, backend down; over https with a
// private CA given by --webhook-ca-file, and refused clearly when the backend's certificate is
// untrusted or names another host); room rules from
// config and from token claims with {sub}; user:<sub> delivery to every device of a user.
// Tokens are signed here with node:crypto (a tiny JWT signer, no JWT library).
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import http from "node:http";
import { io } from "socket.io-client";
import { startGateway, track, once, waitFor, scrapeMetrics, metricSum, freePort, sleep } from "../lib/harness.mjs";
import WebSocket from "ws";
import { makeTls, startHttpsBackend } from "../lib/tls.mjs";
import { jwt as signJwt, now, b64u } from "../lib/jwt.mjs";

const SECRET = "jwt-test-secret-0123456789";
const KEY = "backend-api-key-1";
/** Sign with the test secret unless another key is given. */
const jwt = (c, opts = {}) => signJwt(c, { key: SECRET, ...opts });
const claims = (extra = {}) => ({ sub: "alice", iss: "test-iss", aud: "test-aud", exp: now() + 600, ...extra });

function client(t, url, opts = {}, nsp = "/") {
  const s = io(url + nsp, { forceNew: true, reconnection: false, transports: ["websocket"], ...opts });
  track(t, s);
  return s;
}
/** Connect; resolve "connected" or the connect_error message. */
function outcome(s) {
  return new Promise((resolve) => {
    if (s.connected) return resolve("connected"); // connected before we asked
    s.once("connect", () => resolve("connected"));
    s.once("connect_error", (e) => resolve(e.message));
  });
}
async function api(gw, method, p, body) {
  const r = await fetch(gw.url + "/api/v1" + p, {
    method,
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}
function collect(s, event) {
  const got = [];
  s.on(event, (...a) => got.push(a));
  return got;
}

test("jwt HS256: valid token from auth.token, header or query; every bad token refused with its reason", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway([
    "--auth", "jwt", "--jwt-secret", SECRET, "--jwt-issuer", "test-iss", "--jwt-audience", "test-aud",
    "--jwt-leeway", "1s", "--api-key", KEY,
  ]));
  // Accepted, three ways of carrying the token.
  const ok1 = client(t, gw.url, { auth: { token: jwt(claims()) } });
  assert.equal(await outcome(ok1), "connected");
  const ok2 = client(t, gw.url, { extraHeaders: { authorization: `Bearer ${jwt(claims({ sub: "bob" }))}` } });
  assert.equal(await outcome(ok2), "connected");
  const ok3 = client(t, gw.url, { query: { token: jwt(claims({ sub: "carol" })) } });
  assert.equal(await outcome(ok3), "connected");
  // The subject's room was joined on connect.
  const r = await api(gw, "GET", "/sockets");
  const users = r.body.sockets.map((s) => s.user).sort();
  assert.deepEqual(users, ["alice", "bob", "carol"]);
  assert.ok(r.body.sockets.find((s) => s.id === ok1.id).rooms.includes("user:alice"));

  const { publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const parts = jwt(claims()).split(".");
  const tampered = `${parts[0]}.${b64u(JSON.stringify(claims({ sub: "mallory" })))}.${parts[2]}`;
  const cases = [
    ["expired", jwt(claims({ exp: now() - 60 })), /^invalid token: token expired$/],
    ["not yet valid", jwt(claims({ nbf: now() + 300 })), /^invalid token: token not yet valid/],
    ["wrong issuer", jwt(claims({ iss: "evil" })), /^invalid token: wrong issuer$/],
    ["wrong audience", jwt(claims({ aud: "other" })), /^invalid token: wrong audience$/],
    ["tampered payload", tampered, /^invalid token: bad signature$/],
    ["wrong secret", jwt(claims(), { key: "another-secret-entirely" }), /^invalid token: bad signature$/],
    ["alg none", jwt(claims(), { alg: "none" }), /^invalid token: .*`none` is never accepted/],
    ["HS512 when HS256 is pinned", jwt(claims(), { alg: "HS512" }), /^invalid token: algorithm HS512 not accepted$/],
    ["RS256 when HS256 is pinned", jwt(claims(), { alg: "RS256", key: crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey }), /not accepted/],
    ["no exp", jwt({ sub: "x", iss: "test-iss", aud: "test-aud" }), /^invalid token: missing claim `exp`$/],
    ["garbage", "not.a.jwt", /^invalid token: /],
  ];
  void publicKey;
  for (const [name, token, re] of cases) {
    const s = client(t, gw.url, { auth: { token } });
    const got = await outcome(s);
    assert.match(got, re, name);
  }
  const missing = client(t, gw.url);
  assert.match(await outcome(missing), /^authentication required: no token/);

  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_auth_failures_total", 'reason="invalid_token"'), cases.length);
  assert.equal(metricSum(m, "sio_gateway_auth_failures_total", 'reason="missing_token"'), 1);
});

test("jwt RS256 public key: accepted; HS256 signed with the public key (alg confusion) refused", { timeout: 90_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-jwt-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { publicKey, privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = publicKey.export({ type: "spki", format: "pem" });
  fs.writeFileSync(path.join(dir, "pub.pem"), pem);
  const gw = track(t, await startGateway(["--auth", "jwt", "--jwt-public-key", path.join(dir, "pub.pem"), "--jwt-alg", "RS256"]));
  const good = client(t, gw.url, { auth: { token: jwt(claims(), { alg: "RS256", key: privateKey }) } });
  assert.equal(await outcome(good), "connected");
  const confused = client(t, gw.url, { auth: { token: jwt(claims(), { alg: "HS256", key: pem }) } });
  assert.equal(await outcome(confused), "invalid token: algorithm HS256 not accepted");
  const other = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const forged = client(t, gw.url, { auth: { token: jwt(claims(), { alg: "RS256", key: other }) } });
  assert.equal(await outcome(forged), "invalid token: bad signature");
});

test("jwt JWKS file: key chosen by kid; a rotated file is picked up without restart, SIGHUP forces a reload", { timeout: 90_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-jwks-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const k1 = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const k2 = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = (k, kid) => ({ ...k.publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" });
  const file = path.join(dir, "jwks.json");
  fs.writeFileSync(file, JSON.stringify({ keys: [jwk(k1, "one")] }));
  const gw = track(t, await startGateway(["--auth", "jwt", "--jwt-jwks", file, "--jwt-alg", "RS256"]));
  const tok = (k, kid) => jwt(claims(), { alg: "RS256", key: k.privateKey, kid });
  assert.equal(await outcome(client(t, gw.url, { auth: { token: tok(k1, "one") } })), "connected");
  assert.match(await outcome(client(t, gw.url, { auth: { token: tok(k2, "two") } })), /no key for kid "two"/);
  // Rotate: key two added, key one removed.
  fs.writeFileSync(file, JSON.stringify({ keys: [jwk(k2, "two")] }));
  await waitFor(async () => (await outcome(client(t, gw.url, { auth: { token: tok(k2, "two") } }))) === "connected",
    { timeoutMs: 10000, intervalMs: 300, what: "JWKS reload" });
  assert.match(await outcome(client(t, gw.url, { auth: { token: tok(k1, "one") } })), /no key for kid "one"/);
  // SIGHUP forces a reload even when the modification time does not move.
  // (A whole-second mtime set twice with utimes compares equal, unlike a write's ns mtime.)
  const T = 1_700_000_000;
  fs.utimesSync(file, T, T);
  await new Promise((r) => setTimeout(r, 1500)); // the watcher sees T once (same keys)
  fs.writeFileSync(file, JSON.stringify({ keys: [jwk(k1, "one")] }));
  fs.utimesSync(file, T, T);
  await new Promise((r) => setTimeout(r, 1500)); // two polls: the unchanged mtime is not noticed
  assert.match(await outcome(client(t, gw.url, { auth: { token: tok(k1, "one") } })), /no key for kid "one"/);
  gw.signal("SIGHUP");
  await waitFor(async () => (await outcome(client(t, gw.url, { auth: { token: tok(k1, "one") } }))) === "connected",
    { timeoutMs: 10000, intervalMs: 300, what: "JWKS reload on SIGHUP" });
  assert.ok(gw.running, "SIGHUP does not stop the gateway");
});

test("room rules: config globs with {sub}, grants from token claims, user:<sub> reaches every device", { timeout: 90_000 }, async (t) => {
  const gw = track(t, await startGateway([
    "--auth", "jwt", "--jwt-secret", SECRET, "--api-key", KEY,
    "--can-join", "public:*,team:{sub}", "--can-publish", "public:*",
  ]));
  const aliceClaims = claims({ rooms: ["news"], can_join: ["vip:*"], can_publish: ["team:{sub}"] });
  const phone = client(t, gw.url, { auth: { token: jwt(aliceClaims) } });
  const laptop = client(t, gw.url, { auth: { token: jwt(claims()) } });
  const bob = client(t, gw.url, { auth: { token: jwt(claims({ sub: "bob" })) } });
  for (const s of [phone, laptop, bob]) assert.equal(await outcome(s), "connected");

  // Config rules with {sub}.
  assert.deepEqual(await phone.timeout(5000).emitWithAck("join", "public:lobby"), { ok: true });
  assert.deepEqual(await phone.timeout(5000).emitWithAck("join", "team:alice"), { ok: true });
  assert.deepEqual(await bob.timeout(5000).emitWithAck("join", "team:alice"), { ok: false, error: "not allowed to join room `team:alice`" });
  assert.deepEqual(await bob.timeout(5000).emitWithAck("join", "team:bob"), { ok: true });
  // Grants from claims: only for the token that carries them.
  assert.deepEqual(await phone.timeout(5000).emitWithAck("join", "vip:gold"), { ok: true });
  assert.deepEqual(await laptop.timeout(5000).emitWithAck("join", "vip:gold"), { ok: false, error: "not allowed to join room `vip:gold`" });
  assert.deepEqual(await bob.timeout(5000).emitWithAck("join", "private"), { ok: false, error: "not allowed to join room `private`" });
  // Publishing: config allows public:*, the claim adds team:{sub}.
  assert.deepEqual(await phone.timeout(5000).emitWithAck("publish", { room: "team:alice", event: "m", data: 1 }), { ok: true });
  assert.deepEqual(await bob.timeout(5000).emitWithAck("publish", { room: "team:bob", event: "m", data: 1 }),
    { ok: false, error: "not allowed to publish to `team:bob`" });
  assert.deepEqual(await bob.timeout(5000).emitWithAck("publish", { event: "m", data: 1 }), { ok: false, error: "not allowed to publish to `/`" });
  const gotBob = collect(bob, "m");
  assert.deepEqual(await phone.timeout(5000).emitWithAck("join", "public:x"), { ok: true });
  assert.deepEqual(await bob.timeout(5000).emitWithAck("join", "public:x"), { ok: true });
  assert.deepEqual(await phone.timeout(5000).emitWithAck("publish", { room: "public:x", event: "m", data: "hey" }), { ok: true });
  await waitFor(() => gotBob.length === 1);

  // Token rooms joined on connect; user:alice holds both of alice's devices.
  const r = await api(gw, "GET", "/sockets?room=user:alice");
  assert.deepEqual(r.body.sockets.map((s) => s.id).sort(), [phone.id, laptop.id].sort());
  assert.ok(r.body.sockets.find((s) => s.id === phone.id).rooms.includes("news"));
  const got = [phone, laptop, bob].map((s) => collect(s, "dm"));
  assert.equal((await api(gw, "POST", "/emit", { rooms: "user:alice", event: "dm", data: "for alice" })).status, 200);
  await waitFor(() => got[0].length === 1 && got[1].length === 1, { what: "both alice devices" });
  assert.deepEqual(got[1][0], ["for alice"]);
  assert.equal(got[2].length, 0);
});

/** A backend for the auth webhook; `handler(body, res)` decides. */
async function backend(t, handler) {
  const seen = [];
  const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (d) => (data += d));
    req.on("end", () => {
      const body = JSON.parse(data);
      seen.push({ body, headers: req.headers });
      handler(body, res);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => { server.closeAllConnections?.(); server.close(); });
  return { url: `http://127.0.0.1:${server.address().port}/auth`, seen };
}
const json = (res, status, v) => { res.writeHead(status, { "content-type": "application/json" }); res.end(JSON.stringify(v)); };

test("auth webhook: accept with user/rooms/data/grants, refuse with the backend's message", { timeout: 90_000 }, async (t) => {
  const be = await backend(t, (b, res) => {
    if (b.auth?.password === "letmein") {
      json(res, 200, { user: b.auth.name, rooms: ["webhook-room"], data: { plan: "pro" }, can_join: ["club:{sub}"] });
    } else if (b.auth?.password === "text") {
      res.writeHead(401); res.end("plain text refusal");
    } else {
      json(res, 403, { message: `banned: ${b.auth?.name}` });
    }
  });
  const gw = track(t, await startGateway(["--auth", "webhook", "--auth-webhook", be.url, "--api-key", KEY, "--can-join", "public:*"]));
  const ok = client(t, gw.url, { auth: { name: "dave", password: "letmein" }, extraHeaders: { "x-request-id": "req-1", "x-secret-internal": "no" } });
  assert.equal(await outcome(ok), "connected");
  // What the backend saw.
  const sent = be.seen[0].body;
  assert.equal(sent.namespace, "/");
  assert.deepEqual(sent.auth, { name: "dave", password: "letmein" });
  assert.equal(sent.remote_address, "127.0.0.1");
  assert.equal(sent.headers["x-request-id"], "req-1");
  assert.equal(sent.headers["x-secret-internal"], undefined);
  assert.match(sent.query, /EIO=4/);
  // What the webhook granted.
  const r = await api(gw, "GET", "/sockets");
  const me = r.body.sockets.find((s) => s.id === ok.id);
  assert.equal(me.user, "dave");
  assert.deepEqual([...me.rooms].sort(), ["user:dave", "webhook-room"]);
  assert.deepEqual(me.data, { plan: "pro" });
  assert.deepEqual(await ok.timeout(5000).emitWithAck("join", "club:dave"), { ok: true });
  assert.deepEqual(await ok.timeout(5000).emitWithAck("join", "club:eve"), { ok: false, error: "not allowed to join room `club:eve`" });

  assert.equal(await outcome(client(t, gw.url, { auth: { name: "eve", password: "x" } })), "refused: banned: eve");
  assert.equal(await outcome(client(t, gw.url, { auth: { name: "eve", password: "text" } })), "refused: plain text refusal");
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_auth_failures_total", 'reason="webhook_refused"'), 2);
});

test("auth webhook: timeout and backend down refuse with a clear message", { timeout: 90_000 }, async (t) => {
  const slow = await backend(t, () => { /* never answers */ });
  const gw = track(t, await startGateway(["--auth", "webhook", "--auth-webhook", slow.url, "--auth-webhook-timeout", "300ms"]));
  const started = Date.now();
  assert.equal(await outcome(client(t, gw.url)), "authentication service unavailable: timed out after 300ms");
  assert.ok(Date.now() - started < 5000);

  const deadPort = await freePort();
  const gw2 = track(t, await startGateway(["--auth", "webhook", "--auth-webhook", `http://127.0.0.1:${deadPort}/auth`]));
  assert.match(await outcome(client(t, gw2.url)), /^authentication service unavailable: backend unreachable: .*(refused|connect)/i);
  const m = await scrapeMetrics(gw2.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_auth_failures_total", 'reason="webhook_error"'), 1);
});

test("auth webhook over https: --webhook-ca-file trusts a private CA (accept and refuse)", { timeout: 90_000 }, async (t) => {
  const tls = makeTls(t);
  const be = await startHttpsBackend(t, tls.server, (b) =>
    b.auth?.password === "letmein"
      ? [200, { user: b.auth.name, rooms: ["tls-room"] }]
      : [403, { message: `banned: ${b.auth?.name}` }]);
  const gw = track(t, await startGateway([
    "--auth", "webhook", "--auth-webhook", be.url("/auth"), "--webhook-ca-file", tls.caFile, "--api-key", KEY,
  ]));
  const ok = client(t, gw.url, { auth: { name: "frank", password: "letmein" } });
  assert.equal(await outcome(ok), "connected");
  const me = (await api(gw, "GET", "/sockets")).body.sockets.find((s) => s.id === ok.id);
  assert.deepEqual([...me.rooms].sort(), ["tls-room", "user:frank"]);
  assert.equal(await outcome(client(t, gw.url, { auth: { name: "eve", password: "x" } })), "refused: banned: eve");
  assert.equal(be.seen.length, 2);
  assert.deepEqual(be.tlsErrors, []);
});

test("auth webhook over https: an untrusted certificate or a wrong host name is a clear connect_error; the gateway keeps serving", { timeout: 90_000 }, async (t) => {
  const tls = makeTls(t);
  const be = await startHttpsBackend(t, tls.server, () => [200, { user: "nobody" }]);
  const UNAVAILABLE = "authentication service unavailable: backend unreachable: TLS handshake failed";

  // No --webhook-ca-file: the private CA is not in the system store.
  const gw = track(t, await startGateway(["--auth", "webhook", "--auth-webhook", be.url("/auth"), "--auth-webhook-timeout", "3s"]));
  const started = Date.now();
  assert.equal(await outcome(client(t, gw.url, { auth: { name: "a" } })), UNAVAILABLE);
  assert.ok(Date.now() - started < 3000, "refused at once, not after the timeout");
  // Still serving: health, metrics, and the next handshake is answered the same way.
  assert.equal((await fetch(gw.url + "/healthz")).status, 200);
  assert.equal(await outcome(client(t, gw.url, { auth: { name: "b" } })), UNAVAILABLE);
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.equal(metricSum(m, "sio_gateway_auth_failures_total", 'reason="webhook_error"'), 2);
  assert.ok(gw.running);
  // The reason is in the gateway's log (never sent to clients), and no request reached the backend.
  await waitFor(() => /webhook TLS handshake failed.*UnknownIssuer/.test(gw.output()), { what: "TLS reason in the log" });
  assert.ok(gw.output().includes("https://127.0.0.1:"), "the log names the backend");
  // Two failures, one warning: repeats within 10 s are counted, not logged.
  assert.equal(gw.output().match(/webhook TLS handshake failed/g).length, 1);
  assert.equal(be.seen.length, 0);

  // Trusted CA, but the certificate names another host.
  const other = await startHttpsBackend(t, tls.otherHost, () => [200, { user: "nobody" }]);
  const gw2 = track(t, await startGateway([
    "--auth", "webhook", "--auth-webhook", other.url("/auth"), "--webhook-ca-file", tls.caFile,
  ]));
  assert.equal(await outcome(client(t, gw2.url)), UNAVAILABLE);
  await waitFor(() => /webhook TLS handshake failed.*(NotValidForName|not valid for name)/.test(gw2.output()), { what: "host name reason in the log" });
  assert.equal(other.seen.length, 0);

  // A plain-HTTP backend behind an https:// URL: a TLS failure too, not a hang.
  const plain = await backend(t, (b, res) => json(res, 200, { user: "nobody" }));
  const gw3 = track(t, await startGateway([
    "--auth", "webhook", "--auth-webhook", plain.url.replace("http://", "https://"), "--webhook-ca-file", tls.caFile,
  ]));
  assert.equal(await outcome(client(t, gw3.url)), UNAVAILABLE);
});

test("auth webhook: a URL that is not http:// or https:// is a start-up error naming the key", { timeout: 30_000 }, async () => {
  const { spawnSync } = await import("node:child_process");
  const { GATEWAY_BIN } = await import("../lib/harness.mjs");
  const r = spawnSync(GATEWAY_BIN, ["--listen", "127.0.0.1:0", "--auth", "webhook", "--auth-webhook", "ftp://backend/auth"],
    { encoding: "utf8", timeout: 10000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /auth_webhook.*unsupported scheme `ftp` \(use http:\/\/ or https:\/\/\)/);
});

// socketioxide runs every CONNECT of a session at once, each through authentication: one raw
// websocket sending 100 CONNECTs to pattern namespaces put 100 calls on the auth webhook, ahead
// of every honest client's (they share --auth-webhook-concurrency). A session may have 16 in
// progress at once; the rest are refused at the door, with no webhook call, and past 32 refusals
// the session is cut.
test("auth webhook: one session's CONNECT flood reaches the backend 16 at a time, and the session is cut", { timeout: 90_000 }, async (t) => {
  const be = await backend(t, (b, res) => {
    if (b.auth?.token === "good") return json(res, 200, { user: "honest" });
    setTimeout(() => json(res, 401, { error: "no" }), 200);
  });
  const gw = track(t, await startGateway(["--auth", "webhook", "--auth-webhook", be.url,
    "--namespace", "/", "--namespace", "/tenant-*"]));
  const ws = new WebSocket(gw.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
  t.after(() => ws.terminate());
  const frames = [];
  ws.on("message", (d) => { const f = d.toString(); if (f === "2") ws.send("3"); frames.push(f); });
  const closed = new Promise((resolve) => ws.on("close", resolve));
  await once(ws, "open");
  for (let i = 0; i < 100; i++) ws.send(`40/tenant-${i},{"token":"bad"}`);
  await Promise.race([closed, sleep(15000).then(() => assert.fail("the flooding session was not cut"))]);
  // The backend answers the 16 admitted ones; nothing else of that session reached it.
  await sleep(500);
  assert.ok(be.seen.length <= 16, `the backend saw ${be.seen.length} calls of that session, at most 16`);
  // An honest client is served.
  const honest = io(gw.url + "/tenant-x", { forceNew: true, reconnection: false, transports: ["websocket"], auth: { token: "good" } });
  track(t, honest);
  await once(honest, "connect");
  const m = await scrapeMetrics(gw.url + "/metrics");
  assert.ok(metricSum(m, "sio_gateway_connections_refused_total", 'reason="connect_attempts"') >= 32);
});
