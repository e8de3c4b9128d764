"""Which nftables tables changed, read from the kernel's nftables notifications.

Why: net.firewall answers with the whole ruleset, and libnftables lists 1100 rules in
~20 ms however little changed; listing one small table costs ~0.1 ms. The kernel announces
every object a transaction commits (table, chain, rule, set, element, stateful object,
flowtable) to sockets subscribed to NFNLGRP_NFTABLES, each message naming its table as
attribute 1, and ends the transaction with NFT_MSG_NEWGEN carrying the new generation id.
So the tables to list again after a change are exactly the ones named since the last
answer, and the generation announced last says whether the notices are all in.

Events keep their order, because the order of tables in a listing is the kernel's: a new
table comes last, and a table deleted and made again moves to the end.
"""

from __future__ import annotations

import errno
from typing import Literal

from ..netlink import Buffer, NetlinkError, NetlinkSocket
from .nft import FAMILIES, NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, generation_id, table_key
from .nft_text import TableView, View, joined

# include/uapi/linux/netfilter/nfnetlink.h and nf_tables.h
NFNLGRP_NFTABLES = 7
NFT_MSG_NEWTABLE = 0
NFT_MSG_DELTABLE = 2
NFT_MSG_NEWGEN = 15
NFT_MSG_DESTROYTABLE = 26  # Linux 6.3 and later

TableKey = tuple[str, str]  # family, name
Event = tuple[Literal["new", "delete", "change"], TableKey]


class RulesetWatch:
    """The nftables notifications of the daemon's network namespace (the namespace of the
    thread that constructs it). Raises OSError when the kernel offers no nftables
    notifications (nf_tables not available)."""

    def __init__(self, rcvbuf: int = 1 << 20, events: NetlinkSocket | None = None) -> None:
        """`events`, if given, is read instead of a new subscribed socket (for tests)."""
        self._events = events if events is not None else NetlinkSocket(
            NETLINK_NETFILTER, rcvbuf=rcvbuf, groups=1 << (NFNLGRP_NFTABLES - 1))
        self._pending: list[Event] = []
        self._garbled = False
        self.generation: int | None = None  # announced last; None before the first commit seen

    def close(self) -> None:
        self._events.close()

    def take(self) -> tuple[bool, list[Event]]:
        """The events announced since the last take, in order, and whether they are all of
        them: False when the kernel dropped notices because the queue was full, or one could
        not be read. Then nothing can be concluded from them; list everything again."""
        try:
            complete = self._events.read_queued(self._note)
        except NetlinkError:
            complete = False
        events, self._pending = self._pending, []
        complete, self._garbled = complete and not self._garbled, False
        return complete, events

    def _note(self, buf: Buffer, off: int, length: int, kind: int) -> None:
        if kind >> 8 != NFNL_SUBSYS_NFTABLES:
            return
        message = kind & 0xFF
        if message == NFT_MSG_NEWGEN:
            self.generation = generation_id(buf, off, length)
            self._garbled |= self.generation is None
            return
        # Attribute 1 names the table in every kind of message: NFTA_TABLE_NAME,
        # NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, ...
        key = table_key(buf, off, length)
        family = FAMILIES.get(key[0]) if key is not None else None
        if key is None or family is None:
            self._garbled = True  # a family or message this code does not know
            return
        name = key[1]
        event: Event = ("new" if message == NFT_MSG_NEWTABLE else
                        "delete" if message in (NFT_MSG_DELTABLE, NFT_MSG_DESTROYTABLE) else "change",
                        (family, name))
        if not self._pending or self._pending[-1] != event:  # a transaction of 1000 rules is one event
            self._pending.append(event)


class ListedTables:
    """net.firewall's last answer kept table by table, with the ruleset generation and the
    record version it was listed at."""

    def __init__(self, tables: list[TableView], generation: int, version: int) -> None:
        self.order = [table.key for table in tables]
        self.views = {table.key: table for table in tables}
        self.generation = generation
        self.version = version
        self._joined: View | None = None

    def stale(self, events: list[Event], also: tuple[TableKey, ...] = ()) -> list[TableKey]:
        """Apply events to the order of tables; the tables to list again, in order: those
        named by an event or in ``also``, and those showing live values (counters)."""
        named = set(also)
        for kind, key in events:
            named.add(key)
            if kind == "delete":
                if key in self.order:
                    self.order.remove(key)
            elif key not in self.order:
                self.order.append(key)
        for key in named.difference(self.order):
            self.replace(key, None)
        return [key for key in self.order if key in named or self.views.get(key, _NOT_LIVE).live]

    def replace(self, key: TableKey, table: TableView | None) -> None:
        """Put a table's new listing in place (None: the table is gone)."""
        self._joined = None
        if table is None:
            self.views.pop(key, None)
            if key in self.order:
                self.order.remove(key)
        else:
            self.views[key] = table

    def view(self) -> View:
        if self._joined is None:
            self._joined = joined(self.views[key] for key in self.order if key in self.views)
        return self._joined


_NOT_LIVE = TableView({})


def open_watch() -> tuple[RulesetWatch | None, str]:
    """A RulesetWatch, or None and the reason it could not subscribe."""
    try:
        return RulesetWatch(), ""
    except OSError as exc:
        return None, f"no nftables notifications: {errno.errorcode.get(exc.errno or 0, exc.errno)} {exc.strerror}"
