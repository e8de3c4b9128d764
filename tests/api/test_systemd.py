"""systemd integration: the units verify, READY=1 arrives once the socket accepts calls."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from osd.client import Client

UNITS = Path(__file__).resolve().parents[2] / "systemd"
HERE = Path(__file__).resolve().parent


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (apt install systemd)")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """The units as shipped, except ExecStart's /usr/local/bin/osd, which points at this checkout's osd
    (verify insists that the executable exists)."""
    osd = shutil.which("osd", path=os.path.dirname(sys.executable)) or shutil.which("osd")
    assert osd, "the osd entry point is not installed"
    service = (UNITS / "osd.service").read_text()
    assert "ExecStart=/usr/local/bin/osd serve" in service
    (tmp_path / "osd.service").write_text(service.replace("/usr/local/bin/osd", osd))
    shutil.copy(UNITS / "osd.socket", tmp_path / "osd.socket")
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", "osd.service", "osd.socket"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr.strip() == "" and out.stdout.strip() == "", out.stderr


def test_unit_contract() -> None:
    service = (UNITS / "osd.service").read_text()
    sock = (UNITS / "osd.socket").read_text()
    for line in ("Type=notify", "StateDirectory=osd", "RuntimeDirectory=osd", "CapabilityBoundingSet=CAP_NET_ADMIN"):
        assert line in service
    for line in ("ListenStream=/run/osd/osd.sock", "SocketMode=0660", "SocketGroup=osd"):
        assert line in sock


def test_ready_is_sent_once_the_socket_accepts_calls(tmp_path: Path) -> None:
    notify_path = str(tmp_path / "notify.sock")
    sock_path = str(tmp_path / "osd.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(30)
        proc = subprocess.Popen([sys.executable, str(HERE.parent / "support" / "fake_daemon.py"), "--socket",
                                 sock_path, "--state-dir", str(tmp_path / "state")],
                                env={**os.environ, "NOTIFY_SOCKET": notify_path},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert notify.recv(4096) == b"READY=1"
            with Client(sock_path) as c:  # one attempt, no retry: it must accept already
                assert c.call("rpc.health")["status"] == "ok"
            proc.terminate()
            assert notify.recv(4096) == b"STOPPING=1"
            assert proc.wait(10) == 0
        finally:
            proc.kill()
            proc.wait()
