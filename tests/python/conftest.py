"""Fixtures for the python-socketio tests: a free port and a gateway process per test."""
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_BIN = os.environ.get("SIO_TEST_GATEWAY_BIN", str(ROOT / "target/debug/sio-gateway"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(url: str, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready")


@pytest.fixture
def gateway_factory():
    """Start gateway processes with extra flags; all are killed after the test."""
    procs = []

    def start(*args: str, env: dict | None = None) -> str:
        port = free_port()
        p = subprocess.Popen(
            [GATEWAY_BIN, "--listen", f"127.0.0.1:{port}", *args],
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(p)
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(url + "/healthz")
        return url

    yield start
    for p in procs:
        p.kill()
        p.wait(timeout=10)
