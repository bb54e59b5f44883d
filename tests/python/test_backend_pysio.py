"""python-socketio's RedisManager(write_only=True) — a real Python backend — reaching clients of
sio-gateway nodes through --pysio-channel: emit to everyone / a room / a socket id, skip_sid,
enter_room / leave_room / close_room / disconnect; each client gets each emit once although
two nodes obey the channel; a legacy pickle message is refused and counted, a message over the
size limit is dropped undecoded."""
import pickle
import subprocess
import threading
import time
import urllib.request

import pytest
import redis
import socketio

from conftest import free_port

CHANNEL = "socketio"


@pytest.fixture
def redis_url():
    port = free_port()
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    r = redis.Redis(port=port)
    deadline = time.time() + 10
    while True:
        try:
            r.ping()
            break
        except redis.ConnectionError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}"
    r.close()
    p.kill()
    p.wait(timeout=10)


class Recorder:
    """A python-socketio client that records every `news` event."""

    def __init__(self, url):
        self.got = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("news", self._on)
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)
        self.sid = self.sio.get_sid()

    def _on(self, *args):
        with self.lock:
            self.got.append(list(args))

    def join(self, room):
        assert self.sio.call("join", room, timeout=5) == {"ok": True}


def wait_until(cond, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


def metric(url, name, label):
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.timeout(60)
def test_redis_manager_write_only_reaches_gateway_clients(gateway_factory, redis_url):
    flags = ("--redis", redis_url, "--pysio-channel", CHANNEL, "--cluster-secret", "pysio-cluster-secret-0123")
    n1 = gateway_factory(*flags, "--node-id", "py-1")
    n2 = gateway_factory(*flags, "--node-id", "py-2")
    wait_until(lambda: urllib.request.urlopen(n1 + "/readyz").status == 200, "node 1 ready")
    a, b, c = Recorder(n1), Recorder(n2), Recorder(n2)
    clients = [a, b, c]
    try:
        a.join("py-room")
        b.join("py-room")
        mgr = socketio.RedisManager(redis_url, channel=CHANNEL, write_only=True)

        # Everyone: exactly once each, although both nodes obey the channel.
        mgr.emit("news", {"n": 1})
        wait_until(lambda: all(len(x.got) == 1 for x in clients), "everyone gets n=1")
        assert all(x.got[0] == [{"n": 1}] for x in clients)

        # A room, skipping one member by sid.
        mgr.emit("news", "room-only", room="py-room", skip_sid=a.sid)
        wait_until(lambda: len(b.got) == 2, "b gets the room emit")
        assert b.got[1] == ["room-only"]

        # A single socket by its id (python-socketio's per-socket room).
        mgr.emit("news", [1, 2], to=c.sid)
        wait_until(lambda: len(c.got) == 2, "c gets its own emit")
        assert c.got[1] == [[1, 2]]

        # enter_room / leave_room / close_room for sockets on any node.
        mgr.enter_room(c.sid, "/", "late-room")
        wait_until(lambda: (mgr.emit("news", "late", room="late-room") or True) and len(c.got) >= 3,
                   "c joined late-room", timeout=5)
        mgr.leave_room(b.sid, "/", "py-room")
        mgr.close_room("late-room", "/")
        time.sleep(0.3)  # let both messages be applied before the probe emit (ordered channel)
        before = [len(x.got) for x in clients]
        mgr.emit("news", "after", room="py-room")
        mgr.emit("news", "after-close", room="late-room")
        mgr.emit("news", "sentinel", to=a.sid)  # published last: once a has it, the others were applied
        wait_until(lambda: len(a.got) == before[0] + 2, "a gets after + sentinel")
        assert a.got[-2:] == [["after"], ["sentinel"]]
        assert len(b.got) == before[1], b.got  # left py-room
        assert len(c.got) == before[2], c.got  # late-room closed

        # disconnect a socket living on node 2.
        # A write-only manager's disconnect() first acts on its own (absent) server and fails in
        # python-socketio 5.14, so publish the very message it builds, through its own _publish.
        mgr._publish({"method": "disconnect", "sid": b.sid, "namespace": "/", "host_id": mgr.host_id})
        wait_until(lambda: not b.sio.connected, "b disconnected by the Python backend")
        assert a.sio.connected and c.sio.connected

        # Legacy pickle messages are refused and counted, the channel keeps working.
        r = redis.Redis.from_url(redis_url)
        r.publish(CHANNEL, pickle.dumps({"method": "emit", "event": "news", "data": "pickled"}))
        r.publish(CHANNEL, b"{not json")
        r.close()
        wait_until(lambda: metric(n1, "sio_gateway_dropped_messages_total", 'reason="pickle"') == 1, "pickle counted")
        assert metric(n2, "sio_gateway_dropped_messages_total", 'reason="pickle"') == 1
        wait_until(lambda: metric(n1, "sio_gateway_dropped_messages_total", 'reason="pysio_invalid"') == 1, "garbage counted")
        # A message over the size limit (8 MiB at these settings) is dropped before it is
        # decoded (review 7: a Redis writer's 15 MB message cost each node ~300 MB).
        r = redis.Redis.from_url(redis_url)
        big = b'{"method":"emit","event":"news","data":"' + b"x" * (9 << 20) + b'","namespace":"/"}'
        r.publish(CHANNEL, big)
        r.close()
        wait_until(lambda: metric(n1, "sio_gateway_dropped_messages_total", 'reason="pysio_too_large"') == 1, "too large counted")
        assert metric(n2, "sio_gateway_dropped_messages_total", 'reason="pysio_too_large"') == 1
        mgr.emit("news", "still alive", to=a.sid)
        wait_until(lambda: a.got[-1] == ["still alive"], "still working")
        assert ["pickled"] not in a.got
    finally:
        for x in clients:
            if x.sio.connected:
                x.sio.disconnect()


@pytest.mark.timeout(60)
def test_redis_manager_emits_into_history_rooms_bypass_and_are_counted(gateway_factory, redis_url):
    """python-socketio cannot append to a room's history: its emit into a history room is
    delivered without an offset and counted in history_bypassed_total by each node (each
    applies it)."""
    flags = ("--redis", redis_url, "--pysio-channel", CHANNEL, "--history", "hist:*=10",
             "--cluster-secret", "pysio-cluster-secret-0123")
    n1 = gateway_factory(*flags, "--node-id", "py-1")
    n2 = gateway_factory(*flags, "--node-id", "py-2")
    wait_until(lambda: urllib.request.urlopen(n1 + "/readyz").status == 200, "node 1 ready")
    wait_until(lambda: urllib.request.urlopen(n2 + "/readyz").status == 200, "node 2 ready")
    a = Recorder(n1)
    try:
        assert a.sio.call("join", "hist:a", timeout=5)["ok"] is True
        a.join("plain")
        mgr = socketio.RedisManager(redis_url, channel=CHANNEL, write_only=True)
        mgr.emit("news", "not a history room", room="plain")
        mgr.emit("news", "into history", room="hist:a")
        wait_until(lambda: len(a.got) == 2, "a gets both")
        assert a.got == [["not a history room"], ["into history"]], "no offset appended"
        assert metric(n1, "sio_gateway_history_bypassed_total", "") == 1
        wait_until(lambda: metric(n2, "sio_gateway_history_bypassed_total", "") == 1, "node 2 counts it too")
        assert metric(n1, "sio_gateway_history_appends_total", "") == 0
    finally:
        if a.sio.connected:
            a.sio.disconnect()


@pytest.mark.timeout(60)
def test_admin_ui_sees_python_room_changes_live(gateway_factory, redis_url):
    """enter_room / leave_room / close_room of a Python backend reach the Admin UI as
    room_joined / room_left (crates/gateway/src/pysio.rs and the adapter's room watch)."""
    url = gateway_factory("--redis", redis_url, "--pysio-channel", CHANNEL,
                          "--cluster-secret", "pysio-cluster-secret-0123",
                          "--admin-ui", "readonly", "--admin-ui-no-auth", "true")
    wait_until(lambda: urllib.request.urlopen(url + "/readyz").status == 200, "node ready")
    seen = []
    lock = threading.Lock()
    ui = socketio.Client(reconnection=False)

    def record(ev):
        def on(*args):
            with lock:
                seen.append((ev, *args[:3]))
        return on

    for ev in ("room_joined", "room_left"):
        ui.on(ev, record(ev), namespace="/admin")
    ui.connect(url, namespaces=["/admin"], transports=["websocket"], wait_timeout=10)
    c = Recorder(url)
    try:
        mgr = socketio.RedisManager(redis_url, channel=CHANNEL, write_only=True)
        mgr.enter_room(c.sid, "/", "py-a")
        mgr.enter_room(c.sid, "/", "py-b")
        wait_until(lambda: ("room_joined", "/", "py-b", c.sid) in seen, "room_joined py-b")
        assert ("room_joined", "/", "py-a", c.sid) in seen
        mgr.leave_room(c.sid, "/", "py-a")
        wait_until(lambda: ("room_left", "/", "py-a", c.sid) in seen, "room_left py-a (leave_room)")
        mgr.close_room("py-b", "/")
        wait_until(lambda: ("room_left", "/", "py-b", c.sid) in seen, "room_left py-b (close_room)")
        with lock:  # each once (reports go out as they come, not necessarily in order)
            assert sorted(e for e in seen if e[2] in ("py-a", "py-b")) == sorted([
                ("room_joined", "/", "py-a", c.sid), ("room_joined", "/", "py-b", c.sid),
                ("room_left", "/", "py-a", c.sid), ("room_left", "/", "py-b", c.sid)])
    finally:
        c.sio.disconnect()
        ui.disconnect()
