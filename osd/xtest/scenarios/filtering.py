"""The daemon's nftables table: input allow rules, DNAT and SNAT, and conntrack flushing.

Each add is read back by id (net.firewall, net.nat.status), repeated (same id, changed:
false), removed, and removed again (changed: false). Ports and addresses come from the
run tag and documentation ranges.
"""

from __future__ import annotations

from typing import Any

from ..engine import Scenarios, Trial

scenario = Scenarios()


def _port(t: Trial, offset: int) -> int:
    return 40000 + int(t.name("")[-4:], 16) % 20000 + offset


@scenario("firewall rules", methods=("net.firewall.add_rule", "net.firewall.remove_rule"))
async def firewall(t: Trial) -> None:
    add, remove = "net.firewall.add_rule", "net.firewall.remove_rule"
    specs = [{"port": _port(t, 0), "proto": "tcp", "source": "198.51.100.0/24", "comment": f"osd xtest {t.name('')}"},
             {"port": f"{_port(t, 1)}-{_port(t, 3)}", "proto": "udp", "family": "inet6"}]
    ids = []
    for spec in specs:
        added = await t.call(add, spec)
        if not t.expect(add, isinstance(added.get("id"), str), f"adding {spec} returns an id (got {added})"):
            return
        t.undo(remove, {"id": added["id"]})
        t.expect_changed(add, added, True, f"adding {spec}")
        ids.append(added["id"])
        again = await t.call(add, spec)
        t.expect_changed(add, again, False, "adding the same rule again")
        t.expect(add, again.get("id") == added["id"], f"the same rule keeps its id (got {again.get('id')})")
    rules = (await t.call("net.firewall")).get("rules", [])
    for rule_id in ids:
        t.expect(add, any(r.get("id") == rule_id and r.get("managed") for r in rules),
                 f"net.firewall shows the managed rule {rule_id}")
    for rule_id in ids:
        t.expect_changed(remove, await t.call(remove, {"id": rule_id}), True, f"removing {rule_id}")
    rules = (await t.call("net.firewall")).get("rules", [])
    t.expect(remove, not [r for r in rules if r.get("id") in ids], "net.firewall no longer shows the rules")
    t.expect_changed(remove, await t.call(remove, {"id": ids[0]}), False, "removing a rule again")


@scenario("NAT", methods=("net.nat.add_dnat", "net.nat.remove_dnat", "net.nat.add_snat", "net.nat.remove_snat"))
async def nat(t: Trial) -> None:
    bridge = t.name("nb")
    await t.call("net.bridge.add", {"name": bridge}, undo=("net.bridge.delete", {"name": bridge}))
    dnats = [{"proto": "tcp", "external_port": _port(t, 10), "internal_address": "192.0.2.10", "internal_port": 80,
              "comment": f"osd xtest {t.name('')}"},
             {"proto": "udp", "external_port": _port(t, 11), "internal_address": "2001:db8::10",
              "internal_port": 53, "interface": bridge, "family": "inet6"}]
    snats = [{"source": "198.51.100.0/24", "out_interface": bridge},
             {"source": "192.0.2.0/24", "out_interface": bridge, "to_address": "203.0.113.5"}]
    for kind, specs in (("dnat", dnats), ("snat", snats)):
        add, remove = f"net.nat.add_{kind}", f"net.nat.remove_{kind}"
        ids = []
        for spec in specs:
            added = await t.call(add, spec)
            if not t.expect(add, isinstance(added.get("id"), str), f"adding {spec} returns an id (got {added})"):
                return
            t.undo(remove, {"id": added["id"]})
            t.expect_changed(add, added, True, f"adding {spec}")
            ids.append(added["id"])
            again = await t.call(add, spec)
            t.expect(add, again.get("changed") is False and again.get("id") == added["id"],
                     f"adding the same {kind} again: changed false, same id (got {again})")
        listed = [x.get("id") for x in (await t.call("net.nat.status")).get(kind, [])]
        t.expect(add, all(i in listed for i in ids), f"net.nat.status lists the {kind} entries {ids} (got {listed})")
        for entry_id in ids:
            t.expect_changed(remove, await t.call(remove, {"id": entry_id}), True, f"removing {entry_id}")
        listed = [x.get("id") for x in (await t.call("net.nat.status")).get(kind, [])]
        t.expect(remove, not [i for i in ids if i in listed], f"net.nat.status no longer lists {ids}")
        t.expect_changed(remove, await t.call(remove, {"id": ids[0]}), False, f"removing {ids[0]} again")
    await t.call("net.bridge.delete", {"name": bridge})


@scenario("conntrack flush", methods=("net.conntrack.flush",))
async def conntrack_flush(t: Trial) -> None:
    """A real flow (a UDP datagram on lo, tracked once a NAT rule needs conntrack in the
    namespace) must be listed, survive the flush of another zone and go with a full flush."""
    flush = "net.conntrack.flush"
    port, zone = _port(t, 20), int(t.name("")[-4:], 16) % 60000 + 1000
    dnat = await t.call("net.nat.add_dnat", {"proto": "udp", "external_port": _port(t, 21),
                                             "internal_address": "192.0.2.10", "internal_port": 53}, optional=True)
    if dnat is not None:
        t.undo("net.nat.remove_dnat", {"id": dnat["id"]})
    await t.lab.udp_probe(port)

    def ours(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in entries if e.get("proto") == "udp" and e.get("dport") == port and e.get("dst") == "127.0.0.1"]

    tracked = dnat is not None  # without a rule that needs conntrack the namespace may track nothing
    if tracked:
        t.expect("net.conntrack", len(ours(await t.call("net.conntrack"))) == 1,
                 f"net.conntrack lists the UDP flow to 127.0.0.1:{port}")
    flushed = await t.call(flush, {"zone": zone})
    t.expect(flush, flushed.get("flushed") == 0, f"an unused zone {zone} has nothing to flush (got {flushed})")
    if tracked:
        t.expect(flush, len(ours(await t.call("net.conntrack"))) == 1, f"flushing zone {zone} leaves zone 0 alone")
    flushed = await t.call(flush)
    t.expect(flush, isinstance(flushed.get("flushed"), int) and flushed["flushed"] >= (1 if tracked else 0),
             f"flushing everything reports how many entries went (got {flushed})")
    t.expect(flush, not ours(await t.call("net.conntrack")), f"the flow to 127.0.0.1:{port} is gone after the flush")
    if dnat is not None:
        await t.call("net.nat.remove_dnat", {"id": dnat["id"]})
