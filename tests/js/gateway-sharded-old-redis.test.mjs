// --redis-pubsub sharded on a server older than Redis 7 refuses to start and says why. The
// "server" is a tiny fake speaking just enough RESP (it claims redis_version:6.2.14), since the
// test machines run Redis 7.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { GATEWAY_BIN, startProcess, freePort, track } from "../lib/harness.mjs";

/** A RESP2 server answering every command: INFO with an old version, CLIENT ID with 1, else OK. */
function fakeOldRedis(port) {
  const server = net.createServer((sock) => {
    let buf = "";
    sock.on("error", () => {});
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      // One reply per complete command (arrays of bulk strings).
      for (;;) {
        const m = /^\*(\d+)\r\n/.exec(buf);
        if (!m) return;
        let at = m[0].length;
        const args = [];
        for (let i = 0; i < Number(m[1]); i++) {
          const h = /^\$(\d+)\r\n/.exec(buf.slice(at));
          if (!h) return;
          const len = Number(h[1]);
          if (buf.length < at + h[0].length + len + 2) return;
          args.push(buf.slice(at + h[0].length, at + h[0].length + len));
          at += h[0].length + len + 2;
        }
        buf = buf.slice(at);
        const cmd = (args[0] || "").toUpperCase();
        if (cmd === "INFO") {
          const body = "# Server\r\nredis_version:6.2.14\r\nredis_mode:standalone\r\n";
          sock.write(`$${body.length}\r\n${body}\r\n`);
        } else if (cmd === "CLIENT" && (args[1] || "").toUpperCase() === "ID") {
          sock.write(":1\r\n");
        } else if (cmd === "PING") {
          sock.write("+PONG\r\n");
        } else {
          sock.write("+OK\r\n");
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

test("--redis-pubsub sharded on Redis 6 exits with an error naming Redis >= 7", { timeout: 30_000 }, async (t) => {
  const port = await freePort();
  const server = await fakeOldRedis(port);
  t.after(() => server.close());
  const gw = track(t, startProcess(GATEWAY_BIN, [
    "--listen", `127.0.0.1:${await freePort()}`, "--redis", `redis://127.0.0.1:${port}`, "--redis-pubsub", "sharded",
  ], { name: "gw-old-redis" }));
  const { code } = await Promise.race([gw.exited, new Promise((r) => setTimeout(() => r({ code: "still running" }), 20_000))]);
  assert.notEqual(code, 0, gw.output());
  assert.notEqual(code, "still running", gw.output());
  assert.match(gw.output(), /needs Redis >= 7; the server is Redis 6\.2\.14/, gw.output());
  t.diagnostic(gw.output().trim().split("\n").pop());
});
