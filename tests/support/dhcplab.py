"""DHCP servers inside test namespaces: dnsmasq (Debian's dnsmasq-base) and a short-lease responder.

Each server writes its lease file, pid file and log under a directory the test owns, and
is stopped by the process this module started, never by name.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .netlab import Netns

HERE = Path(__file__).resolve().parent


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{path.read_text(errors='replace')}")
        time.sleep(0.02)
    raise RuntimeError(f"server not ready within {timeout} s:\n{path.read_text(errors='replace')}")


class Server:
    """A server process in a namespace; ``stop()`` kills exactly that process."""

    def __init__(self, ns: Netns, argv: Sequence[str], log: Path, ready: str) -> None:
        self.log_path = log
        with open(log, "wb") as out:
            self.proc = ns.popen(*argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_for(log, ready, self.proc)
        except BaseException:
            self.stop()
            raise

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Dnsmasq(Server):
    """dnsmasq serving DHCPv4 (and, with ``ra=True``, router advertisements) on ``iface``.

    T1 and T2 are sent as options, which dnsmasq honours, so renewals happen within
    seconds although dnsmasq's shortest lease is two minutes. ``--no-ping`` skips the
    ping dnsmasq sends before offering an address (it costs 3 s per DORA).
    """

    def __init__(self, ns: Netns, iface: str, workdir: Path, *, dhcp4: bool = True, ra: bool = False,
                 t1: int | None = None, t2: int | None = None, options: tuple[str, ...] = ()) -> None:
        """``options`` are further --dhcp-option values (e.g. ``121,10.9.0.0/16,192.0.2.1``)."""
        self.leasefile = workdir / f"dnsmasq-{iface}.leases"
        argv = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", f"--interface={iface}",
                "--bind-interfaces", "--no-ping", "--log-dhcp", "--log-facility=-",
                f"--dhcp-leasefile={self.leasefile}", f"--pid-file={workdir / f'dnsmasq-{iface}.pid'}"]
        if dhcp4:
            argv += ["--dhcp-range=192.0.2.50,192.0.2.60,255.255.255.0,2m",
                     "--dhcp-option=option:router,192.0.2.1"]
            argv += [f"--dhcp-option=option:T1,{t1}"] if t1 else []
            argv += [f"--dhcp-option=option:T2,{t2}"] if t2 else []
            argv += [f"--dhcp-option={option}" for option in options]
        if ra:
            argv += ["--enable-ra", "--dhcp-range=2001:db8:1::,ra-only,10m"]
        super().__init__(ns, argv, workdir / f"dnsmasq-{iface}.log", "started, version")

    def leases(self) -> list[list[str]]:
        """dnsmasq's lease file: [expiry, mac, address, hostname, client id] per lease."""
        if not self.leasefile.exists():
            return []
        return [line.split() for line in self.leasefile.read_text().splitlines() if line.strip()]


class Responder(Server):
    """tests/support/dhcp_responder.py: one address, lease times in seconds."""

    def __init__(self, ns: Netns, iface: str, workdir: Path, *, address: str, router: str, server: str,
                 lease_s: int, t1: int, t2: int) -> None:
        argv = [sys.executable, str(HERE / "dhcp_responder.py"), iface, server, address, router,
                str(lease_s), str(t1), str(t2)]
        super().__init__(ns, argv, workdir / f"responder-{iface}.log", "ready")
