/*
 * sio-gateway room history helper for socket.io-client (served by the gateway at
 * /history-client.js; see docs/delivery.md).
 *
 * Remembers, per room, the position (epoch + offset) of the last message received, and joins
 * rooms with `{room, since}` so that after a reconnect — to the same node or another one — the
 * gateway sends the messages that were missed, in order, before live ones. When they cannot be
 * recovered (trimmed, expired, history lost), `onResync(room, ack)` tells the app to reload the
 * room from its source of truth. Its joins go one after the other (the gateway runs a
 * connection's recovering joins in turn, and refuses more than 8 at once).
 *
 *   const rooms = SioHistory.track(socket, {
 *     storage: sessionStorage,                                   // optional: survive a page reload
 *     onRejoin: (room, ack) => console.log("rejoined", room, ack),
 *     onResync: (room, ack) => reloadRoom(room),                 // ack.reason: trimmed|expired|epoch|skipped
 *   });
 *   await rooms.join("chat:lobby");                              // {ok, epoch, offset, ...}
 *   socket.on("chat", (msg, mark) => ...);                       // mark = {room, offset, epoch}
 *   await rooms.leave("chat:lobby");
 *
 * Works as a classic <script> (window.SioHistory) and as a CommonJS module.
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.SioHistory = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  /** The trailing argument of a history room's message. */
  function isMark(v) {
    return v !== null && typeof v === "object" && typeof v.room === "string" &&
      typeof v.offset === "string" && typeof v.epoch === "string";
  }

  /** Order of two offsets of one epoch: "12" (single node) or "1733400000000-3" (cluster). */
  function compare(a, b) {
    const pa = String(a).split("-").map(BigInt);
    const pb = String(b).split("-").map(BigInt);
    for (let i = 0; i < 2; i++) {
      const x = pa[i] ?? 0n, y = pb[i] ?? 0n;
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  }

  function track(socket, { storage = null, onRejoin = null, onResync = null, prefix = "sio-history:" } = {}) {
    /** room -> {epoch, offset} (null until the first join's ack) */
    const rooms = new Map();

    function load(room) {
      try {
        const v = storage && JSON.parse(storage.getItem(prefix + room) || "null");
        return v && typeof v.epoch === "string" && typeof v.offset === "string" ? v : null;
      } catch { return null; }
    }
    function save(room, pos) {
      rooms.set(room, pos);
      try { if (storage && pos) storage.setItem(prefix + room, JSON.stringify(pos)); } catch { /* full */ }
    }
    /** Move a room's position forward (never back within an epoch). */
    function advance(room, epoch, offset) {
      const pos = rooms.get(room);
      if (!pos || pos.epoch !== epoch || compare(offset, pos.offset) > 0) save(room, { epoch, offset });
    }

    // Every message of a history room carries its position as its last argument.
    socket.onAny((event, ...args) => {
      const mark = args[args.length - 1];
      if (isMark(mark) && rooms.has(mark.room)) advance(mark.room, mark.epoch, mark.offset);
    });

    // The gateway runs a connection's recovering joins in turn and refuses more than 8 at
    // once: this helper's joins go one after the other, so any number of rooms rejoin.
    let queue = Promise.resolve();
    function join(room) {
      const run = queue.then(() => joinNow(room));
      queue = run.catch(() => {});
      return run;
    }

    async function joinNow(room) {
      if (!rooms.has(room)) rooms.set(room, load(room));
      const pos = rooms.get(room);
      const arg = pos ? { room, since: { offset: pos.offset, epoch: pos.epoch } } : { room };
      const ack = await socket.emitWithAck("join", arg);
      if (!ack || ack.ok !== true) {
        if (!pos) rooms.delete(room);
        return ack;
      }
      if (typeof ack.epoch === "string" && typeof ack.offset === "string") {
        // Messages that arrived before the ack (the replay, live ones) already moved it on.
        advance(room, ack.epoch, ack.offset);
      }
      if (pos && ack.recovered === false && onResync) onResync(room, ack);
      return ack;
    }

    async function leave(room) {
      rooms.delete(room);
      try { if (storage) storage.removeItem(prefix + room); } catch { /* ignore */ }
      return socket.emitWithAck("leave", room);
    }

    // A new connection starts in no room: join them again, each from where it was left.
    let connectedBefore = socket.connected;
    socket.on("connect", () => {
      if (!connectedBefore) { connectedBefore = true; return; }
      for (const room of [...rooms.keys()]) {
        join(room).then((ack) => onRejoin && onRejoin(room, ack), (e) => onRejoin && onRejoin(room, { ok: false, error: String(e) }));
      }
    });

    return {
      join,
      leave,
      /** The last known position of `room`, or null. */
      position: (room) => rooms.get(room) || null,
      /** The rooms joined through this helper. */
      rooms: () => [...rooms.keys()],
    };
  }

  return { track, isMark, compare };
});
