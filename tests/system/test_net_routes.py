"""net.routes.add / net.routes.delete against the kernel, observed with `ip -j route show`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.daemon import Daemon
from support.netlab import NetLab, Netns

pytestmark = pytest.mark.root


@pytest.fixture
def ns() -> Iterator[Netns]:
    with NetLab() as lab:
        ns = lab.netns("nroute")
        ns.ip("link", "add", "rt-a", "type", "veth", "peer", "rt-b")
        for link in ("rt-a", "rt-b"):
            ns.ip("link", "set", link, "up")
        ns.ip("addr", "add", "192.0.2.1/24", "dev", "rt-a")
        ns.ip("addr", "add", "2001:db8:1::1/64", "dev", "rt-a", "nodad")
        yield ns


def table(ns: Netns, number: int, family: str = "-4") -> list[dict[str, Any]]:
    return ns.ip_json(family, "route", "show", "table", str(number))


def test_add_with_table_and_metric_then_delete(ns: Netns, daemon: Daemon) -> None:
    route = {"dst": "198.51.100.0/24", "gateway": "192.0.2.254", "metric": 40, "table": 120}
    assert daemon.call("net.routes.add", route) == {"changed": True}
    assert table(ns, 120) == [{"dst": "198.51.100.0/24", "gateway": "192.0.2.254", "dev": "rt-a",
                               "protocol": "static", "metric": 40, "flags": []}]
    assert daemon.call("net.routes.add", route) == {"changed": False}
    assert daemon.call("net.routes.add", {**route, "dev": "rt-a"}) == {"changed": False}
    assert len(table(ns, 120)) == 1
    assert daemon.call("net.routes.delete", route) == {"changed": True}
    assert table(ns, 120) == []
    assert daemon.call("net.routes.delete", route) == {"changed": False}


def test_device_route_gets_link_scope_and_is_deleted_without_naming_it(ns: Netns, daemon: Daemon) -> None:
    assert daemon.call("net.routes.add", {"dst": "203.0.113.0/24", "dev": "rt-b"}) == {"changed": True}
    (route,) = [r for r in ns.ip_json("-4", "route", "show") if r["dst"] == "203.0.113.0/24"]
    assert route["dev"] == "rt-b" and route["scope"] == "link"
    assert daemon.call("net.routes.delete", {"dst": "203.0.113.0/24"}) == {"changed": True}
    assert not [r for r in ns.ip_json("-4", "route", "show") if r["dst"] == "203.0.113.0/24"]


def test_ipv6_default_route_in_a_table(ns: Netns, daemon: Daemon) -> None:
    route = {"dst": "default", "gateway": "2001:db8:1::fe", "table": 130}
    assert daemon.call("net.routes.add", route) == {"changed": True}
    (got,) = table(ns, 130, "-6")
    assert (got["dst"], got["gateway"], got["dev"], got["metric"]) == ("default", "2001:db8:1::fe", "rt-a", 1024)
    assert daemon.call("net.routes.add", {**route, "metric": 1024}) == {"changed": False}
    assert daemon.call("net.routes", {"table": 130, "family": "inet6"})[0]["gateway"] == "2001:db8:1::fe"
    assert daemon.call("net.routes.delete", {"dst": "default", "family": "inet6", "table": 130}) == {"changed": True}
    assert table(ns, 130, "-6") == []


def test_a_different_route_in_the_same_place_is_a_conflict(ns: Netns, daemon: Daemon) -> None:
    ns.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.254")
    err = daemon.error("net.routes.add", {"dst": "198.51.100.0/24", "gateway": "192.0.2.253"})
    assert err.code == -32005 and err.data["kind"] == "route"
    (route,) = [r for r in ns.ip_json("-4", "route", "show") if r["dst"] == "198.51.100.0/24"]
    assert route["gateway"] == "192.0.2.254"
    # another metric is another place
    assert daemon.call("net.routes.add", {"dst": "198.51.100.0/24", "gateway": "192.0.2.253", "metric": 9}) == \
        {"changed": True}


def test_delete_matches_gateway_when_given(ns: Netns, daemon: Daemon) -> None:
    ns.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.254", "table", "140")
    assert daemon.call("net.routes.delete", {"dst": "198.51.100.0/24", "gateway": "192.0.2.9", "table": 140}) == \
        {"changed": False}
    assert len(table(ns, 140)) == 1


def test_errors(ns: Netns, daemon: Daemon) -> None:
    err = daemon.error("net.routes.add", {"dst": "198.51.100.0/24", "dev": "nosuch0"})
    assert err.code == -32004 and err.data == {"kind": "interface", "name": "nosuch0"}
    assert daemon.error("net.routes.delete", {"dst": "198.51.100.0/24", "dev": "nosuch0"}).code == -32004
    err = daemon.error("net.routes.add", {"dst": "198.51.100.0/24", "gateway": "2001:db8:1::fe"})
    assert err.code == -32602 and "families disagree" in err.data["reason"]
    assert daemon.error("net.routes.add", {"dst": "198.51.100.7/24", "dev": "rt-a"}).code == -32602
    # the kernel refuses a gateway no route reaches: -32021 with errno and operation
    err = daemon.error("net.routes.add", {"dst": "198.51.100.0/24", "gateway": "203.0.113.1"})
    assert err.code == -32021 and err.data["errno"] == 101 and "add route" in err.data["op"]
    for params in ({"dst": "198.51.100.0/24"}, {"dst": "nonsense", "dev": "rt-a"},
                   {"dst": "198.51.100.0/33", "dev": "rt-a"}, {"dst": "198.51.100.0/24", "dev": "rt-a", "metric": -1},
                   {"dst": "198.51.100.0/24", "dev": "rt-a", "table": "nosuch"}):
        assert daemon.error("net.routes.add", params).code == -32602, params
    assert [r for r in ns.ip_json("-4", "route", "show") if r["dst"] == "198.51.100.0/24"] == []
