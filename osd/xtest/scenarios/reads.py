"""Read-only methods, one scenario each: call, check the documented fields, probe a missing name.

Checks hold on any node (a fresh namespace or a live host): they look for what every
Linux network stack has (``lo``, its 127.0.0.0/8 route) or for the shape the catalogue
documents, never for the contents of a particular machine.
"""

from __future__ import annotations

from typing import Any

from ..engine import Scenarios, Trial

scenario = Scenarios()
NOT_FOUND = -32004


def _has(t: Trial, method: str, result: Any, *keys: str) -> bool:
    missing = [k for k in keys if not isinstance(result, dict) or k not in result]
    return t.expect(method, not missing, f"the result has {', '.join(missing)}")


@scenario("self-description", methods=("rpc.discover", "rpc.health"))
async def self_description(t: Trial) -> None:
    doc = await t.call("rpc.discover")
    t.expect("rpc.discover", doc.get("openrpc") == "1.3.2", f"openrpc is '1.3.2', not {doc.get('openrpc')!r}")
    served = {m.get("name"): m for m in doc.get("methods", [])}
    for spec in t.registry:
        entry = served.get(spec.name)
        if entry is not None:
            t.expect("rpc.discover", (entry.get("x-right"), entry.get("x-tier")) == (str(spec.right), spec.tier.value),
                     f"{spec.name} is documented with x-right {str(spec.right)!r} and x-tier {spec.tier.value!r}, "
                     f"not {entry.get('x-right')!r}/{entry.get('x-tier')!r}")
    health = await t.call("rpc.health")
    t.expect("rpc.health", {"net", "vol"} <= set(health.get("namespaces", {})),
             f"namespaces net and vol are reported (got {sorted(health.get('namespaces', {}))})")


@scenario("net.status", methods=("net.status",))
async def status(t: Trial) -> None:
    result = await t.call("net.status")
    if _has(t, "net.status", result, "pid", "mode", "version"):
        t.expect("net.status", result["mode"] in ("native", "proxy") and result["pid"] > 0,
                 f"mode is native or proxy and pid positive (got {result['mode']!r}, {result['pid']!r})")


@scenario("net.config", methods=("net.config",))
async def config(t: Trial) -> None:
    _has(t, "net.config", await t.call("net.config"), "cmdline", "daemon")


@scenario("net.lease", methods=("net.lease",))
async def lease(t: Trial) -> None:
    await t.call("net.lease")


@scenario("net.prefix", methods=("net.prefix",))
async def prefix(t: Trial) -> None:
    await t.call("net.prefix")


@scenario("net.health", methods=("net.health",))
async def health(t: Trial) -> None:
    result = await t.call("net.health")
    if _has(t, "net.health", result, "status", "checks"):
        t.expect("net.health", len(result["checks"]) > 0, "at least one check is reported")


@scenario("net.verify", methods=("net.verify",))
async def verify(t: Trial) -> None:
    _has(t, "net.verify", await t.call("net.verify"), "ok", "drift")


@scenario("net.interfaces", methods=("net.interfaces",))
async def interfaces(t: Trial) -> None:
    every = await t.call("net.interfaces")
    t.expect("net.interfaces", any(i.get("name") == "lo" for i in every), "lo is listed")
    lo = await t.call("net.interfaces", {"name": "lo"})
    t.expect("net.interfaces", [i.get("name") for i in lo] == ["lo"], f"name=lo gives lo alone (got {lo!r:.200})")
    if lo:
        addresses = {(a.get("address"), a.get("prefixlen")) for a in lo[0].get("addresses", [])}
        t.expect("net.interfaces", ("127.0.0.1", 8) in addresses, f"lo has 127.0.0.1/8 (got {sorted(addresses)})")
    await t.call("net.interfaces", {"name": t.name("none")}, expect_error=NOT_FOUND)


@scenario("net.routes", methods=("net.routes",))
async def routes(t: Trial) -> None:
    await t.call("net.routes")
    local = await t.call("net.routes", {"table": "local", "family": "inet"})
    t.expect("net.routes", any(r.get("dev") == "lo" and str(r.get("dst", "")).startswith("127.") for r in local),
             "table local has the 127.0.0.0/8 route on lo")
    t.expect("net.routes", all(r.get("family") == "inet" for r in local), "family=inet gives IPv4 routes only")


@scenario("net.neighbors", methods=("net.neighbors",))
async def neighbors(t: Trial) -> None:
    await t.call("net.neighbors")
    await t.call("net.neighbors", {"interface": "lo", "family": "inet6"})


@scenario("net.bridge", methods=("net.bridge",))
async def bridges(t: Trial) -> None:
    await t.call("net.bridge")
    await t.call("net.bridge", {"name": t.name("none")}, expect_error=NOT_FOUND)


@scenario("net.firewall", methods=("net.firewall",))
async def firewall(t: Trial) -> None:
    _has(t, "net.firewall", await t.call("net.firewall"), "tables", "rules")


@scenario("net.dns", methods=("net.dns",))
async def dns(t: Trial) -> None:
    _has(t, "net.dns", await t.call("net.dns"), "nameservers", "search")


@scenario("net.sysctl", methods=("net.sysctl",))
async def sysctl(t: Trial) -> None:
    result = await t.call("net.sysctl")
    _has(t, "net.sysctl", result, "ipv4_forward", "ipv6_forward")
    lo = await t.call("net.sysctl", {"interface": "lo"})
    names = [i.get("name") for i in lo.get("interfaces", [])]
    t.expect("net.sysctl", names == ["lo"], f"interface=lo reports lo alone (got {names})")


@scenario("net.conntrack", methods=("net.conntrack", "net.conntrack.stats"))
async def conntrack(t: Trial) -> None:
    listed = await t.call("net.conntrack", {"limit": 1})
    t.expect("net.conntrack", len(listed) <= 1, f"limit=1 gives at most one entry (got {len(listed)})")
    stats = await t.call("net.conntrack.stats")
    if _has(t, "net.conntrack.stats", stats, "count", "max"):
        t.expect("net.conntrack.stats", stats["max"] > 0, f"max is positive (got {stats['max']})")


@scenario("net.nat.status", methods=("net.nat.status",))
async def nat_status(t: Trial) -> None:
    _has(t, "net.nat.status", await t.call("net.nat.status"), "dnat", "snat")


@scenario("net.vm.list", methods=("net.vm.list",))
async def vm_list(t: Trial) -> None:
    await t.call("net.vm.list")


@scenario("storage inventory", methods=("vol.list_disks", "vol.list_partitions", "vol.list_filesystems",
                                        "vol.list_mounts", "vol.inventory", "vol.feasible_topologies"))
async def storage_inventory(t: Trial) -> None:
    disks = await t.call("vol.list_disks")
    paths = {d.get("path") for d in disks}
    for disk in t.lab.disks:
        t.expect("vol.list_disks", disk in paths, f"scratch disk {disk} is listed")
    await t.call("vol.list_partitions")
    await t.call("vol.list_filesystems")
    mounts = await t.call("vol.list_mounts")
    t.expect("vol.list_mounts", any(m.get("target") == "/" for m in mounts), "/ is listed")
    inventory = await t.call("vol.inventory")
    _has(t, "vol.inventory", inventory, "disks", "partitions", "filesystems", "mounts", "md_arrays")
    topologies = await t.call("vol.feasible_topologies")
    t.expect("vol.feasible_topologies", all("feasible" in x and "name" in x for x in topologies),
             "every topology has a name and feasible")


@scenario("mos", methods=("net.ovs", "net.flows", "net.datapath", "net.ovs.conntrack", "net.ovs.conntrack.stats",
                          "net.ovs.conntrack.flush"))
async def mos(t: Trial) -> None:
    # Native daemons register these and answer -32010; a profile that allows the tier
    # checks exactly that. Each call stands alone.
    for method in ("net.ovs", "net.flows", "net.datapath", "net.ovs.conntrack", "net.ovs.conntrack.stats",
                   "net.ovs.conntrack.flush"):
        await t.call(method, optional=True)
