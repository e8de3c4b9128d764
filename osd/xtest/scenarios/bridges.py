"""Bridges, their ports, bridge-to-bridge links, VLANs and VM taps: create, read back, undo.

Every write is followed by the read that shows its effect (net.bridge, net.interfaces,
net.vm.list, net.vlan), repeated to show it is idempotent (changed: false), and undone;
deleting what is gone must report changed: false and a gone name must be -32004.
"""

from __future__ import annotations

from typing import Any

from ..engine import Scenarios, Trial

scenario = Scenarios()
NOT_FOUND, CONFLICT = -32004, -32005


async def _bridge(t: Trial, name: str) -> dict[str, Any] | None:
    """net.bridge's entry for ``name``, or None when it is not listed."""
    listed = await t.call("net.bridge", {"name": name})
    return next((b for b in listed if b.get("name") == name), None)


async def _master(t: Trial, interface: str) -> Any:
    listed = await t.call("net.interfaces", {"name": interface})
    return listed[0].get("master") if listed else "(not listed)"


@scenario("bridge lifecycle", methods=("net.bridge.add", "net.bridge.add_port", "net.bridge.remove_port",
                                       "net.bridge.connect", "net.bridge.delete"))
async def bridge_lifecycle(t: Trial) -> None:
    add, delete = "net.bridge.add", "net.bridge.delete"
    a, b = t.name("ba"), t.name("bb")
    spec = {"name": a, "stp": False, "mtu": 1400}
    t.expect_changed(add, await t.call(add, spec, undo=(delete, {"name": a})), True, f"creating {a}")
    entry = await _bridge(t, a)
    if t.expect(add, entry is not None, f"net.bridge lists {a} after net.bridge.add"):
        t.expect(add, (entry.get("mtu"), entry.get("stp")) == (1400, False),
                 f"{a} has mtu 1400 and stp off (got mtu {entry.get('mtu')}, stp {entry.get('stp')})")
    t.expect_changed(add, await t.call(add, spec), False, f"creating {a} again identically")
    await t.call(add, {**spec, "mtu": 1500}, expect_error=CONFLICT)

    # a port: one end of a veth pair the lab makes
    port, peer = t.name("pa"), t.name("pb")
    await t.lab.veth(port, peer)
    add_port, remove_port = "net.bridge.add_port", "net.bridge.remove_port"
    t.expect_changed(add_port, await t.call(add_port, {"bridge": a, "interface": port},
                                            undo=(remove_port, {"bridge": a, "interface": port})), True,
                     f"adding {port}")
    entry = await _bridge(t, a)
    t.expect(add_port, entry is not None and port in entry.get("ports", []), f"net.bridge shows {port} as a port of {a}")
    t.expect(add_port, await _master(t, port) == a, f"net.interfaces shows {a} as the master of {port}")
    t.expect_changed(add_port, await t.call(add_port, {"bridge": a, "interface": port}), False, "adding it again")
    await t.call(add_port, {"bridge": a, "interface": t.name("none")}, expect_error=NOT_FOUND)
    t.expect_changed(remove_port, await t.call(remove_port, {"bridge": a, "interface": port}), True,
                     f"removing {port}")
    entry = await _bridge(t, a)
    t.expect(remove_port, entry is not None and port not in entry.get("ports", []),
             f"net.bridge no longer shows {port} as a port of {a}")
    t.expect(remove_port, await _master(t, port) is None, f"{port} has no master after remove_port")
    t.expect_changed(remove_port, await t.call(remove_port, {"bridge": a, "interface": port}), False,
                     "removing it again")

    # two bridges joined by a veth pair of the daemon's
    await t.call(add, {"name": b}, undo=(delete, {"name": b}))
    connect = "net.bridge.connect"
    joined = await t.call(connect, {"bridge_a": a, "bridge_b": b})
    t.expect_changed(connect, joined, True, f"connecting {a} and {b}")
    ends = joined.get("veth_a"), joined.get("veth_b")
    entry_a, entry_b = await _bridge(t, a), await _bridge(t, b)
    t.expect(connect, entry_a is not None and ends[0] in entry_a.get("ports", []),
             f"{a} has the veth end {ends[0]} as a port")
    t.expect(connect, entry_b is not None and ends[1] in entry_b.get("ports", []),
             f"{b} has the veth end {ends[1]} as a port")
    t.expect_changed(connect, await t.call(connect, {"bridge_a": a, "bridge_b": b}), False, "connecting them again")

    for name in (b, a):
        t.expect_changed(delete, await t.call(delete, {"name": name}), True, f"deleting {name}")
        await t.call("net.bridge", {"name": name}, expect_error=NOT_FOUND)
        t.expect_changed(delete, await t.call(delete, {"name": name}), False, f"deleting {name} again")


@scenario("VLANs", methods=("net.vlan",), cases=("net.bridge.add:vlan_filtering",))
async def vlans(t: Trial) -> None:
    """An 802.1q link (made by the lab where the kernel can) and a VLAN-filtering bridge."""
    parent, peer, link = t.name("va"), t.name("vb"), t.name("v42")
    await t.lab.veth(parent, peer)
    has_vlan = await t.lab.vlan(parent, link, 42)
    shown = await t.call("net.vlan", optional=True)
    if shown is not None and has_vlan:
        entry = next((v for v in shown.get("links", []) if v.get("name") == link), None)
        t.expect("net.vlan", entry is not None and (entry.get("parent"), entry.get("id")) == (parent, 42),
                 f"net.vlan lists {link} on {parent} with id 42 (got {entry})")
    bridge = t.name("bv")
    made = await t.call("net.bridge.add", {"name": bridge, "vlan_filtering": True}, case="vlan_filtering",
                        optional=True, undo=("net.bridge.delete", {"name": bridge}))
    if made is None:
        return
    entry = await _bridge(t, bridge)
    t.expect("net.bridge.add", entry is not None and entry.get("vlan_filtering") is True,
             f"net.bridge shows vlan_filtering on for {bridge}")
    if shown is not None:
        tables = (await t.call("net.vlan")).get("bridges", [])
        t.expect("net.vlan", any(x.get("bridge") == bridge for x in tables),
                 f"net.vlan lists the VLAN table of {bridge}")
    await t.call("net.bridge.delete", {"name": bridge})


@scenario("VM taps", methods=("net.vm.create_tap", "net.vm.delete_tap"))
async def taps(t: Trial) -> None:
    create, delete = "net.vm.create_tap", "net.vm.delete_tap"
    bridge, tap = t.name("tb"), t.name("tp")
    mac = "02:00:5e:" + ":".join(t.name("")[-4:][i:i + 2] for i in (0, 2)) + ":01"
    await t.call("net.bridge.add", {"name": bridge}, undo=("net.bridge.delete", {"name": bridge}))
    spec = {"name": tap, "bridge": bridge, "mac": mac, "mtu": 1400}
    t.expect_changed(create, await t.call(create, spec, undo=(delete, {"name": tap})), True, f"creating {tap}")
    listed = next((x for x in await t.call("net.vm.list") if x.get("name") == tap), None)
    if t.expect(create, listed is not None, f"net.vm.list lists {tap}"):
        t.expect(create, (listed.get("bridge"), str(listed.get("mac")).lower(), listed.get("present")) ==
                 (bridge, mac, True), f"{tap} is on {bridge} with mac {mac} and present (got {listed})")
    t.expect(create, await _master(t, tap) == bridge, f"net.interfaces shows {bridge} as the master of {tap}")
    t.expect_changed(create, await t.call(create, spec), False, f"creating {tap} again identically")
    verify = await t.call("net.verify")
    t.expect(create, not [d for d in verify.get("drift", []) if d.get("name") == tap],
             f"net.verify reports no drift for {tap} right after creating it")

    # Drift: the tap disappears behind the daemon's back.
    await t.lab.delete_link(tap)
    verify = await t.call("net.verify")
    t.expect("net.verify", any(d.get("name") == tap for d in verify.get("drift", [])) and not verify.get("ok"),
             f"net.verify reports drift once {tap} was deleted behind the daemon's back")

    await t.call(delete, {"name": tap})  # recorded but gone from the kernel: either changed value is defensible
    t.expect(delete, all(x.get("name") != tap for x in await t.call("net.vm.list")),
             f"net.vm.list no longer lists {tap}")
    t.expect_changed(delete, await t.call(delete, {"name": tap}), False, f"deleting {tap} again")
    await t.call("net.bridge.delete", {"name": bridge})
