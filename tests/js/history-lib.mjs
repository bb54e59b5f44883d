// Helpers shared by history-single.test.mjs and history-cluster.test.mjs: websocket clients
// and a recorder that splits each message's trailing history mark from its arguments.
import { io } from "socket.io-client";
import { track, once } from "../lib/harness.mjs";

/** A websocket socket.io-client, closed with the test. */
export function client(t, url) {
  const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  track(t, s);
  return s;
}

/** `s`, once connected. */
export async function connected(s) {
  if (!s.connected) await once(s, "connect");
  return s;
}

/** Every `event` received, as {args, mark}: the mark is the trailing argument. */
export function collect(s, event) {
  const got = [];
  s.on(event, (...args) => got.push({ args: args.slice(0, -1), mark: args[args.length - 1] }));
  return got;
}
