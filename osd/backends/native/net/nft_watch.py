"""Which nftables tables changed, read from the kernel's nftables notifications.

Why: net.firewall answers with the whole ruleset, and libnftables lists 1100 rules in
~20 ms however little changed; listing one small table costs ~0.1 ms. The kernel announces
every object a transaction commits (table, chain, rule, set, element, stateful object,
flowtable) to sockets subscribed to NFNLGRP_NFTABLES, each message naming its table as
attribute 1, and ends the transaction with NFT_MSG_NEWGEN carrying the new generation id.
So the tables to list again after a change are the ones named since the last answer, and
the generation announced last says whether the notices are all in.

Which tables exist, and in what order, is not taken from the notices but from a dump of
the tables at every answer (~0.1 ms): the kernel also drops tables without announcing
it (a table owned by a process that exits), and the order of a listing is the kernel's.
"""

from __future__ import annotations

import errno
from ..netlink import Buffer, NetlinkError, NetlinkSocket
from .nft import FAMILIES, NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, generation_id, table_key
from .nft_text import TableView, View, joined

# include/uapi/linux/netfilter/nfnetlink.h and nf_tables.h
NFNLGRP_NFTABLES = 7
NFT_MSG_NEWGEN = 15

TableKey = tuple[str, str]  # family, name


class RulesetWatch:
    """The nftables notifications of the daemon's network namespace (the namespace of the
    thread that constructs it). Raises OSError when the kernel offers no nftables
    notifications (nf_tables not available)."""

    def __init__(self, rcvbuf: int = 1 << 20, events: NetlinkSocket | None = None) -> None:
        """`events`, if given, is read instead of a new subscribed socket (for tests)."""
        self._events = events if events is not None else NetlinkSocket(
            NETLINK_NETFILTER, rcvbuf=rcvbuf, groups=1 << (NFNLGRP_NFTABLES - 1))
        self._named: set[TableKey] = set()
        self._garbled = False
        self.generation: int | None = None  # announced last; None before the first commit seen

    def close(self) -> None:
        self._events.close()

    def take(self) -> tuple[bool, set[TableKey]]:
        """The tables named since the last take, and whether the notices are all there:
        False when the kernel dropped some because the queue was full, or one could not be
        read. Then nothing can be concluded from them; list everything again."""
        try:
            complete = self._events.read_queued(self._note)
        except NetlinkError:
            complete = False
        named, self._named = self._named, set()
        complete, self._garbled = complete and not self._garbled, False
        return complete, named

    def _note(self, buf: Buffer, off: int, length: int, kind: int) -> None:
        if kind >> 8 != NFNL_SUBSYS_NFTABLES:
            return
        if kind & 0xFF == NFT_MSG_NEWGEN:
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
        self._named.add((family, key[1]))


class ListedTables:
    """net.firewall's last answer kept table by table, with the ruleset generation and the
    record version it was listed at."""

    def __init__(self, tables: list[TableView], generation: int, version: int) -> None:
        self.order = [table.key for table in tables]
        self.views = {table.key: table for table in tables}
        self.generation = generation
        self.version = version
        self._joined: View | None = None

    def stale(self, order: list[TableKey], named: set[TableKey] | frozenset[TableKey]) -> list[TableKey]:
        """Take the kernel's current tables, in its order; the tables to list again, in that
        order: those named, those not listed yet, and those showing live values (counters).
        Tables no longer there leave the answer."""
        if order != self.order:
            self._joined = None
            self.order = list(order)
            for key in set(self.views).difference(order):
                del self.views[key]
        return [key for key in order if key in named or key not in self.views or self.views[key].live]

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


def open_watch() -> tuple[RulesetWatch | None, str]:
    """A RulesetWatch, or None and the reason it could not subscribe."""
    try:
        return RulesetWatch(), ""
    except OSError as exc:
        return None, f"no nftables notifications: {errno.errorcode.get(exc.errno or 0, exc.errno)} {exc.strerror}"
