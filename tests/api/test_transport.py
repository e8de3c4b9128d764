"""HTTP edge: paths, methods, caps, the socket's mode and life cycle, SIGTERM drain, activation."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from osd.client import Client
from support.daemon import Daemon, DaemonFailed
from support.fake import SECRET


def test_health_and_rpc_paths(daemon: Daemon) -> None:
    out = subprocess.run(["curl", "-sS", "--unix-socket", daemon.socket, "http://localhost/health"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"status": "ok"}
    _, body = daemon.curl('{"jsonrpc":"2.0","id":1,"method":"rpc.health"}', path="/rpc")
    assert json.loads(body)["result"]["status"] == "ok"


def test_other_http_methods_get_405_and_other_paths_404(daemon: Daemon) -> None:
    def status(method: str, path: str) -> tuple[str, str]:
        out = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
                              "--unix-socket", daemon.socket, f"http://localhost{path}"], capture_output=True,
                             text=True)
        allow = [line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if line.lower().startswith("allow:")]
        return out.stdout.splitlines()[-1], allow[0] if allow else ""

    for method in ("GET", "PUT", "DELETE"):
        assert status(method, "/") == ("405", "POST"), method
        assert status(method, "/rpc") == ("405", "POST"), method
    assert status("POST", "/health") == ("405", "GET,HEAD")
    head = subprocess.run(["curl", "-sS", "-I", "--unix-socket", daemon.socket, "http://localhost/health"],
                          capture_output=True, text=True, check=True).stdout
    assert head.startswith("HTTP/1.1 200")
    assert status("POST", "/other")[0] == "404" and status("GET", "/rpc/x")[0] == "404"


def test_expect_100_continue_is_answered_before_the_body(daemon: Daemon) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"rpc.health"}'
    head = (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n" % len(body))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(daemon.socket)
        sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")  # before any body byte
        sock.sendall(body)
        reply = b""
        while b'"result"' not in reply:
            reply += sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(daemon.socket)
        sock.sendall(head + b"Expect: something-else\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 417")


def test_body_over_the_cap_gets_413(tmp_path: Path) -> None:
    config = tmp_path / "osd.toml"
    config.write_text("[server]\nmax_body_bytes = 1000\nmax_batch = 2\n")
    with Daemon(args=["--config", str(config)]) as d:
        status, _ = d.curl(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "net.bridge.add",
                                       "params": {"name": "x" * 2000}}))
        assert status == 413
        _, body = d.curl(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "net.interfaces"} for i in range(3)]))
        assert json.loads(body)["error"]["code"] == -32600
        assert d.call("rpc.health")["status"] == "ok"


def test_internal_error_hides_the_exception_and_logs_the_incident(daemon: Daemon) -> None:
    _, body = daemon.curl('{"jsonrpc":"2.0","id":1,"method":"net.bridge.add","params":{"name":"boom"}}')
    error = json.loads(body)["error"]
    assert error["code"] == -32603 and SECRET not in body
    assert f"incident={error['data']['incident']}" in daemon.log and SECRET in daemon.log
    _, body = daemon.curl('{"jsonrpc":"2.0","id":2,"method":"net.bridge.add","params":{"name":"nonjson"}}')
    assert json.loads(body)["error"]["code"] == -32603


@pytest.mark.root
def test_socket_mode_group_and_removal_at_exit(tmp_path: Path) -> None:
    config = tmp_path / "osd.toml"
    config.write_text('[server]\ngroup = "nogroup"\n')
    d = Daemon(args=["--config", str(config)]).start()
    try:
        st = os.stat(d.socket)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 65534
        assert d.stop() == 0
        assert not os.path.exists(d.socket)
        assert "stopped" in d.log
    finally:
        d.cleanup()


def test_stale_socket_is_replaced_and_regular_file_refused(tmp_path: Path) -> None:
    d = Daemon()
    try:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(d.socket)
        stale.close()  # a socket file nobody listens on
        d.start()
        assert d.call("rpc.health")["status"] == "ok"
        second = Daemon(socket_path=d.socket)
        with pytest.raises(DaemonFailed, match="another process is listening"):
            second.start()
        second.cleanup()
    finally:
        d.cleanup()
    blocker = tmp_path / "not-a-socket"
    blocker.write_text("precious")
    d = Daemon(socket_path=str(blocker))
    try:
        with pytest.raises(DaemonFailed, match="exists and is not a socket"):
            d.start()
        assert blocker.read_text() == "precious"
    finally:
        d.cleanup()


def test_sigterm_drains_in_flight_calls_then_exits_0(daemon: Daemon) -> None:
    result: dict = {}

    def slow_call() -> None:
        with Client(daemon.socket) as c:
            result["reply"] = c.call("net.bridge.add", {"name": "sleep1500"})

    worker = threading.Thread(target=slow_call)
    worker.start()
    time.sleep(0.5)
    daemon.signal(signal.SIGTERM)
    worker.join(10)
    assert result["reply"]["params"] == {"name": "sleep1500"}
    assert daemon.wait(10) == 0
    assert not os.path.exists(daemon.socket)


def test_socket_activation_with_listen_fds(tmp_path: Path) -> None:
    """systemd-socket-activate binds the socket and passes it as LISTEN_FDS, like osd.socket does."""
    path = str(tmp_path / "act.sock")
    unused = str(tmp_path / "unused.sock")
    d = Daemon(socket_path=unused)
    argv = ["systemd-socket-activate", "-l", path, *d.argv]  # d.argv names --socket unused.sock
    with open(d.log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Client(path).call("rpc.health")["status"] == "ok"  # the first connection starts the daemon
        assert "listening on the socket passed by systemd" in d.log
        assert not os.path.exists(unused)
    finally:
        proc.terminate()
        proc.wait(10)
        d.cleanup()
