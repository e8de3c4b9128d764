"""A daemon process under test: started, awaited through READY=1, stopped, its log kept.

Readiness is the daemon's own sd_notify: each Daemon binds a datagram socket, passes it as
NOTIFY_SOCKET and waits for READY=1, so every test that starts a daemon also proves the
notification. Paths are short (AF_UNIX paths are limited to 108 bytes) and unique.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema

from osd import methods
from osd.client import Client, RpcError

HERE = Path(__file__).resolve().parent
FAKE_DAEMON = [sys.executable, str(HERE / "fake_daemon.py")]
REAL_DAEMON = [sys.executable, "-m", "osd", "serve"]


_CATALOGUE = methods.registry()


class DaemonFailed(Exception):
    pass


def check_result(method: str, result: Any) -> None:
    """Raise jsonschema.ValidationError when ``result`` breaks the method's declared result schema."""
    if method in _CATALOGUE:
        jsonschema.validate(result, dict(_CATALOGUE.get(method).result))


class Daemon:
    def __init__(self, command: Sequence[str] = FAKE_DAEMON, args: Sequence[str] = (), *,
                 netns: str | None = None, env: dict[str, str] | None = None, workdir: str | None = None,
                 socket_path: str | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="osd-t-", dir="/tmp"))
        self._own_workdir = workdir is None
        self.socket = socket_path or str(self.workdir / "osd.sock")
        self.state_dir = str(self.workdir / "state")
        self.log_path = self.workdir / "daemon.log"
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.argv = [*prefix, *command, "--socket", self.socket, "--state-dir", self.state_dir, *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        # The fake backend echoes params; real backends must honour the declared result schemas.
        self.check_results = list(command) != FAKE_DAEMON

    # ------------------------------------------------------------ life cycle
    def start(self, timeout: float = 30.0) -> "Daemon":
        notify_path = str(self.workdir / f"notify-{os.getpid()}-{time.monotonic_ns()}.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(notify_path)
            notify.settimeout(0.2)
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env={**self.env, "NOTIFY_SOCKET": notify_path})
            log.close()
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    try:
                        if b"READY=1" in notify.recv(4096).split(b"\n"):
                            return self
                    except socket.timeout:
                        pass
                    if self.proc.poll() is not None:
                        raise DaemonFailed(f"daemon exited with {self.proc.returncode}:\n{self.log}")
                raise DaemonFailed(f"no READY=1 within {timeout}s:\n{self.log}")
            except BaseException:
                self.kill()
                raise
            finally:
                os.unlink(notify_path)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DaemonFailed(f"daemon ignored SIGTERM for {timeout}s:\n{self.log}") from None

    def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self) -> None:
        self.kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # ------------------------------------------------------------ use
    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, **kwargs: Any) -> Client:
        return Client(self.socket, **kwargs)

    def call(self, method: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """The result of one call, checked against the catalogue's result schema; raises RpcError."""
        with self.client(**kwargs) as client:
            result = client.call(method, params)
        if self.check_results:
            check_result(method, result)
        return result

    def error(self, method: str, params: dict[str, Any] | None = None, **kwargs: Any) -> RpcError:
        """The JSON-RPC error ``method`` answers; AssertionError when it succeeds instead."""
        try:
            result = self.call(method, params, **kwargs)
        except RpcError as exc:
            return exc
        raise AssertionError(f"{method} {params} succeeded with {result!r:.300}; an error was expected")

    def curl(self, body: str, *, path: str = "/", extra: Sequence[str] = ()) -> tuple[int, str]:
        """POST ``body`` with curl over the socket: (HTTP status, response body)."""
        out = subprocess.run(
            ["curl", "-sS", "--unix-socket", self.socket, "-H", "Content-Type: application/json",
             "-w", "\n%{http_code}", *extra, "--data-binary", body, f"http://localhost{path}"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        text, _, status = out.rpartition("\n")
        return int(status), text
