"""DHCP benchmark: net.lease.restart (a full DORA through the daemon) vs busybox udhcpc, same lab, same run.

    python tests/bench/bench_lease.py [--rounds N]      (root)

A server namespace runs dnsmasq (--no-ping); the daemon runs in a client namespace joined
by a veth pair. Each round times one ``net.lease.restart`` over the socket (CLI-free
client: DISCOVER, OFFER, REQUEST, ACK, address and route applied, state file written) and
one ``busybox udhcpc -q -n -s /bin/true`` on a second veth in the same client namespace
(its own DORA from process start to exit, applying nothing). It prints medians and the
ratio osd/udhcpc, plus the time a killed daemon takes to have its lease bound again
(INIT-REBOOT). Then 2000 veth links join the client namespace and ``net.lease`` (one
interface, and all) is timed against ``ip -j -6 addr show`` (the same dev, and all) as the
reference. Figures only; it never passes or fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.daemon import REAL_DAEMON, Daemon  # noqa: E402
from support.dhcplab import Dnsmasq  # noqa: E402
from support.netlab import NetLab, Netns, run, short_name  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="osd-bench-lease-"))
    with NetLab() as lab:
        server, client = lab.netns("bsrv"), lab.netns("bcli")
        s1, c1, s2, c2 = (short_name(p) for p in ("bs", "bc", "bs", "bc"))
        lab.veth(server, s1, client, c1)
        lab.veth(server, s2, client, c2)
        # Both client links reach one dnsmasq through a bridge in the server namespace.
        server.ip("link", "add", "name", (br := short_name("bb")), "type", "bridge")
        for port in (s1, s2):
            server.ip("link", "set", port, "master", br)
        server.ip("addr", "add", "192.0.2.1/24", "dev", br)
        server.ip("link", "set", br, "up")
        dnsmasq = Dnsmasq(server, br, workdir)
        config = workdir / "osd.toml"
        config.write_text("[net]\ndhcp_timeout_s = 10\n")
        first = daemon = Daemon(REAL_DAEMON, ["--config", str(config)], netns=client.name).start()
        try:
            osd_ms, udhcpc_ms = [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                daemon.call("net.lease.restart", {"interface": c1})
                osd_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                client.exec("busybox", "udhcpc", "-q", "-n", "-t", "3", "-T", "1", "-i", c2, "-s", "/bin/true")
                udhcpc_ms.append((time.perf_counter() - started) * 1000)
            scale = scaled(client, daemon, c1)
            resume_ms = []
            for _ in range(3):
                daemon.kill()
                started = time.perf_counter()
                daemon = Daemon(REAL_DAEMON, ["--config", str(config)], netns=client.name,
                                workdir=str(daemon.workdir)).start()
                ready = time.perf_counter()
                while daemon.call("net.lease", {"interface": c1})[0]["dhcp4"]["state"] != "bound":
                    time.sleep(0.005)
                resume_ms.append(((time.perf_counter() - ready) * 1000))
        finally:
            daemon.cleanup()
            first.cleanup()  # owns the work directory the restarted daemons shared
            dnsmasq.stop()
            run(["rm", "-rf", str(workdir)])
    osd, ref = statistics.median(osd_ms), statistics.median(udhcpc_ms)
    print(f"net.lease.restart   median {osd:7.1f} ms  ({args.rounds} rounds)")
    print(f"busybox udhcpc -q   median {ref:7.1f} ms  (reference, same lab)")
    print(f"ratio osd/udhcpc    {osd / ref:.2f}")
    print(f"resume after kill -9: lease bound {statistics.median(resume_ms):.1f} ms after READY=1 (median of 3)")
    for what, (osd_t, ip_t) in scale.items():
        print(f"{what:28s} median {osd_t:7.1f} ms  ip -j -6 addr show: {ip_t:7.1f} ms  ratio {osd_t / ip_t:.2f}")


def scaled(client: Netns, daemon: Daemon, iface: str, links: int = 2000) -> dict[str, tuple[float, float]]:
    """net.lease among ``links`` veth links vs ip -j -6 addr show: {what: (osd ms, ip ms)}."""
    batch = "".join(f"link add bx{i}a type veth peer bx{i}b\n" for i in range(links // 2))
    run(["ip", "-n", client.name, "-batch", "-"], input=batch)
    figures = {}
    with daemon.client() as rpc:
        for what, params, ip_args in ((f"net.lease one of {links} links", {"interface": iface}, ["dev", iface]),
                                      (f"net.lease all {links} links", {}, [])):
            osd_ms, ip_ms = [], []
            for _ in range(5):
                started = time.perf_counter()
                rpc.call("net.lease", params)
                osd_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                client.exec("ip", "-j", "-6", "addr", "show", *ip_args)
                ip_ms.append((time.perf_counter() - started) * 1000)
            figures[what] = (statistics.median(osd_ms), statistics.median(ip_ms))
    return figures


if __name__ == "__main__":
    main()
