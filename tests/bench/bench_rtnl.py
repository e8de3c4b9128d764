"""Micro-benchmark: osd's rtnl.interfaces() against `ip -j addr show` and pyroute2.

Not a test: it prints medians and never asserts timing (the machine is shared and noisy).
Run as root from the repository root:
    python tests/bench/bench_rtnl.py [--runs 21] [--sizes 10,100,1000,2000]

For each size it builds a fresh namespace with that many veth links (size/2 pairs, all
down), each holding one IPv6 address from 2001:db8::/32 (the documentation ranges have too
few IPv4 addresses for 2000 links), with one `ip -batch`. It then re-runs itself inside
the namespace (`ip netns exec`), because a netlink socket belongs to the namespace of the
thread that creates it, and times, as the median of --runs runs:
  ip        `ip -j addr show` as a subprocess (what a shell user pays)
  pyroute2  AsyncIPRoute: get_links() + get_addr(), every message received
  osd       Rtnl.interfaces() + json.dumps of the result, on a kept socket (the daemon's
            case); also split into its parts, and on a new socket per call.
  watch     InterfaceWatch.interfaces() + json.dumps: answered from notifications, no
            dump per call (the kernel's own dump work is most of "osd query").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from osd.backends.native import linkwatch, rtnl  # noqa: E402  (after the sys.path line)
from support.netlab import ip_batch, scratch_netns  # noqa: E402


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def timed(runs: int, action: Callable[[], Awaitable[Any]]) -> float:
    await action()  # warm-up: imports, socket buffers, decoder templates
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - start)
    return median_ms(samples)


async def inner(runs: int) -> dict[str, float]:
    """Measure inside the namespace this process was started in."""
    from pyroute2 import AsyncIPRoute

    def run_ip() -> None:
        subprocess.run(["ip", "-j", "addr", "show"], stdout=subprocess.DEVNULL, check=True)

    async def ip() -> None:
        run_ip()  # blocking on purpose: nothing else runs, and a thread would add noise

    result: dict[str, float] = {"ip": await timed(runs, ip)}
    async with AsyncIPRoute() as ipr:

        async def pyroute2() -> None:
            [m async for m in await ipr.get_links()]
            [m async for m in await ipr.get_addr()]

        result["pyroute2"] = await timed(max(3, runs // 4), pyroute2)

    async with rtnl.Rtnl() as nl:
        found: list[dict[str, Any]] = []

        async def osd() -> None:
            json.dumps(await nl.interfaces())

        async def osd_query() -> None:
            found[:] = await nl.interfaces()

        async def osd_json() -> None:
            json.dumps(found)

        result["osd"] = await timed(runs, osd)
        result["osd query"] = await timed(runs, osd_query)
        result["osd json"] = await timed(runs, osd_json)
        result["links"] = len(found)
        result["addresses"] = sum(len(link["addresses"]) for link in found)

    async def osd_new_socket() -> None:
        json.dumps(await rtnl.interfaces())

    result["osd new socket"] = await timed(runs, osd_new_socket)

    async with linkwatch.InterfaceWatch() as watch:

        async def watched() -> None:
            json.dumps(await watch.interfaces())

        result["watch"] = await timed(runs, watched)
    return result


def build(netns: str, links: int) -> None:
    commands = []
    for pair in range(links // 2):
        commands.append(f"link add bva{pair} type veth peer name bvb{pair}")
        commands.append(f"addr add 2001:db8:{pair:x}:a::1/64 dev bva{pair} nodad")
        commands.append(f"addr add 2001:db8:{pair:x}:b::1/64 dev bvb{pair} nodad")
    ip_batch(netns, commands)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--sizes", default="10,100,1000,2000")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(asyncio.run(inner(args.runs))))
        return

    print(f"median of {args.runs} runs (pyroute2: of {max(3, args.runs // 4)}), milliseconds")
    columns = ("ip", "pyroute2", "osd", "osd query", "osd json", "osd new socket", "watch")
    ratios = ("osd/ip", "watch/ip", "pyroute2/ip")
    print(f"{'links':>6} {'addrs':>6} " + " ".join(f"{c:>14}" for c in columns + ratios))
    for size in (int(s) for s in args.sizes.split(",")):
        with scratch_netns("bench") as netns:
            build(netns, size)
            argv = ["ip", "netns", "exec", netns, sys.executable, __file__, "--inner", "--runs", str(args.runs)]
            r = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
        cells = [f"{r[c]:>14.2f}" for c in columns] + [f"{r[c.split('/')[0]] / r['ip']:>14.2f}" for c in ratios]
        print(f"{r['links']:>6} {r['addresses']:>6} " + " ".join(cells))


if __name__ == "__main__":
    main()
