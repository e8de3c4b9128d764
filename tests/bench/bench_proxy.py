"""Proxy benchmark: calls through `osd serve --backend proxy` vs the same calls straight to the upstream.

    python tests/bench/bench_proxy.py [--links 0,100] [--requests N] [--seconds S] [--clients C] [--rounds R]

Needs root. The networking upstream is a native osd (`--rename net=mosnet`) inside a fresh
network namespace holding L veth pairs (2L links besides lo), the storage upstream a native
osd (`--rename vol=storage`) in the host's mount namespace with an empty network namespace
(so its net services leave the host alone), and the proxy a third osd in front of both.
For `net.interfaces` and `rpc.health`, alternating rounds measure sequential latency (p50,
p99; at most N requests or about S seconds, whichever is fewer) and throughput with C
concurrent keep-alive clients for S seconds, directly on the upstream's socket
(`mosnet.interfaces`) and through the proxy (`net.interfaces`), with the same client as
bench_transport.py. It prints the medians of the rounds and the ratio proxy/direct; it
never passes or fails on them. A method the upstream does not implement is measured all
the same (its -32010 reply travels the same path) and flagged in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bench_transport import Connection, concurrent, http_request, percentile, sequential  # noqa: E402
from support.daemon import REAL_DAEMON, Daemon  # noqa: E402
from support.looplab import VOL_DAEMON  # noqa: E402
from support.netlab import NetLab, short_name  # noqa: E402


def body(method: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method}).encode()


async def once(path: str, request: bytes) -> dict:
    conn = await Connection.open(path)
    try:
        return json.loads(await conn.roundtrip(http_request(request)))
    finally:
        conn.close()


def how_many(path: str, request: bytes, args: argparse.Namespace) -> int:
    """Sequential requests for one round: --requests, or fewer when each call is slow (large namespaces)."""
    started = time.perf_counter()
    for _ in range(3):
        asyncio.run(once(path, request))
    each = (time.perf_counter() - started) / 3
    return max(20, min(args.requests, int(args.seconds / each)))


def measure(paths: dict[str, str], methods: dict[str, str], args: argparse.Namespace) -> dict:
    results = {(m, w): {"p50": [], "p99": [], "rps": []} for m in methods for w in paths}
    notes = {}
    counts = {m: how_many(paths["direct"], body(n), args) for m, n in methods.items()}
    for _ in range(args.rounds):
        for method, upstream_name in methods.items():
            for way, path in paths.items():
                name = method if way == "proxy" else upstream_name
                reply = asyncio.run(once(path, body(name)))
                samples = asyncio.run(sequential(path, counts[method], body(name)))
                if "error" in reply:
                    notes[(method, way)] = f"answers error {reply['error']['code']}: {reply['error']['message']}"
                elif method == "net.interfaces":
                    notes[(method, way)] = f"{len(reply['result'])} interfaces"
                cell = results[(method, way)]
                cell["p50"].append(statistics.median(samples) * 1000)
                cell["p99"].append(percentile(samples, 0.99) * 1000)
                cell["rps"].append(asyncio.run(concurrent(path, args.clients, args.seconds, body(name))))
    return {k: {s: statistics.median(v) for s, v in cell.items()} for k, cell in results.items()}, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", default="0,100", help="veth pairs in the networking namespace, comma-separated")
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per round")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each concurrent round")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_proxy.py needs root (it builds a network namespace)")
    # SIGTERM unwinds like ^C, so the daemons and the namespace are torn down
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    print(f"medians of {args.rounds} rounds: sequential up to {args.requests} requests or about "
          f"{args.seconds:g} s (p50, p99), {args.clients} keep-alive clients for {args.seconds:g} s (req/s)")
    print(f"{'links':>5} {'method':16} {'way':6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  ratio proxy/direct")
    for links in (int(n) for n in args.links.split(",")):
        with NetLab() as lab:
            ns = lab.netns("bench")
            for _ in range(links):
                ns.ip("link", "add", short_name("bv"), "type", "veth", "peer", "name", short_name("bp"))
            with Daemon(REAL_DAEMON, args=["--rename", "net=mosnet"], netns=ns.name) as net, \
                    Daemon(VOL_DAEMON, args=["--rename", "vol=storage"]) as vol, \
                    Daemon(REAL_DAEMON, args=["--backend", "proxy", "--upstream-net", net.socket,
                                              "--upstream-vol", vol.socket]) as proxy:
                paths = {"direct": net.socket, "proxy": proxy.socket}
                methods = {"net.interfaces": "mosnet.interfaces", "rpc.health": "rpc.health"}
                med, notes = measure(paths, methods, args)
        for method in methods:
            d, p = med[(method, "direct")], med[(method, "proxy")]
            for way, m in (("direct", d), ("proxy", p)):
                ratio = (f"p50 {p['p50'] / d['p50']:.2f}x, throughput {p['rps'] / d['rps']:.2f}x"
                         if way == "proxy" else "")
                print(f"{links * 2:5d} {method:16} {way:6} {m['rps']:8.0f} {m['p50']:8.3f} {m['p99']:8.3f}  {ratio}")
            note = notes.get((method, "direct"))
            if note:
                print(f"{'':5} {method} {note}")


if __name__ == "__main__":
    main()
