"""Schemathesis (from PyPI) against the gateway's own /api/v1/openapi.json: generated valid and
invalid requests for every operation; no 5xx, statuses / content types / bodies as documented,
invalid data refused, and the API key enforced (ignored_auth). Run through its CLI, bounded."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

KEY = "schemathesis-key-1"


def st_command() -> list[str]:
    exe = shutil.which("st") or shutil.which("schemathesis")
    if exe:
        return [exe]
    # Same interpreter as pytest, installed by tests/requirements.txt.
    return [sys.executable, "-m", "schemathesis.cli"]


@pytest.mark.timeout(240)
def test_schemathesis_finds_no_problem(gateway_factory):
    url = gateway_factory("--api-key", KEY, "--namespace", "/,/chat", "--max-payload", "65536",
                          "--history", "h*=50/1m")
    # The document is there and names the operations the handlers serve.
    doc = requests.get(url + "/api/v1/openapi.json", timeout=5).json()
    assert sorted(doc["paths"]) == [
        "/emit", "/rooms", "/rooms/{room}/history", "/sockets", "/sockets/disconnect",
        "/sockets/join", "/sockets/leave",
    ]
    cmd = st_command() + [
        "run", url + "/api/v1/openapi.json",
        "--base-url", url + "/api/v1",
        "-H", f"Authorization: Bearer {KEY}",
        "--checks", "all",
        "--data-generation-method", "all",
        "--hypothesis-max-examples", "30",
        "--hypothesis-seed", "1",
        "--request-timeout", "5000",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=230, cwd=Path(__file__).parent)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "not_a_server_error" in out and "FAILED" not in out, out[-6000:]
