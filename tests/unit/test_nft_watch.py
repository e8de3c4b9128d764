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


def test_notices_name_their_tables_and_announce_the_generation(fed: tuple[RulesetWatch, socket.socket]) -> None:
    watch, kernel = fed
    assert watch.take() == (True, set()) and watch.generation is None
    kernel.send(named(NEWTABLE, IP, "t1") + named(NEWCHAIN, IP, "t1") + named(NEWRULE, IP, "t1"))
    kernel.send(named(NEWRULE, IP, "t1") + named(NEWRULE, INET, "osd") + generation(41))
    kernel.send(named(DELRULE, NETDEV, "nd") + named(DELTABLE, NETDEV, "nd") + generation(42))
    assert watch.take() == (True, {("ip", "t1"), ("inet", "osd"), ("netdev", "nd")})
    assert watch.generation == 42
    assert watch.take() == (True, set())


def test_a_notice_it_cannot_read_makes_the_events_incomplete(fed: tuple[RulesetWatch, socket.socket]) -> None:
    watch, kernel = fed
    kernel.send(named(NEWRULE, 99, "odd") + named(NEWRULE, IP, "t1"))  # a family nft has no name for
    assert watch.take() == (False, {("ip", "t1")})
    kernel.send(notice(NEWRULE, IP))  # no table attribute
    assert watch.take()[0] is False
    kernel.send(named(NEWRULE, IP, "t1")[:-4])  # truncated
    assert watch.take()[0] is False
    kernel.send(struct.pack("=IHHII", 20, (11 << 8) | 0, 0, 0, 0) + b"\0" * 4)  # another subsystem: ignored
    assert watch.take() == (True, set())


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


def test_listed_tables_follow_the_kernels_tables_and_relist_what_was_named() -> None:
    listed = ListedTables(table_views(LISTING, frozenset({"fw-1"})), generation=7, version=1)
    osd, t1, t2, t3 = ("inet", "osd"), ("ip", "t1"), ("inet", "t2"), ("ip", "t3")
    assert listed.order == [osd, t1, t2]
    first = listed.view()
    # t1 shows a counter: it is listed again even when nothing names it
    assert listed.stale([osd, t1, t2], set()) == [t1]
    assert listed.stale([osd, t1, t2], {osd}) == [osd, t1] and listed.view() is first
    # the kernel's order wins (osd made again comes last); a new table is listed, a gone one leaves
    assert listed.stale([t1, osd, t3], set()) == [t1, t3]
    assert [t["name"] for t in listed.view()["tables"]] == ["t1", "osd"]  # t3 not listed yet
    new = table_views("table ip t3 { # handle 9\n}\n", frozenset())[0]
    listed.replace(t3, new)
    listed.replace(t1, None)  # gone by the time it was listed
    view = listed.view()
    assert [t["name"] for t in view["tables"]] == ["osd", "t3"] and listed.order == [osd, t3]
    assert [r["handle"] for r in view["rules"]] == [2] and view is listed.view()  # kept until the next change
    assert t2 not in listed.views
