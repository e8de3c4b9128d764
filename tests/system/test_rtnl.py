"""osd.backends.native.rtnl against the kernel, checked field by field against `ip -j`.

Each test module builds one fresh namespace (bridge with two veth ports, more veth pairs,
a tap, one link down, IPv4 and IPv6 addresses including a point-to-point one, routes in
two tables, a multipath route, permanent neighbours). The queries run in a child process
started with `ip netns exec` (support.netlab.run_in_netns): a netlink socket belongs to the
namespace of the thread that creates it, so the child creates its socket inside the
namespace while this process reads the same namespace with `ip netns exec NS ip -j`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pathlib import Path

from support.netlab import in_netns, ip_batch, run_in_netns, scratch_netns

HERE = str(Path(__file__).resolve().parent)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a network namespace"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's ip"),
]

TOPOLOGY = [
    "link set lo up",
    "link add t-br0 type bridge",
    "link add t-va0 type veth peer name t-vb0",
    "link add t-va1 mtu 1400 type veth peer name t-vb1",
    "link add t-va2 type veth peer name t-vb2",
    "tuntap add mode tap name t-tap0",
    "link set t-vb0 master t-br0",
    "link set t-vb1 master t-br0",
    "addr add 192.0.2.1/24 dev t-br0",
    "addr add 2001:db8:1::1/64 dev t-br0 nodad",
    "addr add 198.51.100.1/24 dev t-va2",
    "addr add 198.51.100.9 peer 198.51.100.10/32 dev t-va2",
    "addr add 2001:db8:2::1/64 dev t-va2 nodad",
    *(f"link set {name} up" for name in ("t-br0", "t-va0", "t-vb0", "t-va1", "t-vb1", "t-va2", "t-tap0")),
    # t-vb2 stays down, so its peer t-va2 is up without carrier: "lowerlayerdown".
    "route add 203.0.113.0/26 via 192.0.2.254 dev t-br0 metric 50",
    "route add 203.0.113.64/26 nexthop via 192.0.2.253 dev t-br0 weight 2 nexthop via 192.0.2.254 dev t-br0",
    "route add 2001:db8:9::/48 via 2001:db8:1::fe dev t-br0 metric 7",
    "route add 203.0.113.128/26 dev t-br0 table 100",
    "neigh add 192.0.2.7 lladdr 02:00:00:00:00:07 dev t-br0 nud permanent",
    "neigh add 2001:db8:1::7 lladdr 02:00:00:00:00:08 dev t-br0 nud permanent",
]


def ip_json(netns: str, *args: str) -> Any:
    return json.loads(in_netns(netns, ["ip", "-j", *args]).stdout or "[]")


def settled(netns: str) -> None:
    """Wait until `ip` shows the same links twice: carrier and operstate settle in a
    kernel worker after `link set up`, so an early snapshot can differ from a later one."""
    before = None
    for _ in range(50):
        now = interfaces_from_ip(netns)
        if now == before:
            return
        before = now
        time.sleep(0.1)
    raise AssertionError("links kept changing for 5 s")


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    with scratch_netns("rtnl") as name:
        # No IPv6 link-local addresses: their DAD would change the picture between reads.
        in_netns(name, ["sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1"])
        ip_batch(name, TOPOLOGY)
        settled(name)
        yield name


async def calls(requests: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run Rtnl methods here; one {"result"} or {"error", "errno", "message"} per request."""
    from osd.backends.native.rtnl import NetlinkError, Rtnl

    out: list[dict[str, Any]] = []
    async with Rtnl() as nl:
        for method, kwargs in requests:
            try:
                out.append({"result": await getattr(nl, method)(**kwargs)})
            except NetlinkError as exc:
                out.append({"error": type(exc).__name__, "errno": exc.errno, "message": str(exc)})
    return out


def probe(netns: str, *requests: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """`calls` run inside the namespace."""
    return run_in_netns(netns, "test_rtnl", "calls", requests, path=[HERE])  # type: ignore[no-any-return]


def interfaces_from_ip(netns: str) -> list[dict[str, Any]]:
    """`ip -j -d addr show`, reshaped into what Rtnl.interfaces promises (ifindex order)."""
    reshaped = [
        {
            "name": link["ifname"],
            "index": link["ifindex"],
            "kind": link.get("linkinfo", {}).get("info_kind", link["link_type"]),
            "mac": link.get("address"),
            "mtu": link["mtu"],
            "state": link["operstate"].lower(),
            "carrier": "LOWER_UP" in link["flags"],
            "addresses": [
                {"family": a["family"], "address": a["local"], "prefixlen": a["prefixlen"]} for a in link["addr_info"]
            ],
            "master": link.get("master"),
        }
        for link in ip_json(netns, "-d", "addr", "show")
    ]
    return sorted(reshaped, key=lambda link: link["index"])


def test_interfaces_match_ip(netns: str) -> None:
    [answer] = probe(netns, ("interfaces", {}))
    expected = interfaces_from_ip(netns)
    assert answer["result"] == expected
    # The namespace exercises what the comparison is meant to cover.
    by_name = {link["name"]: link for link in expected}
    assert by_name["t-vb0"]["master"] == "t-br0" and by_name["t-br0"]["kind"] == "bridge"
    assert by_name["lo"]["kind"] == "loopback" and by_name["t-tap0"]["kind"] == "tun"
    assert {by_name["t-va2"]["state"], by_name["t-vb2"]["state"], by_name["t-va0"]["state"]} == {
        "lowerlayerdown",
        "down",
        "up",
    }
    assert by_name["t-va1"]["mtu"] == 1400 and not by_name["t-tap0"]["carrier"]
    assert {"198.51.100.9", "2001:db8:2::1"} <= {a["address"] for a in by_name["t-va2"]["addresses"]}


def test_interface_by_name(netns: str) -> None:
    everything = {link["name"]: link for link in interfaces_from_ip(netns)}
    answers = probe(netns, *(("interfaces", {"name": name}) for name in everything))
    assert [answer["result"] for answer in answers] == [[link] for link in everything.values()]


@pytest.mark.parametrize("name", ["t-nope", "x" * 16, "a\0b", ""])
def test_unknown_interface_is_not_found(netns: str, name: str) -> None:
    [answer] = probe(netns, ("interfaces", {"name": name}))
    assert answer["error"] == "LinkNotFound" and answer["errno"] == 19


def routes_from_ip(netns: str) -> list[dict[str, Any]]:
    """`ip -j route show table all` per family, with the defaults ip leaves out filled in."""
    tables = {"main": 254, "local": 255, "default": 253}
    routes = []
    for family, flag, host in (("inet", "-4", "/32"), ("inet6", "-6", "/128")):
        for r in ip_json(netns, flag, "route", "show", "table", "all"):
            dst = r["dst"] if r["dst"] == "default" or "/" in r["dst"] else r["dst"] + host
            route = {
                "family": family,
                "dst": dst,
                "gateway": r.get("gateway"),
                "dev": r.get("dev"),
                "metric": r.get("metric", 0),
                "protocol": r.get("protocol", "boot"),
                "scope": r.get("scope", "global"),
                "table": tables.get(r.get("table", "main")) or int(r["table"]),
                "type": r.get("type", "unicast"),
            }
            if "nexthops" in r:
                route["nexthops"] = [
                    {"gateway": h["gateway"], "dev": h["dev"], "weight": h["weight"]} for h in r["nexthops"]
                ]
            routes.append(route)
    return routes


def test_routes_match_ip(netns: str) -> None:
    every, main, inet6_100, inet_100, absent = probe(
        netns,
        ("routes", {"table": 0}),
        ("routes", {}),
        ("routes", {"family": "inet6", "table": 100}),
        ("routes", {"family": "inet", "table": 100}),
        ("routes", {"family": "inet", "table": 5000}),
    )
    expected = routes_from_ip(netns)
    assert every["result"] == expected
    assert main["result"] == [r for r in expected if r["table"] == 254]
    assert inet6_100["result"] == [] and absent["result"] == []
    assert inet_100["result"] == [r for r in expected if r["table"] == 100] != []
    assert any("nexthops" in r for r in expected) and any(r["gateway"] for r in expected)


def test_neighbors_match_ip(netns: str) -> None:
    every, on_bridge_v6, elsewhere, missing = probe(
        netns,
        ("neighbors", {}),
        ("neighbors", {"interface": "t-br0", "family": "inet6"}),
        ("neighbors", {"interface": "t-va0"}),
        ("neighbors", {"interface": "t-nope"}),
    )
    expected = [
        {"address": n["dst"], "lladdr": n.get("lladdr"), "dev": n["dev"], "state": ",".join(n["state"]).lower()}
        for n in ip_json(netns, "neigh", "show", "nud", "all")
    ]
    assert [{k: v for k, v in n.items() if k != "family"} for n in every["result"]] == expected
    assert {n["address"] for n in every["result"] if n["state"] == "permanent"} == {"192.0.2.7", "2001:db8:1::7"}
    assert [n["address"] for n in on_bridge_v6["result"] if n["state"] == "permanent"] == ["2001:db8:1::7"]
    assert all(n["family"] == "inet6" and n["dev"] == "t-br0" for n in on_bridge_v6["result"])
    assert elsewhere["result"] == []
    assert missing["error"] == "LinkNotFound"
