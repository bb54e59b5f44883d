// Helpers shared by history-single.test.mjs and history-cluster.test.mjs: websocket clients,
// a recorder that splits each message's trailing history mark from its arguments, and the raw
// websocket client of the recovery attack (it stops reading while its replay is sent).
import { io } from "socket.io-client";
import WebSocket from "ws";
import { track, once, waitFor, scrapeMetrics, metricSum } from "../lib/harness.mjs";

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

/**
 * A raw websocket Socket.IO client on `/`, closed with the test: `emit(event, arg, ackId?)`
 * sends an event by hand (no ack id: no ack asked), `pause()` stops reading (its kernel buffers
 * fill, then the gateway's send queue), `resume()` reads again. `frames` is every Engine.IO
 * text frame read; `events(name)` the parsed arguments of each `name` event; `ack(id)` the
 * first argument of ack `id`, once read. Pings are answered.
 */
export async function rawClient(t, url) {
  const ws = new WebSocket(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
  track(t, { close: () => ws.terminate() });
  const frames = [];
  ws.on("message", (d) => {
    const f = d.toString();
    frames.push(f);
    if (f === "2") ws.send("3");
  });
  await once(ws, "open");
  ws.send("40");
  await waitFor(() => frames.some((f) => f.startsWith("40")), { what: "namespace connected" });
  return {
    frames,
    emit: (event, arg, ackId = "") => ws.send(`42${ackId}${JSON.stringify([event, arg])}`),
    pause: () => ws._socket.pause(),
    resume: () => ws._socket.resume(),
    get open() { return ws.readyState === WebSocket.OPEN; },
    events: (name) => frames.filter((f) => f.startsWith("42[")).map((f) => JSON.parse(f.slice(2)))
      .filter((p) => p[0] === name).map((p) => p.slice(1)),
    ack: (id) => {
      const head = `43${id}[`;
      const f = frames.find((x) => x.startsWith(head));
      return f === undefined ? undefined : JSON.parse(f.slice(head.length - 1))[0];
    },
  };
}

/** The history metrics of the recovery attack tests, read from `/metrics`. */
export async function recoveryMetrics(url) {
  const m = await scrapeMetrics(url + "/metrics");
  const outcome = (o) => metricSum(m, "sio_gateway_history_recoveries_total", `outcome="${o}"`);
  return {
    reads: metricSum(m, "sio_gateway_history_read_seconds_count"),
    recovered: outcome("recovered"),
    failed: outcome("failed"),
    received: metricSum(m, "sio_gateway_events_received_total"),
    invalid: metricSum(m, "sio_gateway_dropped_messages_total", 'reason="invalid"'),
  };
}
