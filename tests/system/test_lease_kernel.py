"""LeaseKernel (what a DHCPv4 lease puts in the kernel) against a real namespace.

The lease service's tests go through dnsmasq, which cannot change a lease's routes from
one answer to the next or make the kernel refuse one; these apply leases directly. The
steps run in a child process inside the namespace (support.netlab.run_in_netns); each
returns the routes `ip` shows after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from support.netlab import ip_batch, run_in_netns, scratch_netns

HERE = str(Path(__file__).resolve().parent)

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a namespace")]

IFACE = "lk0"
ROUTED, ONLINK = "198.51.100.0/24", "203.0.113.0/24"


def lease(routes: list[tuple[str, str | None]]) -> Any:
    """A LeaseInfo for 192.0.2.56/24 whose option 121 carries ``routes``."""
    from osd.backends.native.net.dhcp4 import LeaseInfo, _StoredLease

    option: list[int] = []
    for destination, gateway in routes:
        address, width = destination.split("/")
        option += [int(width), *[int(o) for o in address.split(".")][:(int(width) + 7) // 8],
                   *[int(o) for o in (gateway or "0.0.0.0").split(".")]]
    ack = {"op": 2, "yiaddr": "192.0.2.56", "options": {
        "message_type": 5, "server_id": "192.0.2.1", "lease_time": 600, "subnet_mask": "255.255.255.0",
        "router": ["192.0.2.1"], "classless_static_route": option}}
    return LeaseInfo.from_lease(_StoredLease(ack=ack, interface=IFACE, server_mac="02:00:00:00:00:01",
                                             obtained=time.time()))


def dhcp_routes() -> list[list[Any]]:
    shown = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "proto", "dhcp", "dev", IFACE],
                                      capture_output=True, text=True, check=True).stdout)
    return sorted([r["dst"], r.get("gateway"), r.get("scope", "global")] for r in shown)


async def steps(plan: list[list[Any]]) -> list[Any]:
    """Run inside the namespace: for each step (apply NEW over OLD, or withdraw OLD), the
    outcome (changed, or the errno of the refusal) and the routes shown afterwards."""
    from osd.backends.native.net.kernel import Kernel
    from osd.backends.native.net.lease_nl import LeaseKernel
    from osd.errors import KernelError

    kernel = Kernel()
    await kernel.start()
    try:
        lk = LeaseKernel(kernel)
        index = await lk.index(IFACE)
        out: list[Any] = []
        for action, new, old in plan:
            new_lease = lease([tuple(r) for r in new]) if new is not None else None
            old_lease = lease([tuple(r) for r in old]) if old is not None else None
            try:
                if action == "apply":
                    outcome: Any = await lk.apply(index, new_lease, old_lease)
                else:
                    outcome = await lk.withdraw(index, old_lease)
            except KernelError as exc:
                outcome = f"errno {exc.data['errno'] if exc.data else '?'}"
            out.append([outcome, dhcp_routes()])
        return out
    finally:
        await kernel.close()


@pytest.fixture
def netns() -> Any:
    with scratch_netns("lk") as name:
        ip_batch(name, [f"link add {IFACE} type veth peer name {IFACE}p", f"link set {IFACE}p up",
                        f"link set {IFACE} up"])  # no dummy links on this kernel (LAB.md)
        yield name


def run(netns: str, plan: list[list[Any]]) -> list[Any]:
    return run_in_netns(netns, "test_lease_kernel", "steps", plan, path=[HERE])  # type: ignore[no-any-return]


def test_routes_follow_the_lease_and_leave_with_it(netns: str) -> None:
    first = [[ONLINK, None], [ROUTED, "192.0.2.9"], ["0.0.0.0/0", "192.0.2.1"]]
    second = [[ONLINK, "192.0.2.9"], ["0.0.0.0/0", "192.0.2.254"]]  # on-link now via a router; ROUTED gone
    only_default = [["0.0.0.0/0", "192.0.2.1"]]
    results = run(netns, [["apply", first, None], ["apply", first, first], ["apply", second, first],
                          ["withdraw", None, second], ["apply", first, None], ["apply", only_default, first],
                          ["withdraw", None, only_default]])
    assert results[0] == [True, [[ROUTED, "192.0.2.9", "global"], [ONLINK, None, "link"],
                                 ["default", "192.0.2.1", "global"]]]
    assert results[1][0] is False and results[1][1] == results[0][1]  # the same lease again
    assert results[2] == [True, [[ONLINK, "192.0.2.9", "global"], ["default", "192.0.2.254", "global"]]]
    assert results[3] == [None, []]
    # A new lease without the on-link route takes it away (the address stays: the kernel
    # would otherwise flush the link's routes with its last address).
    assert results[4] == results[0]
    assert results[5] == [True, [["default", "192.0.2.1", "global"]]] and results[6] == [None, []]


def test_a_refused_route_puts_back_what_the_lease_replaced(netns: str) -> None:
    first = [["0.0.0.0/0", "192.0.2.1"], [ONLINK, None]]
    # the new default route replaces the old one; then a route via the broadcast address is refused
    refused = [["0.0.0.0/0", "192.0.2.254"], [ONLINK, "192.0.2.9"], [ROUTED, "192.0.2.255"]]
    results = run(netns, [["apply", first, None], ["apply", refused, first]])
    assert results[1][0] == "errno 22"
    assert results[1][1] == results[0][1] == [[ONLINK, None, "link"], ["default", "192.0.2.1", "global"]]
