"""Routes in a scratch table on a scratch bridge, and a DHCP lease from a server the lab runs.

Routes go to a table numbered from the run tag (never main), on a bridge the scenario
made, to documentation prefixes only. The lease comes from dnsmasq in a namespace of the
lab's, behind a veth pair; on a live daemon it offers no router, so the host's default
route is never touched.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..engine import Scenarios, Trial
from ..lab import DHCP_RANGE, DHCP_SERVER

scenario = Scenarios()


def _table(t: Trial) -> int:
    return 20000 + int(t.name("")[-4:], 16) % 40000


def _find(routes: list[dict[str, Any]], dst: str, **fields: Any) -> dict[str, Any] | None:
    return next((r for r in routes if r.get("dst") == dst and all(r.get(k) == v for k, v in fields.items())), None)


@scenario("routes", methods=("net.routes.add", "net.routes.delete"))
async def routes(t: Trial) -> None:
    add, delete = "net.routes.add", "net.routes.delete"
    bridge, table = t.name("rb"), _table(t)
    await t.call("net.bridge.add", {"name": bridge}, undo=("net.bridge.delete", {"name": bridge}))
    link = {"dst": "198.51.100.0/24", "dev": bridge, "table": table, "metric": 77}
    via = {"dst": "203.0.113.0/24", "gateway": "198.51.100.1", "dev": bridge, "table": table}
    six = {"dst": "2001:db8:77::/64", "dev": bridge, "table": table, "family": "inet6"}
    for spec in (link, via, six):
        t.expect_changed(add, await t.call(add, spec, undo=(delete, spec)), True,
                         f"adding {spec['dst']} to table {table}")
    shown = await t.call("net.routes", {"table": table, "family": "inet"})
    t.expect(add, _find(shown, link["dst"], dev=bridge, metric=77, table=table) is not None,
             f"net.routes(table={table}) shows {link['dst']} dev {bridge} metric 77 (got {shown!r:.300})")
    t.expect(add, _find(shown, via["dst"], gateway="198.51.100.1", dev=bridge) is not None,
             f"net.routes(table={table}) shows {via['dst']} via 198.51.100.1")
    shown6 = await t.call("net.routes", {"table": table, "family": "inet6"})
    t.expect(add, _find(shown6, six["dst"], dev=bridge, family="inet6") is not None,
             f"net.routes(table={table}, family=inet6) shows {six['dst']}")
    t.expect_changed(add, await t.call(add, link), False, "adding the same route again")
    main = await t.call("net.routes", {"table": "main"})
    t.expect(add, _find(main, link["dst"], dev=bridge) is None, "the route went to its table, not to main")
    for spec in (via, link, six):
        t.expect_changed(delete, await t.call(delete, spec), True, f"deleting {spec['dst']}")
    left = await t.call("net.routes", {"table": table})
    t.expect(delete, not [r for r in left if r.get("dst") in (link["dst"], via["dst"], six["dst"])],
             f"net.routes(table={table}) no longer shows the routes (got {left!r:.300})")
    t.expect_changed(delete, await t.call(delete, link), False, "deleting the route again")
    await t.call("net.bridge.delete", {"name": bridge})


@scenario("DHCP lease", methods=("net.lease.restart",))
async def lease(t: Trial) -> None:
    restart = "net.lease.restart"
    ifname, peer = t.name("dh"), t.name("dp")
    own_namespace = t.lab.netns is not None
    await t.lab.dhcp_server(ifname, peer, router=own_namespace)
    got = await t.call(restart, {"interface": ifname}, timeout=max(t.timeout, 60))
    address = got.get("address")
    low, high = (ipaddress.ip_address(a) for a in DHCP_RANGE)
    t.expect(restart, address is not None and low <= ipaddress.ip_address(address) <= high,
             f"the leased address is in {DHCP_RANGE[0]}-{DHCP_RANGE[1]} (got {address})")
    t.expect(restart, (got.get("prefixlen"), got.get("server")) == (24, DHCP_SERVER),
             f"prefixlen 24 from server {DHCP_SERVER} (got {got.get('prefixlen')}, {got.get('server')})")
    t.expect(restart, got.get("lease_s", 0) > 0, "a positive lease time")
    shown = await t.call("net.interfaces", {"name": ifname})
    have = {(a.get("address"), a.get("prefixlen")) for i in shown for a in i.get("addresses", [])}
    t.expect(restart, (address, 24) in have, f"net.interfaces shows {address}/24 on {ifname} (got {sorted(have)})")
    leases = await t.call("net.lease", {"interface": ifname})
    t.expect(restart, any(x.get("interface") == ifname and x.get("dhcp4") for x in leases),
             f"net.lease shows a DHCPv4 lease on {ifname}")
    if own_namespace:
        t.expect(restart, got.get("router") == DHCP_SERVER, f"the router is {DHCP_SERVER} (got {got.get('router')})")
        main = await t.call("net.routes", {"table": "main", "family": "inet"})
        t.expect(restart, _find(main, "default", gateway=DHCP_SERVER, dev=ifname) is not None,
                 f"net.routes shows the default route via {DHCP_SERVER} from the lease")
    again = await t.call(restart, {"interface": ifname}, timeout=max(t.timeout, 60))
    t.expect(restart, again.get("address") == address, "a second restart renews the same address")
