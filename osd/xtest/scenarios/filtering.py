"""The daemon's nftables table: input allow rules, DNAT and SNAT, and conntrack flushing.

Each add is read back by id (net.firewall, net.nat.status), repeated (same id, changed:
false), removed, and removed again (changed: false). Ports and addresses come from the
run tag and documentation ranges.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..engine import Scenarios, Trial

scenario = Scenarios()


def _port(t: Trial, offset: int) -> int:
    return 40000 + int(t.name("")[-4:], 16) % 20000 + offset


async def _add_twice(t: Trial, add: str, remove: str, spec: dict[str, Any]) -> str | None:
    """Add ``spec`` (its removal registered as undo): changed true; again: changed false and
    the same id. The id, or None when the add returned none."""
    added = await t.call(add, spec)
    if not t.expect(add, isinstance(added.get("id"), str), f"adding {spec} returns an id (got {added})"):
        return None
    t.undo(remove, {"id": added["id"]})
    t.expect_changed(add, added, True, f"adding {spec}")
    again = await t.call(add, spec)
    t.expect_changed(add, again, False, f"adding {spec} again")
    t.expect(add, again.get("id") == added["id"], f"the same entry keeps its id (got {again.get('id')})")
    return str(added["id"])


async def _add_list_remove(t: Trial, add: str, remove: str, specs: list[dict[str, Any]],
                           listed: Callable[[], Awaitable[set[Any]]], where: str) -> None:
    """Each spec added twice, listed by ``where``, removed (changed true), no longer listed,
    and removed again (changed false)."""
    ids = []
    for spec in specs:
        entry_id = await _add_twice(t, add, remove, spec)
        if entry_id is None:
            return
        ids.append(entry_id)
    shown = await listed()
    t.expect(add, all(i in shown for i in ids), f"{where} lists {ids}")
    for entry_id in ids:
        t.expect_changed(remove, await t.call(remove, {"id": entry_id}), True, f"removing {entry_id}")
    shown = await listed()
    t.expect(remove, not [i for i in ids if i in shown], f"{where} no longer lists {ids}")
    t.expect_changed(remove, await t.call(remove, {"id": ids[0]}), False, f"removing {ids[0]} again")


@scenario("firewall rules", methods=("net.firewall.add_rule", "net.firewall.remove_rule"))
async def firewall(t: Trial) -> None:
    specs = [{"port": _port(t, 0), "proto": "tcp", "source": "198.51.100.0/24", "comment": f"osd xtest {t.name('')}"},
             {"port": f"{_port(t, 1)}-{_port(t, 3)}", "proto": "udp", "family": "inet6"}]

    async def managed_rules() -> set[Any]:
        return {r.get("id") for r in (await t.call("net.firewall")).get("rules", []) if r.get("managed")}

    await _add_list_remove(t, "net.firewall.add_rule", "net.firewall.remove_rule", specs, managed_rules,
                           "net.firewall (managed rules)")


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

        async def entries(kind: str = kind) -> set[Any]:
            return {x.get("id") for x in (await t.call("net.nat.status")).get(kind, [])}

        await _add_list_remove(t, f"net.nat.add_{kind}", f"net.nat.remove_{kind}", specs, entries,
                               f"net.nat.status ({kind})")
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
