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
from collections.abc import Callable, Iterator
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

Links = dict[str, dict[str, Any]]


def addresses(link: dict[str, Any]) -> set[str]:
    return {f"{a['address']}/{a['prefixlen']}" for a in link["addresses"]}


# Each step: `ip` commands, and what the watch must show on its very next read (the kernel
# notifies while it makes these changes). Other fields may still move: the DAD worker
# announces nodad IPv6 addresses a moment later, linkwatch carrier and operstate up to a
# second later, so afterwards the watch is only required to reach what a dump shows.
STEPS: list[tuple[list[str], Callable[[Links], bool]]] = [
    (["link add w-va0 type veth peer name w-vb0"], lambda ls: {"w-va0", "w-vb0"} <= ls.keys()),
    (
        ["addr add 192.0.2.5/24 dev w-va0", "addr add 2001:db8:5::5/64 dev w-va0 nodad"],
        lambda ls: "192.0.2.5/24" in addresses(ls["w-va0"]),
    ),
    (["link set w-vb0 master w-br0"], lambda ls: ls["w-vb0"]["master"] == "w-br0"),
    (["link set w-va0 up", "link set w-vb0 up", "link set w-br0 up"], lambda ls: True),
    (["link set w-va0 mtu 1300"], lambda ls: ls["w-va0"]["mtu"] == 1300),
    (["link set w-va0 down", "link set w-va0 name w-renamed"], lambda ls: "w-renamed" in ls and "w-va0" not in ls),
    # Leaving the bridge also sends an AF_BRIDGE RTM_DELLINK for the port: not the link.
    (["link set w-vb0 nomaster"], lambda ls: "w-vb0" in ls and ls["w-vb0"]["master"] is None),
    (
        ["addr del 192.0.2.5/24 dev w-renamed", "addr add 198.51.100.5 peer 198.51.100.6 dev w-renamed"],
        lambda ls: addresses(ls["w-renamed"]) == {"198.51.100.5/32"},  # IPv6 ones went with "down"
    ),
    (["link del w-renamed"], lambda ls: not {"w-renamed", "w-vb0"} & ls.keys()),
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
        for commands, shows in STEPS:
            subprocess.run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", text=True, check=True)
            seen = await watch.interfaces()
            if not shows({link["name"]: link for link in seen}):
                mismatches.append({"step": commands, "watch": seen})
            for _ in range(40):
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
        rebuilds = watch.rebuilds
        # After its own change a caller invalidates, and then sees even what is announced late.
        subprocess.run(["ip", "addr", "add", "2001:db8:6::6/64", "dev", "wb7", "nodad"], check=True)
        watch.invalidate()
        [late] = await watch.interfaces("wb7")
    return {
        "mismatches": mismatches,
        "rebuilds": rebuilds,
        "named": [i["name"] for i in named],
        "invalidated": sorted(addresses(late)),
    }


@pytest.fixture
def netns() -> Iterator[str]:
    with scratch_netns("watch") as name:
        in_netns(name, ["sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1"])  # no DAD churn
        ip_batch(name, ["link add w-br0 type bridge", "link set lo up"])
        yield name


def test_watch_follows_changes_without_dumping(netns: str) -> None:
    report = run_in_netns(netns, "test_linkwatch", "scenario", 8 << 20, path=[HERE])
    assert report["mismatches"] == []
    assert report["rebuilds"] == 1  # only the first read dumped
    assert report["named"] == ["wb7"]
    assert report["invalidated"] == ["2001:db8:6::6/64"]


def test_watch_rebuilds_after_overflow(netns: str) -> None:
    report = run_in_netns(netns, "test_linkwatch", "scenario", 4096, path=[HERE])  # far too small for the burst: the kernel drops
    assert report["mismatches"] == []
    assert report["rebuilds"] > 1
