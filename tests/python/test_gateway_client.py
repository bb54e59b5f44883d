"""python-socketio (PyPI) as a second, independent client of a single gateway node
(and, in the last test, sharing a room with a Node.js socket.io-client).

Covers: connect/disconnect over websocket and polling, emit with acks, join/leave and room
delivery (members get it, sender and non-members do not), binary payloads, a custom namespace,
an unknown namespace (connect_error message), an oversize payload, and the drain: the client is
dropped at the transport level and reconnects by itself to the replacement node.
"""
import os
import signal
import subprocess
import threading
import time

import pytest
import socketio

from conftest import GATEWAY_BIN, free_port, wait_http_ok


def wait_until(pred, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Recorder:
    """A python-socketio client that records what it receives."""

    def __init__(self, url, transports, namespaces=("/",), reconnection=False):
        self.sio = socketio.Client(reconnection=reconnection, reconnection_delay=0.1,
                                   reconnection_delay_max=0.3)
        self.got = []
        self.lock = threading.Lock()
        self.connects = 0
        self.disconnect_reasons = []
        self.connect_errors = []

        for ns in namespaces:
            self.sio.on("*", self._recorder(ns), namespace=ns)
            self.sio.on("connect", lambda: self._on_connect(), namespace=ns)
            self.sio.on("disconnect", lambda reason=None: self.disconnect_reasons.append(reason), namespace=ns)
            self.sio.on("connect_error", lambda data=None: self.connect_errors.append(data), namespace=ns)
        self.url, self.transports, self.namespaces = url, transports, list(namespaces)

    def _recorder(self, namespace):
        def any_event(event, *args):
            with self.lock:
                self.got.append((namespace, event, args[0] if len(args) == 1 else args))

        return any_event

    def _on_connect(self):
        self.connects += 1

    def connect(self):
        self.sio.connect(self.url, transports=self.transports, namespaces=self.namespaces, wait_timeout=5)
        return self

    def events(self, name):
        with self.lock:
            return [data for (_, ev, data) in self.got if ev == name]

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:
            pass


@pytest.fixture
def clients():
    made = []

    def make(*args, **kw):
        c = Recorder(*args, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_acks_rooms_binary(gateway_factory, clients, transport):
    url = gateway_factory()
    a = clients(url, [transport]).connect()
    b = clients(url, [transport]).connect()
    c = clients(url, [transport]).connect()
    assert a.sio.transport() == transport

    assert a.sio.call("join", "room1", timeout=5) == {"ok": True}
    assert b.sio.call("join", "room1", timeout=5) == {"ok": True}

    ack = a.sio.call("publish", {"room": "room1", "event": "chat", "data": {"text": "hi"}}, timeout=5)
    assert ack == {"ok": True}
    payload = bytes([0, 1, 2, 254, 255])
    a.sio.call("publish", {"room": "room1", "event": "blob", "data": {"bin": payload, "n": 7}}, timeout=5)
    wait_until(lambda: len(b.events("chat")) == 1 and len(b.events("blob")) == 1, what="room delivery")
    assert b.events("chat")[0] == {"text": "hi"}
    blob = b.events("blob")[0]
    assert isinstance(blob["bin"], bytes) and blob["bin"] == payload
    assert blob["n"] == 7

    # leave: b stops receiving; a namespace-wide publish acts as a barrier.
    assert b.sio.call("leave", "room1", timeout=5) == {"ok": True}
    a.sio.call("publish", {"room": "room1", "event": "chat", "data": "after-leave"}, timeout=5)
    a.sio.call("publish", {"event": "all", "data": 1}, timeout=5)
    wait_until(lambda: len(b.events("all")) == 1 and len(c.events("all")) == 1, what="broadcast")
    assert len(b.events("chat")) == 1
    assert c.events("chat") == [] and c.events("blob") == []
    assert a.got == [], "the sender is excluded"

    # Any other event: no sink, error ack.
    res = a.sio.call("order.created", {"id": 1}, timeout=5)
    assert res["ok"] is False and "no upstream sink" in res["error"]

    a.sio.disconnect()
    assert a.disconnect_reasons == ["client disconnect"]


def test_custom_and_unknown_namespace(gateway_factory, clients):
    url = gateway_factory("--namespace", "/,/chat")
    a = clients(url, ["websocket"], namespaces=["/chat"]).connect()
    b = clients(url, ["polling"], namespaces=["/chat"]).connect()
    root = clients(url, ["websocket"]).connect()
    assert a.sio.call("publish", {"event": "hello", "data": "x"}, namespace="/chat", timeout=5) == {"ok": True}
    wait_until(lambda: b.events("hello") == ["x"], what="namespace delivery")
    root.sio.call("join", "barrier", timeout=5)
    assert root.got == []

    bad = clients(url, ["websocket"], namespaces=["/nope"])
    with pytest.raises(socketio.exceptions.ConnectionError):
        bad.connect()
    wait_until(lambda: bad.connect_errors, what="connect_error")
    assert bad.connect_errors[0]["message"] == "Invalid namespace"


def test_oversize_payload_cuts_only_the_offender(gateway_factory, clients):
    url = gateway_factory("--max-payload", "10000")
    big = clients(url, ["websocket"]).connect()
    other = clients(url, ["websocket"]).connect()
    peer = clients(url, ["websocket"]).connect()
    for c in (big, other, peer):
        assert c.sio.call("join", "r", timeout=5) == {"ok": True}
    big.sio.emit("publish", {"room": "r", "event": "big", "data": "y" * 50000})
    wait_until(lambda: big.disconnect_reasons, what="offender disconnected")
    assert other.sio.call("publish", {"room": "r", "event": "small", "data": 1}, timeout=5) == {"ok": True}
    wait_until(lambda: peer.events("small") == [1], what="others still served")
    assert peer.events("big") == []


def test_drain_then_reconnect_to_replacement(clients):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [GATEWAY_BIN, "--listen", f"127.0.0.1:{port}", "--drain-period", "1s"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = None
    try:
        wait_http_ok(url + "/healthz")
        ws = clients(url, ["websocket"], reconnection=True).connect()
        # python-socketio's default: polling, upgraded to websocket.
        poll = clients(url, ["polling", "websocket"], reconnection=True).connect()
        wait_until(lambda: poll.sio.transport() == "websocket", what="upgrade")
        only_poll = clients(url, ["polling"], reconnection=True).connect()
        assert ws.connects == 1 and poll.connects == 1 and only_poll.connects == 1

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0
        everyone = (ws, poll, only_poll)
        wait_until(lambda: all(c.disconnect_reasons for c in everyone), what="drain disconnects")
        # Dropped at the transport level, never a "server disconnect": python-socketio does not
        # reconnect after one (nor after an Engine.IO CLOSE packet, which is why the gateway
        # fails a python long-poll instead of answering it with CLOSE).
        for c in everyone:
            assert c.disconnect_reasons == ["transport error"], c.disconnect_reasons

        second = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http_ok(url + "/healthz")
        wait_until(lambda: all(c.connects == 2 for c in everyone), timeout=15, what="reconnect")
        for c in everyone:
            assert c.sio.call("join", "again", timeout=5) == {"ok": True}
    finally:
        for p in (first, second):
            if p and p.poll() is None:
                p.kill()
                p.wait(timeout=10)


if os.environ.get("SIO_TEST_VERBOSE"):
    import logging
    logging.basicConfig(level=logging.DEBUG)


NODE_PEER = r"""
import { io } from "socket.io-client";
const s = io(process.argv[2], { transports: ["websocket"], reconnection: false });
s.onAny((event, data) => {
  const out = Buffer.isBuffer(data?.bin) ? { ...data, bin: [...data.bin], binary: true } : data;
  console.log(JSON.stringify({ event, data: out }));
  if (event === "to-node") {
    s.emit("publish", { room: "mixed", event: "to-python", data: { bin: Buffer.from([9, 8, 7]) } });
  }
});
s.on("connect", async () => {
  const r = await s.emitWithAck("join", "mixed");
  console.log(JSON.stringify({ event: "joined", data: r }));
});
"""


def test_python_and_node_clients_share_a_room(gateway_factory, clients):
    import json
    from conftest import ROOT

    url = gateway_factory()
    # Inside tests/ so that node resolves socket.io-client from tests/node_modules.
    script = ROOT / "tests" / f"python-node-peer-{os.getpid()}.tmp.mjs"
    script.write_text(NODE_PEER)
    peer = subprocess.Popen(["node", str(script), url], stdout=subprocess.PIPE, text=True,
                            cwd=str(ROOT / "tests"))
    try:
        first = json.loads(peer.stdout.readline())
        assert first == {"event": "joined", "data": {"ok": True}}
        py = clients(url, ["polling", "websocket"]).connect()
        assert py.sio.call("join", "mixed", timeout=5) == {"ok": True}
        ack = py.sio.call("publish", {"room": "mixed", "event": "to-node",
                                      "data": {"bin": b"\x01\x02", "n": 1}}, timeout=5)
        assert ack == {"ok": True}
        got = json.loads(peer.stdout.readline())
        assert got == {"event": "to-node", "data": {"bin": [1, 2], "n": 1, "binary": True}}
        wait_until(lambda: py.events("to-python"), what="node -> python")
        assert py.events("to-python")[0] == {"bin": bytes([9, 8, 7])}
    finally:
        peer.kill()
        peer.wait(timeout=10)
        script.unlink(missing_ok=True)
