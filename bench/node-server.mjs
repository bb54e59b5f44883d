// The Node.js side of bench/compare.sh: socket.io 4.8 (+ @socket.io/redis-adapter 8.3
// when --redis is given) with the same client conventions as sio-gateway's relay,
// so sio-bench can drive both with identical traffic:
//   join(room, ack)    -> socket.join(room); ack({ok:true})
//   leave(room, ack)   -> socket.leave(room); ack({ok:true})
//   publish({room?, event, data}) -> delivered as `event` to the room (or the
//                         namespace), cluster-wide, sender excluded
//   POST /api/v1/emit {nsp, rooms, except, event, data} -> io.of(nsp).to(rooms).except(except).emit(event, data)
// Usage: node node-server.mjs --port 3000 [--redis redis://127.0.0.1:6379]
import http from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "3000" },
    host: { type: "string", default: "127.0.0.1" },
    redis: { type: "string" },
  },
});

const httpServer = http.createServer((req, res) => {
  if (req.method === "POST" && req.url === "/api/v1/emit") {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      let m;
      try {
        m = JSON.parse(body);
      } catch {
        res.writeHead(400).end('{"error":"bad json"}');
        return;
      }
      let op = io.of(m.nsp || "/");
      if (Array.isArray(m.rooms) && m.rooms.length) op = op.to(m.rooms);
      if (Array.isArray(m.except) && m.except.length) op = op.except(m.except);
      op.emit(m.event, m.data);
      const out = '{"ok":true}';
      res.writeHead(200, { "content-type": "application/json", "content-length": out.length }).end(out);
    });
    return;
  }
  if (req.url === "/healthz") {
    res.writeHead(200).end("ok");
    return;
  }
  // socket.io answers its own path; everything else is unknown.
  if (!req.url.startsWith("/socket.io/")) res.writeHead(404).end();
});

const io = new Server(httpServer, { serveClient: false });

if (values.redis) {
  const pub = createClient({ url: values.redis });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    if (typeof room !== "string") return typeof ack === "function" && ack({ ok: false, error: "room must be a string" });
    socket.join(room);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("leave", (room, ack) => {
    socket.leave(room);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("publish", (msg) => {
    if (!msg || typeof msg.event !== "string") return;
    (msg.room ? socket.to(msg.room) : socket.broadcast).emit(msg.event, msg.data);
  });
});

httpServer.listen(Number(values.port), values.host, () => {
  console.log(`node-server listening on ${values.host}:${values.port} pid ${process.pid}${values.redis ? " redis " + values.redis : ""}`);
});

for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
