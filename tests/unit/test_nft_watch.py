"""nftables notifications to table events (RulesetWatch, fed by a fake kernel on a datagram
socketpair) and the kept net.firewall answer they update (ListedTables)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from osd.backends.native.net.nft_text import table_views
from osd.backends.native.net.nft_watch import ListedTables, RulesetWatch
from osd.backends.native.netlink import NetlinkSocket, attr

NEWTABLE, DELTABLE, NEWCHAIN, NEWRULE, DELRULE, NEWGEN = 0, 2, 3, 6, 8, 15
INET, IP, NETDEV = 1, 2, 5


def notice(message: int, family: int, *attrs: bytes) -> bytes:
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (10 << 8) | message, 0, 0, 0) + body


def named(message: int, family: int, table: str) -> bytes:
    return notice(message, family, attr(1, table.encode() + b"\0"))


def generation(gen_id: int) -> bytes:
    return notice(NEWGEN, 0, attr(1, struct.pack(">I", gen_id)), attr(2, struct.pack(">I", 1234)))


@pytest.fixture
def fed() -> Iterator[tuple[RulesetWatch, socket.socket]]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    watch = RulesetWatch(events=NetlinkSocket(sock=ours))
    yield watch, kernel
    watch.close()
    kernel.close()


def test_notices_become_ordered_table_events_and_the_generation(fed: tuple[RulesetWatch, socket.socket]) -> None:
    watch, kernel = fed
    assert watch.take() == (True, []) and watch.generation is None
    kernel.send(named(NEWTABLE, IP, "t1") + named(NEWCHAIN, IP, "t1") + named(NEWRULE, IP, "t1"))
    kernel.send(named(NEWRULE, IP, "t1") + named(NEWRULE, INET, "osd") + generation(41))
    kernel.send(named(DELRULE, NETDEV, "nd") + named(DELTABLE, NETDEV, "nd") + generation(42))
    assert watch.take() == (True, [("new", ("ip", "t1")), ("change", ("ip", "t1")), ("change", ("inet", "osd")),
                                   ("change", ("netdev", "nd")), ("delete", ("netdev", "nd"))])
    assert watch.generation == 42
    assert watch.take() == (True, [])


def test_a_notice_it_cannot_read_makes_the_events_incomplete(fed: tuple[RulesetWatch, socket.socket]) -> None:
    watch, kernel = fed
    kernel.send(named(NEWRULE, 99, "odd") + named(NEWRULE, IP, "t1"))  # a family nft has no name for
    assert watch.take() == (False, [("change", ("ip", "t1"))])
    kernel.send(notice(NEWRULE, IP))  # no table attribute
    assert watch.take()[0] is False
    kernel.send(named(NEWRULE, IP, "t1")[:-4])  # truncated
    assert watch.take()[0] is False
    kernel.send(struct.pack("=IHHII", 20, (11 << 8) | 0, 0, 0, 0) + b"\0" * 4)  # another subsystem: ignored
    assert watch.take() == (True, [])


LISTING = """table inet osd { # handle 1
\tchain input { # handle 1
\t\ttype filter hook input priority 0; policy accept;
\t\ttcp dport 22 accept comment "fw-1" # handle 2
\t}
}
table ip t1 { # handle 2
\tchain c { # handle 1
\t\tudp dport 53 counter packets 3 bytes 180 accept # handle 2
\t}
}
table inet t2 { # handle 3
}
"""


def test_listed_tables_follow_events_in_the_kernels_order() -> None:
    listed = ListedTables(table_views(LISTING, frozenset({"fw-1"})), generation=7, version=1)
    assert listed.order == [("inet", "osd"), ("ip", "t1"), ("inet", "t2")]
    # t1 shows a counter: it is listed again even when nothing names it
    assert listed.stale([]) == [("ip", "t1")]
    assert listed.stale([], also=(("inet", "osd"),)) == [("inet", "osd"), ("ip", "t1")]
    # deleted and made again: it moves to the end; a new table comes last
    stale = listed.stale([("delete", ("inet", "osd")), ("new", ("inet", "osd")), ("new", ("ip", "t3"))])
    assert listed.order == [("ip", "t1"), ("inet", "t2"), ("inet", "osd"), ("ip", "t3")]
    assert stale == [("ip", "t1"), ("inet", "osd"), ("ip", "t3")]
    # a deleted table leaves the answer at once
    assert listed.stale([("change", ("inet", "t2")), ("delete", ("inet", "t2"))]) == [("ip", "t1")]
    assert [t["name"] for t in listed.view()["tables"]] == ["t1", "osd"]  # t3 not listed yet
    new = table_views("table ip t3 { # handle 9\n}\n", frozenset())[0]
    listed.replace(("ip", "t3"), new)
    listed.replace(("ip", "t1"), None)
    view = listed.view()
    assert [t["name"] for t in view["tables"]] == ["osd", "t3"] and listed.order == [("inet", "osd"), ("ip", "t3")]
    assert [r["handle"] for r in view["rules"]] == [2] and view is listed.view()  # kept until the next change
