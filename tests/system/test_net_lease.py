"""net.lease, net.lease.restart, net.prefix against dnsmasq in a namespace, with the real daemon.

Topology: a server namespace (192.0.2.1/24, 2001:db8:1::1/64, dnsmasq) joined by a veth
pair to a client namespace in which the daemon runs. Effects are checked with ``ip -j``
in the client namespace and dnsmasq's own lease file and log.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from osd.client import RpcError
from support.daemon import REAL_DAEMON, Daemon
from support.dhcplab import Dnsmasq, Responder
from support.netlab import NetLab, Netns, run, short_name

pytestmark = pytest.mark.root

TIMEOUT_S = 2.0  # [net] dhcp_timeout_s of the daemons under test


@dataclasses.dataclass
class Lab:
    server: Netns
    client: Netns
    s_if: str
    c_if: str
    workdir: Path
    daemons: list[Daemon]

    def daemon(self, workdir: Path | None = None) -> Daemon:
        config = self.workdir / "osd.toml"
        config.write_text(f"[net]\ndhcp_timeout_s = {TIMEOUT_S}\n")
        d = Daemon(REAL_DAEMON, ["--config", str(config)], netns=self.client.name,
                   workdir=str(workdir) if workdir else None)
        self.daemons.append(d)
        return d.start()

    def addresses(self, family: str = "inet") -> list[dict[str, Any]]:
        links = self.client.ip_json("-f", family, "addr", "show", "dev", self.c_if)
        return [a for link in links for a in link.get("addr_info", []) if a.get("scope") == "global"]

    def default_routes(self) -> list[dict[str, Any]]:
        return [r for r in self.client.ip_json("-4", "route", "show", "default")]

    def mac(self) -> str:
        return self.client.ip_json("link", "show", "dev", self.c_if)[0]["address"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with NetLab() as netlab:
        server, client = netlab.netns("dsrv"), netlab.netns("dcli")
        s_if, c_if = short_name("ds"), short_name("dc")
        netlab.veth(server, s_if, client, c_if)
        server.ip("addr", "add", "192.0.2.1/24", "dev", s_if)
        server.ip("addr", "add", "2001:db8:1::1/64", "dev", s_if, "nodad")
        lab = Lab(server, client, s_if, c_if, tmp_path, [])
        try:
            yield lab
        finally:
            for d in lab.daemons:
                d.cleanup()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def dhcp4(d: Daemon, iface: str) -> dict[str, Any]:
    (row,) = d.call("net.lease", {"interface": iface})
    return row["dhcp4"]


def test_restart_leases_applies_and_renews(lab: Lab) -> None:
    dnsmasq = Dnsmasq(lab.server, lab.s_if, lab.workdir, t1=2, t2=4)
    try:
        d = lab.daemon()
        started = time.monotonic()
        first = d.call("net.lease.restart", {"interface": lab.c_if})
        took = time.monotonic() - started
        assert first["changed"] is True and first["interface"] == lab.c_if
        assert first["router"] == "192.0.2.1" and first["server"] == "192.0.2.1" and first["lease_s"] == 120
        assert first["prefixlen"] == 24 and first["address"].startswith("192.0.2.")
        print(f"lease.restart (DORA + apply) took {took * 1000:.0f} ms")

        # The kernel, seen by ip: the address with the lease's lifetime, the default route.
        (addr,) = lab.addresses()
        assert (addr["local"], addr["prefixlen"]) == (first["address"], 24)
        assert 100 <= addr["valid_life_time"] <= 120
        (route,) = lab.default_routes()
        assert (route["gateway"], route["dev"], route["protocol"]) == ("192.0.2.1", lab.c_if, "dhcp")
        # dnsmasq granted it to this interface's MAC.
        assert [(lease[1], lease[2]) for lease in dnsmasq.leases()] == [(lab.mac(), first["address"])]

        row = dhcp4(d, lab.c_if)
        assert row["state"] == "bound" and row["address"] == first["address"] and row["server"] == "192.0.2.1"
        assert 0 < row["renew_in_s"] < row["rebind_in_s"] < row["expires_in_s"] <= 120

        # A second restart re-runs DORA and gets the same address: nothing to change.
        second = d.call("net.lease.restart", {"interface": lab.c_if})
        assert second["changed"] is False and second["address"] == first["address"]
        assert [a["local"] for a in lab.addresses()] == [first["address"]]
        assert len(lab.default_routes()) == 1

        # The daemon renews at T1 (2 s) by itself: a later ACK, a lifetime pushed back.
        obtained = dhcp4(d, lab.c_if)["obtained"]
        wait_until(lambda: dhcp4(d, lab.c_if)["obtained"] > obtained, 6, "a renewal at T1")
        assert dnsmasq.log.count("DHCPACK(") >= 3  # two DORAs, at least one renewal
        assert lab.addresses()[0]["valid_life_time"] >= 117

        health = d.call("net.health")
        check = next(c for c in health["checks"] if c["name"] == f"dhcp4 lease on {lab.c_if}")
        assert check["ok"] is True and first["address"] in check["detail"]
        assert d.call("net.verify") == {"ok": True, "drift": []}

        # Someone deletes the leased address: net.verify reports it.
        lab.client.ip("addr", "del", f"{first['address']}/24", "dev", lab.c_if)
        drift = d.call("net.verify")["drift"]
        default = [{"destination": "0.0.0.0/0", "gateway": "192.0.2.1"}]
        assert drift == [{"kind": "dhcp4-lease", "name": lab.c_if,
                          "expected": {"address": f"{first['address']}/24", "router": "192.0.2.1", "routes": default},
                          "actual": {"address": None, "router": None, "routes": []}}]
        # ... and the next renewal puts it back.
        wait_until(lab.addresses, 6, "the address restored by a renewal")
        assert d.call("net.verify")["ok"] is True
    finally:
        dnsmasq.stop()


def test_kill_and_restart_resumes_the_lease(lab: Lab) -> None:
    dnsmasq = Dnsmasq(lab.server, lab.s_if, lab.workdir, t1=2, t2=4)
    try:
        d1 = lab.daemon()
        leased = d1.call("net.lease.restart", {"interface": lab.c_if})["address"]
        state = json.loads((Path(d1.state_dir) / "dhcp4.json").read_text())
        assert state["data"]["interfaces"][lab.c_if]["lease"]["ack"]["yiaddr"] == leased
        d1.kill()  # kill -9: no chance to say anything to the server

        requests_before = dnsmasq.log.count("DHCPREQUEST")
        d2 = lab.daemon(workdir=d1.workdir)
        row = wait_until(lambda: (r := dhcp4(d2, lab.c_if)) and r.get("state") == "bound"
                         and r.get("obtained", 0) > state["data"]["interfaces"][lab.c_if]["lease"]["obtained"]
                         and r, 6, "the resumed client bound again")
        assert row["address"] == leased
        assert dnsmasq.log.count("DHCPREQUEST") > requests_before  # INIT-REBOOT asked for it again
        assert [a["local"] for a in lab.addresses()] == [leased]
        # ... and it keeps renewing.
        obtained = row["obtained"]
        wait_until(lambda: dhcp4(d2, lab.c_if)["obtained"] > obtained, 6, "a renewal after the restart")
    finally:
        dnsmasq.stop()


def test_no_server_times_out_and_changes_nothing(lab: Lab) -> None:
    # A static address on a down link, and nobody answering DHCP.
    lab.client.ip("addr", "add", "192.0.2.77/24", "dev", lab.c_if)
    lab.client.ip("link", "set", lab.c_if, "down")
    d = lab.daemon()
    started = time.monotonic()
    with pytest.raises(RpcError) as err:
        d.call("net.lease.restart", {"interface": lab.c_if})
    took = time.monotonic() - started
    assert err.value.code == -32030 and err.value.data == {"seconds": TIMEOUT_S}
    assert TIMEOUT_S <= took < TIMEOUT_S + 2.5  # the deadline, plus a call under load
    assert [(a["local"], a["prefixlen"]) for a in lab.addresses()] == [("192.0.2.77", 24)]
    assert "UP" not in lab.client.ip_json("link", "show", "dev", lab.c_if)[0]["flags"]
    assert lab.default_routes() == []
    assert dhcp4(d, lab.c_if) is None  # not managed: the failed restart left nothing behind


def test_failed_restart_keeps_the_old_lease(lab: Lab) -> None:
    dnsmasq = Dnsmasq(lab.server, lab.s_if, lab.workdir)
    d = lab.daemon()
    leased = d.call("net.lease.restart", {"interface": lab.c_if})["address"]
    dnsmasq.stop()
    with pytest.raises(RpcError) as err:
        d.call("net.lease.restart", {"interface": lab.c_if})
    assert err.value.code == -32030
    assert [a["local"] for a in lab.addresses()] == [leased]
    assert [r["gateway"] for r in lab.default_routes()] == ["192.0.2.1"]
    row = dhcp4(d, lab.c_if)
    assert row["state"] == "bound" and row["address"] == leased


def test_missing_interface_and_bad_input(lab: Lab) -> None:
    d = lab.daemon()
    for method in ("net.lease.restart", "net.lease"):
        with pytest.raises(RpcError) as err:
            d.call(method, {"interface": "osdt-nope0"})
        assert err.value.code == -32004 and err.value.data == {"kind": "interface", "name": "osdt-nope0"}
        with pytest.raises(RpcError) as err:
            d.call(method, {"interface": "a/b"})
        assert err.value.code == -32602
    with pytest.raises(RpcError) as err:
        d.call("net.lease.restart", {})
    assert err.value.code == -32602


def test_classless_static_routes_replace_the_router_option(lab: Lab) -> None:
    # option 121: a network via a router, a network on-link, and the default route via
    # another router than option 3's, which the client must then ignore (RFC 3442)
    dnsmasq = Dnsmasq(lab.server, lab.s_if, lab.workdir,
                      options=("121,198.51.100.0/24,192.0.2.1,203.0.113.0/24,0.0.0.0,0.0.0.0/0,192.0.2.254",))
    try:
        d = lab.daemon()
        lease = d.call("net.lease.restart", {"interface": lab.c_if})
        assert lease["router"] == "192.0.2.254"

        def dhcp_routes() -> list[tuple[str, str | None, str]]:
            return sorted((r["dst"], r.get("gateway"), r.get("scope", "global"))
                          for r in lab.client.ip_json("-4", "route", "show", "proto", "dhcp", "dev", lab.c_if))

        assert dhcp_routes() == [("198.51.100.0/24", "192.0.2.1", "global"), ("203.0.113.0/24", None, "link"),
                                 ("default", "192.0.2.254", "global")]
        routes = [{"destination": "198.51.100.0/24", "gateway": "192.0.2.1"},
                  {"destination": "203.0.113.0/24", "gateway": None},
                  {"destination": "0.0.0.0/0", "gateway": "192.0.2.254"}]
        assert dhcp4(d, lab.c_if)["routes"] == routes
        assert d.call("net.verify") == {"ok": True, "drift": []}

        lab.client.ip("route", "del", "198.51.100.0/24", "dev", lab.c_if, "proto", "dhcp")
        (drift,) = d.call("net.verify")["drift"]
        assert drift["expected"]["routes"] == routes and drift["actual"]["routes"] == routes[1:]
        assert drift["actual"]["router"] == "192.0.2.254"
        # A restart applies the lease again, the missing route included.
        assert d.call("net.lease.restart", {"interface": lab.c_if})["changed"] is True
        assert len(dhcp_routes()) == 3 and d.call("net.verify")["ok"] is True
    finally:
        dnsmasq.stop()


def test_expired_lease_removes_the_address(lab: Lab) -> None:
    responder = Responder(lab.server, lab.s_if, lab.workdir, address="192.0.2.70/24", router="192.0.2.1",
                          server="192.0.2.1", lease_s=6, t1=2, t2=4)
    d = lab.daemon()
    try:
        assert d.call("net.lease.restart", {"interface": lab.c_if})["lease_s"] == 6
    finally:
        responder.stop()  # from now on nobody answers the renewals
    assert [a["local"] for a in lab.addresses()] == ["192.0.2.70"]
    name = f"dhcp4 lease on {lab.c_if}"

    def check() -> dict[str, Any]:
        return next(c for c in d.call("net.health")["checks"] if c["name"] == name)

    wait_until(lambda: dhcp4(d, lab.c_if)["state"] == "rebinding", 6, "rebinding after T2")
    assert check()["ok"] is False and "did not answer" in check()["detail"]
    wait_until(lambda: not lab.addresses(), 5, "the address gone at expiry")
    assert lab.default_routes() == []
    # The service's expiry timer and pyroute2's client each act at the lease's end; the
    # address goes with the first, the client's state follows with its own timer.
    wait_until(lambda: (r := dhcp4(d, lab.c_if)) and "address" not in r and r["state"] in ("init", "selecting"),
               3, "the lease dropped and the client back to init or selecting")
    assert check()["ok"] is False and check()["detail"].startswith("no lease")
    assert "; address removed" in d.log
    assert d.call("net.verify")["ok"] is True  # nothing is expected while there is no lease


def test_slaac_addresses_and_router_advertisements(lab: Lab) -> None:
    lab.client.sysctl(f"net.ipv6.conf.{lab.c_if}.accept_ra", "1")
    dnsmasq = Dnsmasq(lab.server, lab.s_if, lab.workdir, dhcp4=False, ra=True)
    try:
        d = lab.daemon()
        wait_until(lambda: [a for a in lab.addresses("inet6") if not a.get("tentative")], 10,
                   "a SLAAC address")
        (kernel,) = lab.addresses("inet6")
        (row,) = d.call("net.lease", {"interface": lab.c_if})
        (slaac,) = row["slaac"]
        assert (slaac["address"], slaac["prefixlen"]) == (kernel["local"], 64)
        assert slaac["address"].startswith("2001:db8:1:0:")
        assert "mngtmpaddr" in slaac["flags"] and "dynamic" in slaac["flags"]
        assert abs(slaac["valid_s"] - kernel["valid_life_time"]) <= 2 and slaac["valid_s"] > 0
        assert abs(slaac["preferred_s"] - kernel["preferred_life_time"]) <= 2
        assert row["ra"]["received"] is True and row["ra"]["managed"] is False
        (router,) = row["ra"]["routers"]
        assert router["router"].startswith("fe80::") and router["expires_s"] > 0
        assert row["dhcp4"] is None and row["dhcp6"] is None and "no DHCPv6 client" in row["dhcp6_reason"]
        assert d.call("net.prefix") == []
    finally:
        dnsmasq.stop()


def test_link_down_and_up_keeps_the_lease_deleted_link_is_forgotten(lab: Lab) -> None:
    dnsmasq = Dnsmasq(lab.server, lab.s_if, lab.workdir)
    try:
        d = lab.daemon()
        leased = d.call("net.lease.restart", {"interface": lab.c_if})["address"]
        # Link down: the kernel drops the default route; once the link is back up the client
        # (restarted by its supervisor) asks for the lease again and restores the route.
        lab.client.ip("link", "set", lab.c_if, "down")
        assert lab.default_routes() == []
        time.sleep(0.5)
        lab.client.ip("link", "set", lab.c_if, "up")
        wait_until(lab.default_routes, 10, "the default route restored after link up")
        assert [a["local"] for a in lab.addresses()] == [leased]
        assert dhcp4(d, lab.c_if)["state"] == "bound"

        # Deleted: the lease went with the link, so the daemon forgets the interface.
        lab.client.ip("link", "del", lab.c_if)
        wait_until(lambda: lab.c_if not in json.loads((Path(d.state_dir) / "dhcp4.json").read_text())
                   ["data"]["interfaces"], 5, "the deleted interface forgotten")
        assert d.call("net.verify")["ok"] is True
        assert not [c for c in d.call("net.health")["checks"] if lab.c_if in c["name"]]
        assert "no longer managed" in d.log
        # A new link of that name is not managed until asked.
        run(["ip", "link", "add", lab.c_if, "netns", lab.client.name, "type", "veth",
             "peer", lab.s_if, "netns", lab.server.name])
        assert dhcp4(d, lab.c_if) is None
    finally:
        dnsmasq.stop()
