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
 *     onResync: (room, ack) => reloadRoom(room),                 // ack.reason: trimmed|expired|epoch|skipped|invalid
 *   });
 *   await rooms.join("chat:lobby");                              // {ok, epoch, offset, ...}
 *   socket.on("chat", (msg, mark) => ...);                       // mark = {room, offset, epoch}
 *   await rooms.leave("chat:lobby");
 *
 * Positions are taken only from a message's trailing argument after at least one data argument
 * (the gateway appends the mark to the message's arguments; a client's `publish` delivers one
 * argument, so it cannot pass a forged mark), and only when well formed. A position the gateway
 * does not accept (a forged one saved before, an error answer) is dropped: the room is joined
 * without it and `onResync` called, so no position keeps the helper out of a room.
 *
 * Works as a classic <script> (window.SioHistory) and as a CommonJS module.
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.SioHistory = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  /** An offset: "12" (single node) or "1733400000000-3" (cluster), as the gateway sends them. */
  const OFFSET = /^[0-9]{1,20}(-[0-9]{1,20})?$/;
  /** An epoch, as the gateway accepts it in `since`. */
  const EPOCH = /^[A-Za-z0-9_-]{1,64}$/;

  /** The trailing argument of a history room's message (well formed). */
  function isMark(v) {
    return v !== null && typeof v === "object" && typeof v.room === "string" &&
      typeof v.offset === "string" && typeof v.epoch === "string" &&
      OFFSET.test(v.offset) && EPOCH.test(v.epoch);
  }

  /** Order of two offsets of one epoch; 0 for anything that is not an offset (never throws). */
  function compare(a, b) {
    if (!OFFSET.test(String(a)) || !OFFSET.test(String(b))) return 0;
    try {
      const pa = String(a).split("-").map(BigInt);
      const pb = String(b).split("-").map(BigInt);
      for (let i = 0; i < 2; i++) {
        const x = pa[i] ?? 0n, y = pb[i] ?? 0n;
        if (x !== y) return x < y ? -1 : 1;
      }
    } catch { /* not an offset */ }
    return 0;
  }

  function track(socket, { storage = null, onRejoin = null, onResync = null, prefix = "sio-history:" } = {}) {
    /** room -> {epoch, offset} (null until the first join's ack) */
    const rooms = new Map();

    function load(room) {
      try {
        const v = storage && JSON.parse(storage.getItem(prefix + room) || "null");
        return v && typeof v.epoch === "string" && typeof v.offset === "string" &&
          EPOCH.test(v.epoch) && OFFSET.test(v.offset) ? { epoch: v.epoch, offset: v.offset } : null;
      } catch { return null; }
    }
    function save(room, pos) {
      rooms.set(room, pos);
      try {
        if (storage && pos) storage.setItem(prefix + room, JSON.stringify(pos));
        else if (storage) storage.removeItem(prefix + room);
      } catch { /* full */ }
    }
    /** Move a room's position forward (never back within an epoch). */
    function advance(room, epoch, offset) {
      const pos = rooms.get(room);
      if (!pos || pos.epoch !== epoch || compare(offset, pos.offset) > 0) save(room, { epoch, offset });
    }

    // Every message of a history room carries its position as its last argument, after the
    // message's own (at least one). A single argument is never a mark: a client's `publish`
    // delivers its `data` alone, and another client could put a forged position there.
    socket.onAny((event, ...args) => {
      if (args.length < 2) return;
      const mark = args[args.length - 1];
      try {
        if (isMark(mark) && rooms.has(mark.room)) advance(mark.room, mark.epoch, mark.offset);
      } catch { /* a listener must not throw into socket.io-client */ }
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
      let ack = await socket.emitWithAck("join", arg);
      if (pos && ack && ack.ok !== true && typeof ack.error === "string" && /since/.test(ack.error)) {
        // The position refused (older gateways refuse a bad one; this one joins and answers
        // reason "invalid"): join without it, so a position never keeps this client out of
        // the room; the app resyncs. Other errors (a replay not read in time, history
        // unavailable) keep the position for the next try.
        save(room, null);
        const first = ack;
        ack = await socket.emitWithAck("join", { room });
        if (ack && ack.ok === true) ack = { recovered: false, reason: "invalid", refused: first, ...ack };
      }
      if (!ack || ack.ok !== true) {
        if (!pos) rooms.delete(room);
        return ack;
      }
      if (typeof ack.epoch === "string" && typeof ack.offset === "string") {
        if (ack.recovered === false && rooms.get(room) === pos) {
          // Not recovered, and nothing arrived since: the gateway's position replaces ours,
          // even one ahead of it (a forged position must not hide the messages up to it).
          save(room, { epoch: ack.epoch, offset: ack.offset });
        } else {
          // Messages that arrived before the ack (the replay, live ones) already moved it on.
          advance(room, ack.epoch, ack.offset);
        }
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
