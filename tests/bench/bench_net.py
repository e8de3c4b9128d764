"""net.* through the daemon against the system tool that shows the same thing, same namespace, same run.

    python tests/bench/bench_net.py [--sections interfaces,...] [--runs 21] [--sizes 10,100,1000,2000]
                                    [--rules 1000] [--adds 100]

Run as root. Each section is a function registered with @section(NAME): it builds what it
needs in namespaces it creates (NetLab, torn down after), runs the real daemon inside one
(Daemon(REAL_DAEMON, netns=...)), calls it from outside over its socket with a keep-alive
client, and prints medians and ratios against its reference measured in the same run.
It prints figures and never passes or fails on them. To add a section, write a function
taking the parsed arguments and decorate it; `--sections` picks which run (default: all).

Sections:
  interfaces  net.interfaces vs `ip -j addr show`, on namespaces with 10, 100, 1000 and
              2000 veth links (size/2 pairs, down), each holding one IPv6 address from
              2001:db8::/32 (the IPv4 documentation ranges are too small), built with one
              `ip -batch`. The daemon's time is a whole call: request, work, JSON, reply
              read in full. `ip` is a subprocess (`ip -n NS`), as a shell user pays it.
  firewall    net.firewall.add_rule: --rules input rules added through the API, then
              --adds more, timed (whole call: HTTP, validation, the record written with
              its two fsyncs, one nft transaction), against the same number of single
              `nft add rule` commands on the same table afterwards. net.firewall on the
              resulting --rules + --adds rules against `nft -j list ruleset`, both read in
              full, not decoded: on an unchanged ruleset (the daemon answers from its
              listing of the same generation); right after a change elsewhere (a new
              empty table added with nft, outside the timing: the daemon lists that table
              alone); and right after a change in its own table (one more rule added
              through the API, outside the timing: the daemon lists its whole table, which
              holds nearly every rule here); the four are interleaved run by run, so load
              from elsewhere hits all alike. The first net.firewall, which lists every
              table, is timed once and shown in the title.
              nft runs in the namespace through `nsenter --net`, whose own cost is shown.
              Also net.firewall.remove_rule on the full table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]

from bench_transport import Connection, http_request  # noqa: E402  (after the sys.path line)
from support.daemon import REAL_DAEMON, Daemon  # noqa: E402
from support.netlab import NetLab, Netns, ip_batch  # noqa: E402

Section = Callable[[argparse.Namespace], None]
SECTIONS: dict[str, Section] = {}


def section(name: str) -> Callable[[Section], Section]:
    """Register a benchmark section under ``name`` (the order of registration is the run order)."""
    def register(fn: Section) -> Section:
        SECTIONS[name] = fn
        return fn

    return register


# ---------------------------------------------------------------- shared helpers
def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(runs: int, action: Callable[[], Any]) -> float:
    """Median wall time of ``action`` in ms over ``runs`` runs, after one warm-up run."""
    action()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return median_ms(samples)


@contextmanager
def daemon_in(ns: Netns) -> Iterator[Daemon]:
    """The real daemon running inside ``ns``, its socket reachable from here."""
    with Daemon(REAL_DAEMON, netns=ns.name) as daemon:
        yield daemon


class Caller:
    """One keep-alive connection to a daemon; call() returns the raw reply body."""

    def __init__(self, socket_path: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(Connection.open(socket_path))
        self.ids = 0

    def call(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        self.ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params or {}}).encode()
        return self.loop.run_until_complete(self.conn.roundtrip(http_request(body)))

    def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        reply = json.loads(self.call(method, params))
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        self.conn.close()
        self.loop.close()


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    print(title)
    print(" ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print(" ".join(f"{v:>12.2f}" if isinstance(v, float) else f"{v:>12}" for v in row))
    print()


# ---------------------------------------------------------------- sections
def build_veths(ns: Netns, links: int) -> None:
    commands = []
    for pair in range(links // 2):
        commands += [f"link add bn{pair}a type veth peer name bn{pair}b",
                     f"addr add 2001:db8:{pair:x}:a::1/64 dev bn{pair}a nodad",
                     f"addr add 2001:db8:{pair:x}:b::1/64 dev bn{pair}b nodad"]
    ip_batch(ns.name, commands)


@section("interfaces")
def interfaces(args: argparse.Namespace) -> None:
    rows = []
    for size in args.sizes:
        with NetLab() as lab:
            ns = lab.netns("bench")
            build_veths(ns, size)
            with daemon_in(ns) as daemon:
                caller = Caller(daemon.socket)
                try:
                    start = time.perf_counter()
                    found = caller.result("net.interfaces")
                    first = (time.perf_counter() - start) * 1000
                    shown = ns.ip_json("addr", "show")
                    assert len(found) == len(shown), (len(found), len(shown))
                    ip_ms = timed(args.runs, lambda: subprocess.run(
                        ["ip", "-n", ns.name, "-j", "addr", "show"], stdout=subprocess.DEVNULL, check=True))
                    osd_ms = timed(args.runs, lambda: caller.call("net.interfaces"))
                finally:
                    caller.close()
        addresses = sum(len(link["addresses"]) for link in found)
        rows.append([len(found), addresses, ip_ms, osd_ms, osd_ms / ip_ms, first])
    table(f"net.interfaces vs ip -j addr show: median of {args.runs} runs, ms",
          ["links", "addresses", "ip", "osd", "osd/ip", "osd first"], rows)


@section("firewall")
def firewall(args: argparse.Namespace) -> None:
    with NetLab() as lab:
        ns = lab.netns("bench")
        nsenter = ["nsenter", f"--net=/run/netns/{ns.name}"]

        def nft(*argv: str) -> None:
            subprocess.run([*nsenter, "nft", *argv], stdout=subprocess.DEVNULL, check=True)

        with daemon_in(ns) as daemon:
            caller = Caller(daemon.socket)
            try:
                ports = iter(range(1, 65536))

                def add() -> None:
                    caller.result("net.firewall.add_rule", {"port": next(ports), "proto": "tcp"})

                for _ in range(args.rules):
                    add()
                add_ms = timed(args.adds - 1, add)  # its warm-up run is one of the adds
                total = args.rules + args.adds
                start = time.perf_counter()  # the first call lists every table: one sample only
                rules = caller.result("net.firewall")["rules"]
                first_ms = (time.perf_counter() - start) * 1000
                assert len(rules) == total, (len(rules), total)

                # Interleaved, so that load from other work on the machine hits all alike.
                samples: dict[str, list[float]] = {"nft": [], "same": [], "elsewhere": [], "own": [], "nsenter": []}
                nft("-j", "list", "ruleset"), caller.call("net.firewall")  # warm-up
                for run in range(args.runs):
                    samples["nft"].append(_timed_once(lambda: nft("-j", "list", "ruleset")))
                    samples["same"].append(_timed_once(lambda: caller.call("net.firewall")))
                    nft("add", "table", "inet", f"bench{run}")  # another table: the daemon lists it alone
                    samples["elsewhere"].append(_timed_once(lambda: caller.call("net.firewall")))
                    add()  # its own table: the daemon lists that table again
                    samples["own"].append(_timed_once(lambda: caller.call("net.firewall")))
                    samples["nsenter"].append(_timed_once(lambda: subprocess.run([*nsenter, "true"], check=True)))
                total += args.runs
                nft_ms, warm_ms, other_ms, own_ms, enter_ms = (median_ms(samples[k]) for k in samples)
                ids = [caller.result("net.firewall.add_rule", {"port": port, "proto": "udp"})["id"]
                       for port in range(1, 21)]
                remove_ms = median_ms([_timed_once(lambda i=i: caller.result("net.firewall.remove_rule", {"id": i}))
                                       for i in ids])
                cli_ports = iter(range(1, 65536))
                cli_ms = timed(args.adds - 1, lambda: nft("add", "rule", "inet", "osd", "input", "udp", "dport",
                                                          str(next(cli_ports)), "accept"))
            finally:
                caller.close()
    table(f"net.firewall.add_rule on a {args.rules}-rule table: median of {args.adds} adds, ms",
          ["osd add", "nft add", "osd/nft", "osd remove"], [[add_ms, cli_ms, add_ms / cli_ms, remove_ms]])
    table(f"net.firewall vs nft -j list ruleset, up to {total} rules: median of {args.runs} runs, ms "
          f"(nsenter alone {enter_ms:.2f} ms, included in nft; the daemon's first call, one sample: "
          f"{first_ms:.2f} ms)",
          ["nft -j", "osd same gen", "osd after other", "osd after own", "same/nft", "other/nft", "own/nft"],
          [[nft_ms, warm_ms, other_ms, own_ms, warm_ms / nft_ms, other_ms / nft_ms, own_ms / nft_ms]])


def _timed_once(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--sizes", default="10,100,1000,2000", type=lambda s: [int(n) for n in s.split(",")])
    parser.add_argument("--rules", type=int, default=1000, help="firewall: rules in the table before timing adds")
    parser.add_argument("--adds", type=int, default=100, help="firewall: adds timed (the table grows by as many)")
    args = parser.parse_args()
    for name in args.sections.split(","):
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r} (known: {', '.join(SECTIONS)})")
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
