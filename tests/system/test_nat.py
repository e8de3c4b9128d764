"""DNAT and SNAT proven with traffic, and conntrack read and flushed, through the real daemon.

The daemon runs inside the router namespace of a RouterLab; the client of the API stays
outside. Effects are checked with curl from the client namespace, the peer address the
server saw, and ``nft``/``conntrack`` run in the router namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.daemon import REAL_DAEMON, Daemon
from support.netlab import NetLab
from support.routerlab import RouterLab

pytestmark = pytest.mark.root


@pytest.fixture
def lab() -> Iterator[RouterLab]:
    with NetLab() as netlab:
        yield RouterLab(netlab)


@pytest.fixture
def daemon(lab: RouterLab, tmp_path: Path) -> Iterator[Daemon]:
    """uid 0 is admin; user nobody may write (and reaches the socket through group nogroup)."""
    acl = tmp_path / "acl.toml"
    acl.write_text("""
[[group]]
name = "admins"
users = ["uid:0"]
[[group]]
name = "writers"
users = ["user:nobody"]
[[ace]]
right = "admin"
groups = ["admins"]
[[ace]]
right = "write"
groups = ["writers"]
""")
    acl.chmod(0o600)
    config = tmp_path / "osd.toml"
    config.write_text('[server]\ngroup = "nogroup"\n')
    with Daemon(REAL_DAEMON, args=["--acl", str(acl), "--config", str(config)], netns=lab.router.name) as d:
        os.chmod(d.workdir, 0o755)
        yield d


def call_as_nobody(daemon: Daemon, method: str) -> subprocess.CompletedProcess[str]:
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            sys.executable, "-B", "-m", "osd", "call", "--socket", daemon.socket, method]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def conntrack_lines(lab: RouterLab) -> list[str]:
    return [line for line in lab.router.exec("conntrack", "-L").stdout.splitlines() if line.strip()]


def test_dnat_and_masquerade_ipv4_and_ipv6(lab: RouterLab, daemon: Daemon) -> None:
    lab.serve(lab.server, lab.SERVER4, 80)
    lab.serve(lab.server, lab.SERVER6, 80)
    assert lab.get(lab.ROUTER_C4, 8080, timeout=1) is None  # nothing forwards yet

    dnat4 = daemon.call("net.nat.add_dnat", {"proto": "tcp", "external_port": 8080,
                                             "internal_address": lab.SERVER4, "internal_port": 80})
    dnat6 = daemon.call("net.nat.add_dnat", {"proto": "tcp", "external_port": 8080, "family": "inet6",
                                             "internal_address": lab.SERVER6, "internal_port": 80})
    # DNAT alone: the server has no route back to the client, so the connection cannot complete.
    assert lab.get(lab.ROUTER_C4, 8080, timeout=1) is None
    snat4 = daemon.call("net.nat.add_snat", {"source": "192.0.2.0/24", "out_interface": lab.router_s})
    snat6 = daemon.call("net.nat.add_snat", {"source": "2001:db8:1::/64", "out_interface": lab.router_s})
    assert all(r["changed"] for r in (dnat4, dnat6, snat4, snat6))

    # The server answers with the peer it saw: the router's address, so masquerade worked.
    assert lab.get(lab.ROUTER_C4, 8080) == lab.ROUTER_S4
    assert lab.get(lab.ROUTER_C6, 8080) == lab.ROUTER_S6

    status = daemon.call("net.nat.status")
    assert status["ipv4_forward"] and status["ipv6_forward"] and status["table_present"]
    assert {e["id"] for e in status["dnat"]} == {dnat4["id"], dnat6["id"]}
    assert all(e["present"] for e in status["dnat"] + status["snat"])
    dnat6_entry = next(e for e in status["dnat"] if e["id"] == dnat6["id"])
    assert dnat6_entry["internal_address"] == lab.SERVER6 and dnat6_entry["family"] == "inet6"

    # Removing masquerade breaks the path again (no route back); removing DNAT too.
    assert daemon.call("net.nat.remove_snat", {"id": snat4["id"]}) == {"changed": True}
    assert lab.get(lab.ROUTER_C4, 8080, timeout=1) is None
    assert lab.get(lab.ROUTER_C6, 8080) == lab.ROUTER_S6
    assert daemon.call("net.nat.remove_dnat", {"id": dnat6["id"]}) == {"changed": True}
    assert lab.get(lab.ROUTER_C6, 8080, timeout=1) is None
    comments = {r["rule"].get("comment") for r in json.loads(lab.router.exec("nft", "-j", "list", "table", "inet",
                                                                             "osd").stdout)["nftables"] if "rule" in r}
    assert comments == {dnat4["id"], snat6["id"]}
    assert daemon.call("net.verify") == {"ok": True, "drift": []}


def test_dnat_from_the_router_itself_uses_the_output_chain(lab: RouterLab, daemon: Daemon) -> None:
    lab.serve(lab.server, lab.SERVER4, 80)
    daemon.call("net.nat.add_dnat", {"proto": "tcp", "external_port": 8080, "internal_address": lab.SERVER4,
                                     "internal_port": 80})
    # The router's connection to its own address keeps that address as source: masquerade it,
    # the server has no route back to 192.0.2.0/24.
    daemon.call("net.nat.add_snat", {"source": "192.0.2.0/24", "out_interface": lab.router_s})
    # From the router itself to its own address: the output chain's copy of the rule applies.
    done = lab.router.exec("curl", "--noproxy", "*", "-sS", "-m", "3", f"http://{lab.ROUTER_C4}:8080/")
    assert done.stdout == lab.ROUTER_S4  # the router's own address towards the server


def test_conntrack_lists_the_nat_flow_and_flush_needs_admin(lab: RouterLab, daemon: Daemon) -> None:
    lab.serve(lab.server, lab.SERVER4, 80)
    daemon.call("net.nat.add_dnat", {"proto": "tcp", "external_port": 8080, "internal_address": lab.SERVER4,
                                     "internal_port": 80})
    daemon.call("net.nat.add_snat", {"source": "192.0.2.0/24", "out_interface": lab.router_s})
    assert lab.get(lab.ROUTER_C4, 8080) == lab.ROUTER_S4

    flows = [e for e in daemon.call("net.conntrack") if e["proto"] == "tcp" and e["dport"] == 8080]
    assert len(flows) == 1, flows
    flow = flows[0]
    assert (flow["src"], flow["dst"], flow["family"], flow["zone"]) == (lab.CLIENT4, lab.ROUTER_C4, "inet", 0)
    # The reply tuple shows both translations: from the server, to the masquerading router.
    assert flow["reply"] == {"src": lab.SERVER4, "dst": lab.ROUTER_S4, "sport": 80, "dport": flow["sport"]}
    assert {"SRC_NAT", "DST_NAT", "SEEN_REPLY"} <= set(flow["status"]) and flow["state"] is not None
    # The same flow, seen independently.
    assert any(f"src={lab.CLIENT4} dst={lab.ROUTER_C4}" in line and "dport=8080" in line
               and f"src={lab.SERVER4} dst={lab.ROUTER_S4} sport=80" in line for line in conntrack_lines(lab))

    lab.router.exec("ping", "-c1", "-W2", lab.SERVER6)  # a second flow, for the limit
    assert len(daemon.call("net.conntrack")) >= 2 and len(daemon.call("net.conntrack", {"limit": 1})) == 1
    assert daemon.call("net.conntrack", {"zone": 7}) == []
    stats = daemon.call("net.conntrack.stats")
    assert stats["count"] >= 1 and stats["max"] > 0 and len(stats["cpus"]) == os.cpu_count()

    refused = call_as_nobody(daemon, "net.conntrack.flush")
    assert refused.returncode == 1 and "error -32002" in refused.stderr, refused.stderr
    assert '"required": "admin", "granted": "write"' in refused.stderr
    assert conntrack_lines(lab)  # the refused call changed nothing

    assert daemon.call("net.conntrack.flush", {"zone": 7}) == {"changed": False, "flushed": 0}
    assert conntrack_lines(lab)
    flushed = daemon.call("net.conntrack.flush")
    assert flushed["changed"] and flushed["flushed"] >= 1
    assert conntrack_lines(lab) == []
    assert daemon.call("net.conntrack") == []


def test_conntrack_flush_of_one_zone_leaves_the_others(lab: RouterLab, daemon: Daemon) -> None:
    # Pings from the router to the server's IPv4 address land in zone 3, to its IPv6 one in zone 0.
    lab.router.exec("nft", "add", "table", "inet", "zt")
    lab.router.exec("nft", "add", "chain", "inet", "zt", "out", "{ type filter hook output priority raw; }")
    lab.router.exec("nft", "add", "rule", "inet", "zt", "out", "ip", "daddr", lab.SERVER4, "ct", "zone", "set", "3")
    lab.router.exec("ping", "-c1", "-W2", lab.SERVER4)
    lab.router.exec("ping", "-c1", "-W2", lab.SERVER6)
    zones = {e["zone"] for e in daemon.call("net.conntrack")}
    assert zones == {0, 3}
    assert [e["zone"] for e in daemon.call("net.conntrack", {"zone": 3})] == [3]
    assert daemon.call("net.conntrack.flush", {"zone": 3}) == {"changed": True, "flushed": 1}
    assert [e["zone"] for e in daemon.call("net.conntrack")] == [0]
    assert len(conntrack_lines(lab)) == 1
