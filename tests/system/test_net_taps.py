"""net.vm.* taps and the state of managed bridges and taps: drift, kill -9, restart, re-creation."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from support.daemon import REAL_DAEMON, Daemon, DaemonFailed
from support.netlab import NetLab, Netns

pytestmark = pytest.mark.root

TAP = {"name": "tp-vm1", "bridge": "br-vm", "mac": "02:00:5E:10:00:01", "mtu": 1400, "owner_uid": 4321,
       "multi_queue": True}


@pytest.fixture
def ns() -> Iterator[Netns]:
    with NetLab() as lab:
        yield lab.netns("ntap")


@pytest.fixture
def workdir() -> Iterator[str]:
    """A daemon work directory (socket, state) that outlives one daemon process."""
    path = tempfile.mkdtemp(prefix="osd-t-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(ns: Netns, workdir: str) -> Iterator[Daemon]:
    with Daemon(REAL_DAEMON, netns=ns.name, workdir=workdir) as d:
        yield d


def link(ns: Netns, name: str) -> dict[str, Any] | None:
    found = [entry for entry in ns.ip_json("-d", "link", "show") if entry["ifname"] == name]
    return found[0] if found else None


def assert_tap_as_asked(ns: Netns, tap: dict[str, Any]) -> None:
    got = link(ns, tap["name"])
    assert got is not None, f"{tap['name']} is missing"
    assert got["linkinfo"]["info_kind"] == "tun"
    data = got["linkinfo"]["info_data"]
    assert (data["type"], data["pi"], data["persist"], data["multi_queue"]) == ("tap", False, True,
                                                                               tap["multi_queue"])
    assert data["user"] == tap["owner_uid"]
    assert got["master"] == tap["bridge"] and got["address"] == tap["mac"].lower() and got["mtu"] == tap["mtu"]
    assert "UP" in got["flags"]


def test_create_tap_is_a_persistent_port_of_its_bridge(ns: Netns, daemon: Daemon) -> None:
    daemon.call("net.bridge.add", {"name": "br-vm"})
    assert daemon.call("net.vm.create_tap", TAP) == {"changed": True, "name": "tp-vm1", "mac": "02:00:5e:10:00:01"}
    assert_tap_as_asked(ns, TAP)
    assert daemon.call("net.vm.create_tap", TAP) == {"changed": False, "name": "tp-vm1", "mac": "02:00:5e:10:00:01"}
    assert daemon.call("net.vm.create_tap", {"name": "tp-vm1", "bridge": "br-vm", "owner_uid": 4321,
                                             "multi_queue": True})["changed"] is False
    for other in ({"owner_uid": 1}, {"mtu": 1500}, {"multi_queue": False}, {"mac": "02:00:5e:10:00:02"}):
        err = daemon.error("net.vm.create_tap", {**TAP, **other})
        assert err.code == -32005 and err.data["kind"] == "tap", other
    assert_tap_as_asked(ns, TAP)
    assert daemon.call("net.vm.list") == [{"name": "tp-vm1", "bridge": "br-vm", "mac": "02:00:5e:10:00:01",
                                           "mtu": 1400, "owner_uid": 4321, "multi_queue": True,
                                           "state": link(ns, "tp-vm1")["operstate"].lower(), "present": True}]
    # a tap without mac/mtu/owner gets the kernel's MAC, which is what it reports
    plain = daemon.call("net.vm.create_tap", {"name": "tp-vm2", "bridge": "br-vm"})
    got = link(ns, "tp-vm2")
    assert plain["mac"] == got["address"] and "user" not in got["linkinfo"]["info_data"]
    assert got["linkinfo"]["info_data"]["multi_queue"] is False and got["master"] == "br-vm"
    assert daemon.call("net.verify") == {"ok": True, "drift": []}


def test_create_tap_errors(ns: Netns, daemon: Daemon) -> None:
    err = daemon.error("net.vm.create_tap", {"name": "tp-x", "bridge": "br-none"})
    assert err.code == -32004 and err.data == {"kind": "bridge", "name": "br-none"} and link(ns, "tp-x") is None
    daemon.call("net.bridge.add", {"name": "br-vm"})
    ns.ip("link", "add", "tp-v", "type", "veth", "peer", "tp-w")
    assert daemon.error("net.vm.create_tap", {"name": "tp-v", "bridge": "br-vm"}).code == -32005
    ns.ip("tuntap", "add", "dev", "tp-f", "mode", "tap")  # a tap osd did not make
    err = daemon.error("net.vm.create_tap", {"name": "tp-f", "bridge": "br-vm"})
    assert err.code == -32005 and "did not create" in err.data["reason"]
    err = daemon.error("net.vm.delete_tap", {"name": "tp-f"})
    assert err.code == -32005 and link(ns, "tp-f") is not None
    for bad in ({"mac": "zz:00:00:00:00:00"}, {"mtu": 10}, {"owner_uid": -1}, {"name": "x" * 16},
                {"mac": "01:00:5e:00:00:01"}, {"mac": "00:00:00:00:00:00"}):
        assert daemon.error("net.vm.create_tap", {**TAP, **bad}).code == -32602, bad
    assert link(ns, TAP["name"]) is None
    # the kernel refuses an MTU above the tap's maximum (65521) after the tap exists: it goes again
    err = daemon.error("net.vm.create_tap", {**TAP, "mtu": 65535})
    assert err.code == -32021 and err.data["errno"] == 22 and "set up tap" in err.data["op"]
    assert link(ns, TAP["name"]) is None and daemon.call("net.vm.list") == []
    # a managed tap stays on its bridge: remove_port and add_port elsewhere refuse
    daemon.call("net.vm.create_tap", TAP)
    daemon.call("net.bridge.add", {"name": "br-other"})
    assert daemon.error("net.bridge.remove_port", {"bridge": "br-vm", "interface": "tp-vm1"}).code == -32005
    assert daemon.error("net.bridge.add_port", {"bridge": "br-other", "interface": "tp-vm1"}).code == -32005
    assert link(ns, "tp-vm1")["master"] == "br-vm"


def test_delete_tap(ns: Netns, daemon: Daemon) -> None:
    daemon.call("net.bridge.add", {"name": "br-vm"})
    daemon.call("net.vm.create_tap", TAP)
    assert daemon.call("net.vm.delete_tap", {"name": "tp-vm1"}) == {"changed": True}
    assert link(ns, "tp-vm1") is None and daemon.call("net.vm.list") == []
    assert daemon.call("net.vm.delete_tap", {"name": "tp-vm1"}) == {"changed": False}


def test_drift_is_reported_and_a_restart_recreates_taps_and_bridges(ns: Netns, workdir: str,
                                                                    daemon: Daemon) -> None:
    daemon.call("net.bridge.add", {"name": "br-vm", "stp": True, "mtu": 1450})
    daemon.call("net.vm.create_tap", TAP)

    # behind the daemon's back: the tap goes, then the bridge (its other tap falls off it)
    ns.ip("link", "del", "tp-vm1")
    verify = daemon.call("net.verify")
    assert verify["ok"] is False
    assert verify["drift"] == [{"kind": "tap", "name": "tp-vm1", "expected": {
        "bridge": "br-vm", "mac": "02:00:5e:10:00:01", "mtu": 1400, "owner_uid": 4321, "multi_queue": True},
        "actual": None}]
    assert daemon.call("net.health")["status"] == "degraded"
    assert daemon.call("net.vm.list")[0]["present"] is False
    daemon.call("net.vm.create_tap", {**TAP, "name": "tp-vm2", "mac": "02:00:5e:10:00:02"})
    ns.ip("link", "del", "br-vm")
    drift = {(d["kind"], d["name"]): d for d in daemon.call("net.verify")["drift"]}
    assert drift[("bridge", "br-vm")]["actual"] is None
    assert drift[("tap", "tp-vm2")]["expected"] == {"bridge": "br-vm"}
    assert drift[("tap", "tp-vm2")]["actual"] == {"bridge": None}

    daemon.kill()  # kill -9: no clean shutdown
    with Daemon(REAL_DAEMON, netns=ns.name, workdir=workdir) as restarted:
        bridge = link(ns, "br-vm")
        assert bridge is not None and bridge["linkinfo"]["info_data"]["stp_state"] == 1 and bridge["mtu"] == 1450
        assert_tap_as_asked(ns, TAP)
        assert_tap_as_asked(ns, {**TAP, "name": "tp-vm2", "mac": "02:00:5e:10:00:02"})
        assert restarted.call("net.verify") == {"ok": True, "drift": []}
        assert "re-created tap tp-vm1" in restarted.log and "re-attached tap tp-vm2" in restarted.log


def test_changed_settings_are_drift_but_left_alone(ns: Netns, daemon: Daemon) -> None:
    daemon.call("net.bridge.add", {"name": "br-vm"})
    daemon.call("net.vm.create_tap", TAP)
    ns.ip("link", "set", "tp-vm1", "mtu", "1300")
    ns.ip("link", "set", "br-vm", "type", "bridge", "stp_state", "1")
    drift = {(d["kind"], d["name"]): d for d in daemon.call("net.verify")["drift"]}
    assert drift == {
        ("tap", "tp-vm1"): {"kind": "tap", "name": "tp-vm1", "expected": {"mtu": 1400}, "actual": {"mtu": 1300}},
        ("bridge", "br-vm"): {"kind": "bridge", "name": "br-vm", "expected": {"stp": False}, "actual": {"stp": True}},
    }


def test_unreadable_state_stops_start_up(ns: Netns, workdir: str) -> None:
    state = f"{workdir}/state"
    os.makedirs(state)
    with open(f"{state}/net-links.json", "w") as f:
        f.write("{not json")
    daemon = Daemon(REAL_DAEMON, netns=ns.name, workdir=workdir)
    with pytest.raises(DaemonFailed, match="exited"):
        daemon.start(timeout=20)
    assert "net-links.json" in daemon.log
