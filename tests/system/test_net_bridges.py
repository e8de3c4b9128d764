"""net.bridge.* against the kernel: checked with `ip -j -d link` and real traffic (ping)."""

from __future__ import annotations

from typing import Any

import pytest

from support.daemon import Daemon
from support.netlab import NetLab, Netns

pytestmark = pytest.mark.root


def link(ns: Netns, name: str) -> dict[str, Any] | None:
    found = [entry for entry in ns.ip_json("-d", "link", "show") if entry["ifname"] == name]
    return found[0] if found else None


def pings(client: Netns, address: str) -> bool:
    """One echo request, one second for its reply: enough to show a path is cut."""
    return client.exec("ping", "-c", "1", "-W", "1", address, check=False).returncode == 0


def reaches(client: Netns, address: str) -> bool:
    """Echo requests every 0.2 s until one is answered, for up to 5 s. A check right after
    `pings` failed needs the slack: the client's ARP entry is still INCOMPLETE, and the
    queued request leaves only with the next solicitation, up to a second later."""
    return client.exec("ping", "-c", "1", "-i", "0.2", "-w", "5", address, check=False).returncode == 0


def test_connect_and_ports_carry_traffic_between_namespaces(lab: NetLab, ns: Netns, daemon: Daemon) -> None:
    one, two = lab.netns("nc1"), lab.netns("nc2")
    lab.veth(one, "c1", ns, "c1-port")
    lab.veth(two, "c2", ns, "c2-port")
    one.ip("addr", "add", "192.0.2.1/24", "dev", "c1")
    two.ip("addr", "add", "192.0.2.2/24", "dev", "c2")
    for bridge in ("br-a", "br-b"):
        assert daemon.call("net.bridge.add", {"name": bridge}) == {"changed": True, "name": bridge}
    assert daemon.call("net.bridge.add_port", {"bridge": "br-a", "interface": "c1-port"}) == {"changed": True}
    assert daemon.call("net.bridge.add_port", {"bridge": "br-b", "interface": "c2-port"}) == {"changed": True}
    assert daemon.call("net.bridge.add_port", {"bridge": "br-b", "interface": "c2-port"}) == {"changed": False}
    assert not pings(one, "192.0.2.2")

    connected = daemon.call("net.bridge.connect", {"bridge_a": "br-a", "bridge_b": "br-b"})
    assert connected["changed"] is True
    veth_a, veth_b = connected["veth_a"], connected["veth_b"]
    end_a, end_b = link(ns, veth_a), link(ns, veth_b)
    assert end_a["master"] == "br-a" and end_b["master"] == "br-b"
    assert end_a["link"] == veth_b and "UP" in end_a["flags"] and "UP" in end_b["flags"]
    assert reaches(one, "192.0.2.2")
    assert daemon.call("net.bridge.connect", {"bridge_a": "br-a", "bridge_b": "br-b"}) == \
        {"changed": False, "veth_a": veth_a, "veth_b": veth_b}
    assert daemon.call("net.bridge.connect", {"bridge_a": "br-b", "bridge_b": "br-a"}) == \
        {"changed": False, "veth_a": veth_b, "veth_b": veth_a}

    assert daemon.call("net.bridge.remove_port", {"bridge": "br-b", "interface": "c2-port"}) == {"changed": True}
    assert "master" not in link(ns, "c2-port")
    assert not pings(one, "192.0.2.2")
    assert daemon.call("net.bridge.remove_port", {"bridge": "br-b", "interface": "c2-port"}) == {"changed": False}
    assert daemon.call("net.bridge.add_port", {"bridge": "br-b", "interface": "c2-port"}) == {"changed": True}
    assert reaches(one, "192.0.2.2")
    listed = {b["name"]: b for b in daemon.call("net.bridge")}
    assert sorted(listed["br-a"]["ports"]) == sorted(["c1-port", veth_a])
    assert sorted(listed["br-b"]["ports"]) == sorted(["c2-port", veth_b])


def test_add_records_settings_and_is_idempotent(ns: Netns, daemon: Daemon) -> None:
    assert daemon.call("net.bridge.add", {"name": "br-s", "stp": True, "mtu": 9000}) == \
        {"changed": True, "name": "br-s"}
    made = link(ns, "br-s")
    assert made["linkinfo"]["info_data"]["stp_state"] == 1 and made["mtu"] == 9000 and "UP" in made["flags"]
    # the MTU was set by the user, so a port with a smaller MTU does not lower it
    ns.ip("link", "add", "pt-s", "type", "veth", "peer", "pt-t")
    assert daemon.call("net.bridge.add_port", {"bridge": "br-s", "interface": "pt-s"}) == {"changed": True}
    assert link(ns, "br-s")["mtu"] == 9000
    for same in ({"name": "br-s"}, {"name": "br-s", "stp": True}, {"name": "br-s", "mtu": 9000, "vlan_filtering": False}):
        assert daemon.call("net.bridge.add", same) == {"changed": False, "name": "br-s"}
    err = daemon.error("net.bridge.add", {"name": "br-s", "stp": False})
    assert err.code == -32005 and err.data["kind"] == "bridge"
    assert daemon.error("net.bridge.add", {"name": "pt-s"}).code == -32005
    ns.ip("link", "add", "br-x", "type", "bridge")  # not made by osd
    assert daemon.call("net.bridge.add", {"name": "br-x"}) == {"changed": False, "name": "br-x"}
    listed = {b["name"]: b for b in daemon.call("net.bridge")}
    assert listed["br-s"] == {"name": "br-s", "ports": ["pt-s"], "stp": True, "vlan_filtering": False,
                              "mtu": 9000, "managed": True}
    assert listed["br-x"]["managed"] is False
    assert daemon.call("net.bridge", {"name": "br-x"}) == [listed["br-x"]]
    assert daemon.error("net.bridge", {"name": "pt-s"}).code == -32004


def test_vlan_filtering_answers_as_the_kernel_does(lab: NetLab, ns: Netns, daemon: Daemon) -> None:
    probe = lab.netns("nprobe")
    supported = probe.ip("link", "add", "probe", "type", "bridge", "vlan_filtering", "1", check=False).returncode == 0
    if supported:
        assert daemon.call("net.bridge.add", {"name": "br-v", "vlan_filtering": True})["changed"] is True
        assert link(ns, "br-v")["linkinfo"]["info_data"]["vlan_filtering"] == 1
        return
    err = daemon.error("net.bridge.add", {"name": "br-v", "vlan_filtering": True})
    assert err.code == -32010 and "EOPNOTSUPP" in err.data["reason"] and "VLAN filtering" in err.data["reason"]
    assert link(ns, "br-v") is None
    assert daemon.call("net.bridge") == []


def test_delete(ns: Netns, daemon: Daemon) -> None:
    daemon.call("net.bridge.add", {"name": "br-d"})
    assert daemon.call("net.bridge.delete", {"name": "br-d"}) == {"changed": True}
    assert link(ns, "br-d") is None
    assert daemon.call("net.bridge.delete", {"name": "br-d"}) == {"changed": False}
    ns.ip("link", "add", "vd-a", "type", "veth", "peer", "vd-b")
    err = daemon.error("net.bridge.delete", {"name": "vd-a"})
    assert err.code == -32005 and link(ns, "vd-a") is not None
    daemon.call("net.bridge.add", {"name": "br-t"})
    daemon.call("net.vm.create_tap", {"name": "tp-d", "bridge": "br-t"})
    err = daemon.error("net.bridge.delete", {"name": "br-t"})
    assert err.code == -32005 and "tp-d" in err.data["reason"] and link(ns, "br-t") is not None


def test_port_errors(ns: Netns, daemon: Daemon) -> None:
    daemon.call("net.bridge.add", {"name": "br-p"})
    daemon.call("net.bridge.add", {"name": "br-q"})
    ns.ip("link", "add", "pe-a", "type", "veth", "peer", "pe-b")
    err = daemon.error("net.bridge.add_port", {"bridge": "br-none", "interface": "pe-a"})
    assert err.code == -32004 and err.data == {"kind": "bridge", "name": "br-none"}
    err = daemon.error("net.bridge.add_port", {"bridge": "pe-b", "interface": "pe-a"})
    assert err.code == -32004 and err.data["kind"] == "bridge"
    err = daemon.error("net.bridge.add_port", {"bridge": "br-p", "interface": "pe-none"})
    assert err.code == -32004 and err.data == {"kind": "interface", "name": "pe-none"}
    daemon.call("net.bridge.add_port", {"bridge": "br-p", "interface": "pe-a"})
    err = daemon.error("net.bridge.add_port", {"bridge": "br-q", "interface": "pe-a"})
    assert err.code == -32005 and "br-p" in err.data["reason"] and link(ns, "pe-a")["master"] == "br-p"
    assert daemon.call("net.bridge.remove_port", {"bridge": "br-q", "interface": "pe-a"}) == {"changed": False}
    assert link(ns, "pe-a")["master"] == "br-p"
    assert daemon.error("net.bridge.remove_port", {"bridge": "br-q", "interface": "pe-none"}).code == -32004
    err = daemon.error("net.bridge.connect", {"bridge_a": "br-p", "bridge_b": "br-p"})
    assert err.code == -32602
    assert daemon.error("net.bridge.connect", {"bridge_a": "br-p", "bridge_b": "br-none"}).code == -32004
    assert daemon.error("net.bridge.add", {"name": "bad/name"}).code == -32602
    assert daemon.error("net.bridge.add", {"name": "br-m", "mtu": 20}).code == -32602

