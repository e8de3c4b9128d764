"""InterfaceWatch against the kernel: after each change it answers what a dump answers.

The scenario runs in a child process inside a fresh namespace (`ip netns exec`), since the
watch's sockets belong to the namespace of the thread that creates them; the child makes
its changes with `ip` and compares InterfaceWatch.interfaces() with Rtnl.interfaces().
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from netns_lab import in_netns, ip_batch, run_in_netns, scratch_netns

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a network namespace"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's ip"),
]

# (commands, settles): a step that brings links up changes carrier and operstate later, in
# a kernel worker, so its result is awaited; every other change must show at once.
STEPS: list[tuple[list[str], bool]] = [
    (["link add w-va0 type veth peer name w-vb0"], False),
    (["addr add 192.0.2.5/24 dev w-va0", "addr add 2001:db8:5::5/64 dev w-va0 nodad"], False),
    (["link set w-vb0 master w-br0"], False),
    (["link set w-va0 up", "link set w-vb0 up", "link set w-br0 up"], True),
    (["link set w-va0 mtu 1300"], False),
    (["link set w-va0 down", "link set w-va0 name w-renamed"], True),
    (["link set w-vb0 nomaster"], False),  # the kernel also sends an AF_BRIDGE RTM_DELLINK
    (["addr del 192.0.2.5/24 dev w-renamed", "addr add 198.51.100.5 peer 198.51.100.6 dev w-renamed"], False),
    (["link del w-renamed"], False),
]


def comparable(interfaces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Addresses as a sorted list: the watch appends new ones where the kernel may insert."""
    return [{**i, "addresses": sorted(i["addresses"], key=json.dumps)} for i in interfaces]


async def scenario(rcvbuf: int) -> dict[str, Any]:
    """Run STEPS in the current namespace; report mismatches and how often the watch dumped."""
    from osd.backends.native.linkwatch import InterfaceWatch
    from osd.backends.native.rtnl import Rtnl

    mismatches = []
    async with InterfaceWatch(rcvbuf=rcvbuf) as watch, Rtnl() as rtnl:
        await watch.interfaces()
        for commands, settles in STEPS:
            subprocess.run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", text=True, check=True)
            for _ in range(40 if settles else 1):
                seen, dumped = comparable(await watch.interfaces()), comparable(await rtnl.interfaces())
                if seen == dumped:
                    break
                await asyncio.sleep(0.05)
            else:
                mismatches.append({"step": commands, "watch": seen, "dump": dumped})
        # A burst of changes (each veth pair brings several link notifications).
        subprocess.run(["ip", "-batch", "-"], text=True, check=True,
                       input="".join(f"link add wb{i} type veth peer name wc{i}\n" for i in range(60)))  # fmt: skip
        if comparable(await watch.interfaces()) != comparable(await rtnl.interfaces()):
            mismatches.append({"step": "burst"})
        named = await watch.interfaces("wb7")
    return {"mismatches": mismatches, "rebuilds": watch.rebuilds, "named": [i["name"] for i in named]}


@pytest.fixture
def netns() -> Iterator[str]:
    with scratch_netns("watch") as name:
        in_netns(name, ["sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1"])  # no DAD churn
        ip_batch(name, ["link add w-br0 type bridge", "link set lo up"])
        yield name


def test_watch_follows_changes_without_dumping(netns: str) -> None:
    report = run_in_netns(netns, "test_linkwatch", "scenario", 8 << 20)
    assert report["mismatches"] == []
    assert report["rebuilds"] == 1  # only the first read dumped
    assert report["named"] == ["wb7"]


def test_watch_rebuilds_after_overflow(netns: str) -> None:
    report = run_in_netns(netns, "test_linkwatch", "scenario", 4096)  # far too small for the burst: the kernel drops
    assert report["mismatches"] == []
    assert report["rebuilds"] > 1
