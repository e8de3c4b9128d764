"""net.firewall and net.nat.*: the daemon's own nftables table, recorded and reconciled.

Everything lives in table ``inet osd`` (see nft_model); the daemon never touches another
table. Entries are recorded in the state file ``netfilter.json`` before they are applied
(and the record rolled back when the kernel refuses), so the record is what the table
should hold. At start the table is compared with the record and, when anything differs
(the table was flushed or deleted, a rule edited, the input policy changed in the
config), replaced by the complete expected table in one transaction. Later differences
are reported by ``drift()`` (net.verify) and repaired at the next start, or by the next
write that finds the table gone.

Every write method is one nftables transaction and runs under one lock, so concurrent
calls see each other's records. Adds never list the ruleset (a new rule is one ~0.5 ms
transaction); removes list only the chains that can hold the id, and delete by handle.

net.firewall keeps its last answer table by table, with the ruleset generation it was
listed at and the version of the record. The kernel's nftables notifications (nft_watch)
name every table a transaction touched, so a later call lists again only those tables,
the daemon's own when the record changed, and tables showing counters or quotas (values
traffic changes without a new generation); the rest of the answer is reused. When the
notifications are incomplete (the queue overflowed, or the newest generation is not yet
announced) or cannot be had, the whole ruleset is listed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
from typing import Any

from ....config import Config
from ....errors import Conflict, InvalidParams, KernelError, NotSupported
from ....methods import net
from ....state import StateError, StateFile
from ..impl import Implementations, Service
from .kernel import errno_of
from .nft import Nft
from .nft_listing import Listing, drift, present
from .nft_model import (
    FAMILY, TABLE, Dnat, Entry, FirewallRule, Snat, add_rule, delete_rule, from_record, rebuild, table_ref,
)
from .nft_text import TableView, ruleset_view, table_views
from .nft_watch import ListedTables, RulesetWatch, TableKey, open_watch
from .sysctl import forwarding

log = logging.getLogger("osd.net.firewall")
implements = Implementations()

_PLAIN_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_./-]*")  # what nft's scanner reads as one word
SECTIONS: dict[str, type[Entry]] = {"firewall": FirewallRule, "dnat": Dnat, "snat": Snat}


class _Unlistable(Exception):
    """A table net.firewall cannot list on its own; the whole ruleset is listed instead."""


class NetfilterService(Service):
    """Firewall input rules, DNAT and SNAT in table inet osd."""

    namespace = "net"
    implementations = implements

    def __init__(self, config: Config) -> None:
        self._policy = config.net.input_policy
        self._state = StateFile(config.server.state_dir, "netfilter")
        self._entries: dict[str, Entry] = {}
        self._lock = asyncio.Lock()
        self._nft: Nft | None = None
        self._unavailable = ""
        self._reconciled = "not run"
        self._version = 0  # bumped whenever self._entries changes
        self._watch: RulesetWatch | None = None
        self._no_watch = ""
        self._listed: ListedTables | None = None
        self._listing = asyncio.Lock()  # one net.firewall brings the kept answer up to date at a time
        self.listings = {"ruleset": 0, "table": 0}  # how net.firewall listed; shown in net.health

    # ------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Load the record (StateError stops start-up) and make the kernel match it."""
        self._entries = self._load()
        try:
            self._nft = Nft()
        except NotSupported as exc:
            self._unavailable = exc.data["reason"] if exc.data else exc.message
            log.error("firewall and NAT unavailable: %s", self._unavailable)
            return
        self._watch, self._no_watch = open_watch()  # subscribed before anything is listed
        if self._watch is None:
            log.warning("net.firewall lists the whole ruleset on every call: %s", self._no_watch)
        try:
            await self._reconcile()
        except KernelError as exc:
            self._reconciled = f"failed: {exc.message} {exc.data.get('detail', '') if exc.data else ''}".strip()
            log.error("could not restore table %s %s: %s", FAMILY, TABLE, self._reconciled)

    async def close(self) -> None:
        # The table stays: a daemon restart must not open or close the firewall.
        if self._nft is not None:
            await self._nft.close()
        if self._watch is not None:
            self._watch.close()

    async def health(self) -> dict[str, Any]:
        if self._nft is None:
            return {"ok": False, "status": "failed", "reason": self._unavailable}
        return {"ok": True, "status": "ok"}

    async def checks(self) -> list[dict[str, Any]]:
        if self._nft is None:
            return [{"name": "nftables", "ok": False, "detail": self._unavailable}]
        counts = ", ".join(f"{sum(isinstance(e, cls) for e in self._entries.values())} {name}"
                           for name, cls in SECTIONS.items())
        listing = (f"net.firewall lists changed tables only (so far the whole ruleset {self.listings['ruleset']} "
                   f"times, single tables {self.listings['table']} times)" if self._watch is not None else
                   f"net.firewall lists the whole ruleset every time ({self._no_watch})")
        return [{"name": "nftables", "ok": True,
                 "detail": f"table {FAMILY} {TABLE}: {counts}; input policy {self._policy}; {listing}"},
                {"name": "nftables start-up reconcile", "ok": not self._reconciled.startswith("failed"),
                 "detail": self._reconciled}]

    async def drift(self) -> list[dict[str, Any]]:
        """Recorded entries (and the table's own chains and base rules) against the kernel."""
        if self._nft is None:
            return [{"kind": "nft-table", "name": f"{FAMILY} {TABLE}", "expected": "present",
                     "actual": f"cannot be read: {self._unavailable}"}] if self._entries else []
        return drift(self._policy, list(self._entries.values()), await self._list_table())

    # ------------------------------------------------------------ read methods
    @implements(net.FIREWALL)
    async def firewall(self) -> dict[str, Any]:
        """The whole ruleset (every table, chain and rule), the daemon's marked ``managed``."""
        nft = self._require()
        async with self._listing:
            # The generation is read before the notices are taken, and the tables are
            # dumped and listed after both: a change committed in between is in the
            # listing, and its notices make the next call list its tables again.
            generation, version = await nft.generation(), self._version
            complete, named = self._watch.take() if self._watch is not None else (False, set())
            listed, self._listed = self._listed, None  # kept again only once up to date
            announced = self._watch.generation if self._watch is not None else None
            try:
                if (listed is None or not complete
                        or (generation != listed.generation and (announced is None or announced < generation))):
                    return await self._list_ruleset(generation, version)
                if version != listed.version:
                    named.add((FAMILY, TABLE))
                for key in listed.stale(await self._tables(), named):
                    listed.replace(key, await self._list_one(key))
                    self.listings["table"] += 1
            except _Unlistable:
                return await self._list_ruleset(generation, version, table_by_table=False)
            listed.generation, listed.version = generation, version
            self._listed = listed
            return listed.view()

    async def _list_ruleset(self, generation: int, version: int, *, table_by_table: bool = True) -> dict[str, Any]:
        """The whole ruleset, table by table: libnftables' ``list ruleset`` costs about 6 ms
        more per table when 1100 rules are elsewhere (21 tables: 140 ms against 18 ms for
        the one with the rules; measured on the development VM), ``list table`` does not.
        Tables are not one snapshot then; a change made meanwhile is announced, and the next
        call lists its tables again. ``list ruleset`` remains for a table that cannot be
        listed on its own."""
        self.listings["ruleset"] += 1
        tables: list[TableView] | None = None
        if table_by_table:
            try:
                tables = [table for key in await self._tables() if (table := await self._list_one(key)) is not None]
            except _Unlistable:
                pass
        if tables is None:
            text = await self._require().text("list ruleset", "list ruleset")
            try:
                tables = table_views(text, frozenset(self._entries))
            except ValueError as exc:
                raise KernelError(errno.EPROTO, "list ruleset", str(exc)) from exc
        self._listed = ListedTables(tables, generation, version)
        return self._listed.view()

    async def _tables(self) -> list[TableKey]:
        """Every table, in the kernel's order; raises _Unlistable for a family nft has no
        name for, KernelError."""
        try:
            return await self._require().tables()
        except KeyError as exc:
            raise _Unlistable(str(exc)) from exc

    async def _list_one(self, key: TableKey) -> TableView | None:
        """One table's view, None when the table is gone. Raises _Unlistable for a table that
        cannot be listed on its own (a name the command line cannot quote, a listing this
        code cannot read), KernelError."""
        family, name = key
        if not _PLAIN_NAME.fullmatch(name):  # nft 1.0.6 takes no quoted table name here
            raise _Unlistable(name)
        try:
            text = await self._require().text(f"list table {family} {name}", f"list table {family} {name}")
        except KernelError as exc:
            if errno_of(exc) == errno.ENOENT:
                return None
            if errno_of(exc) == errno.EINVAL:  # e.g. a name nft's parser takes otherwise
                raise _Unlistable(name) from exc
            raise
        try:
            tables = table_views(text, frozenset(self._entries))
        except ValueError as exc:
            raise _Unlistable(name) from exc
        if len(tables) != 1 or tables[0].key != key:
            raise _Unlistable(name)
        return tables[0]

    @implements(net.NAT_STATUS)
    async def nat_status(self) -> dict[str, Any]:
        """Forwarding sysctls and input policy, and every recorded DNAT and SNAT entry with
        whether its rules are in the kernel."""
        listing = await self._list_table()
        found = present(listing)

        def described(cls: type[Entry]) -> list[dict[str, Any]]:
            return [{**entry.describe(), "present": all((chain, entry.id) in found for chain, _ in entry.placements())}
                    for entry in self._entries.values() if isinstance(entry, cls)]

        return {**forwarding(), "input_policy": self._policy, "table": f"{FAMILY} {TABLE}",
                "table_present": listing is not None, "dnat": described(Dnat), "snat": described(Snat)}

    # ------------------------------------------------------------ write methods
    @implements(net.FIREWALL_ADD_RULE)
    async def add_rule(self, port: int | str, proto: str, source: str | None = None, interface: str | None = None,
                       family: str | None = None, comment: str | None = None) -> dict[str, Any]:
        """Accept inbound traffic to a port; idempotent by content (same rule: same id,
        changed false); the same match with another comment is Conflict."""
        return await self._add(FirewallRule.from_params(port, proto, source, interface, family, comment))

    @implements(net.FIREWALL_REMOVE_RULE)
    async def remove_rule(self, id: str) -> dict[str, Any]:
        """Remove an input rule by id; an unknown id is changed false."""
        return await self._remove(FirewallRule, id)

    @implements(net.NAT_ADD_DNAT)
    async def add_dnat(self, proto: str, external_port: int, internal_address: str, internal_port: int,
                       external_address: str | None = None, interface: str | None = None,
                       family: str | None = None, comment: str | None = None) -> dict[str, Any]:
        """Forward a port; idempotent by content; the same external port (address,
        interface, family) forwarded elsewhere is Conflict."""
        return await self._add(Dnat.from_params(proto, external_port, internal_address, internal_port,
                                                external_address, interface, family, comment))

    @implements(net.NAT_REMOVE_DNAT)
    async def remove_dnat(self, id: str) -> dict[str, Any]:
        """Remove a port forward by id; an unknown id is changed false."""
        return await self._remove(Dnat, id)

    @implements(net.NAT_ADD_SNAT)
    async def add_snat(self, source: str, out_interface: str, to_address: str | None = None,
                       comment: str | None = None) -> dict[str, Any]:
        """SNAT (or masquerade) a source network leaving an interface; idempotent by
        content; the same source and interface with another target is Conflict."""
        return await self._add(Snat.from_params(source, out_interface, to_address, comment))

    @implements(net.NAT_REMOVE_SNAT)
    async def remove_snat(self, id: str) -> dict[str, Any]:
        """Remove an SNAT/masquerade entry by id; an unknown id is changed false."""
        return await self._remove(Snat, id)

    # ------------------------------------------------------------ internals
    def _require(self) -> Nft:
        if self._nft is None:
            raise NotSupported(self._unavailable)
        return self._nft

    def _load(self) -> dict[str, Entry]:
        data = self._state.load()
        entries: dict[str, Entry] = {}
        for section, cls in SECTIONS.items():
            records = data.get(section, [])
            if not isinstance(records, list):
                raise StateError(f"state file {self._state.path}: {section!r} must be a list")
            for record in records:
                try:
                    entry = from_record(cls.kind, record)
                except InvalidParams as exc:
                    raise StateError(f"state file {self._state.path}: {exc.data['reason'] if exc.data else exc}") \
                        from exc
                entries[entry.id] = entry
        return entries

    def _save(self) -> None:
        self._state.save({section: [e.params() for e in self._entries.values() if isinstance(e, cls)]
                          for section, cls in SECTIONS.items()})

    async def _list_table(self) -> Listing | None:
        """Our table's listing, or None when it does not exist."""
        try:
            return await self._require().run([{"list": {"table": table_ref()}}], f"list table {FAMILY} {TABLE}")
        except KernelError as exc:
            if errno_of(exc) == errno.ENOENT:
                return None
            raise

    async def _reconcile(self) -> None:
        async with self._lock:
            listing = await self._list_table()
            items = drift(self._policy, list(self._entries.values()), listing)
            if not items:
                self._reconciled = f"table {FAMILY} {TABLE} matched the record"
                return
            if listing is not None or self._entries:
                for item in items:
                    log.warning("drift in table %s %s: %s %s (expected %s, found %s)", FAMILY, TABLE,
                                item["kind"], item["name"], item["expected"], item["actual"])
            await self._rebuild()
            self._reconciled = (f"created table {FAMILY} {TABLE}" if listing is None and not self._entries else
                                f"rebuilt table {FAMILY} {TABLE} ({len(items)} differences) "
                                f"with {len(self._entries)} recorded entries")
            log.info("%s", self._reconciled)

    async def _rebuild(self) -> None:
        await self._require().run(rebuild(self._policy, list(self._entries.values())),
                                  f"rebuild table {FAMILY} {TABLE}")

    async def _apply(self, entry: Entry) -> None:
        """Put an entry's rules in the kernel; rebuilds the whole table when it is gone."""
        commands = [add_rule(chain, entry.id, expr) for chain, expr in entry.placements()]
        try:
            await self._require().run(commands, f"add {entry.kind} {entry.id}")
        except KernelError as exc:
            if errno_of(exc) != errno.ENOENT:
                raise
            log.warning("table %s %s or a chain of it is gone; rebuilding it from the record", FAMILY, TABLE)
            await self._rebuild()

    async def _find(self, cls: type[Entry], id: str) -> list[tuple[str, int]]:
        """(chain, handle) of every rule in our table tagged ``id``; lists only cls's chains,
        as text (cheaper than JSON, and only comments and handles are needed)."""
        found: list[tuple[str, int]] = []
        for chain in cls.chains:
            try:
                text = await self._require().text(f"list chain {FAMILY} {TABLE} {chain}", f"list chain {chain}")
            except KernelError as exc:
                if errno_of(exc) != errno.ENOENT:
                    raise
                continue
            try:
                rules = ruleset_view(text, frozenset())[0]["rules"]
            except ValueError as exc:
                raise KernelError(errno.EPROTO, f"list chain {chain}", str(exc)) from exc
            found += [(rule["chain"], rule["handle"]) for rule in rules if rule["comment"] == id]
        return found

    async def _add(self, entry: Entry) -> dict[str, Any]:
        async with self._lock:
            existing = self._entries.get(entry.id)
            if existing is not None:
                if existing != entry:
                    raise Conflict(entry.kind, entry.id, f"already exists with {existing.differences(entry)}; "
                                                         f"asked for {entry.differences(existing)}")
                if len(await self._find(type(entry), entry.id)) == len(entry.placements()):
                    return {"id": entry.id, "changed": False}
                log.warning("%s %s was recorded but missing from the kernel; adding it again", entry.kind, entry.id)
                await self._apply(entry)
                return {"id": entry.id, "changed": True}
            self._entries[entry.id] = entry
            self._version += 1
            try:
                self._save()
            except BaseException:
                del self._entries[entry.id]
                raise
            try:
                await self._apply(entry)
            except BaseException:
                del self._entries[entry.id]
                self._save()
                raise
            return {"id": entry.id, "changed": True}

    async def _remove(self, cls: type[Entry], id: str) -> dict[str, Any]:
        if not id.startswith(f"{cls.prefix}-"):
            raise InvalidParams(f"{id} is not a {cls.kind} id (they start with {cls.prefix}-)", "/id")
        nft = self._require()
        async with self._lock:
            entry = self._entries.get(id)
            found = await self._find(cls, id)
            if entry is None and not found:
                return {"changed": False}
            if found:
                try:
                    await nft.run([delete_rule(chain, handle) for chain, handle in found], f"delete {cls.kind} {id}")
                except KernelError as exc:  # a rule vanished since the listing: list again, once
                    if errno_of(exc) != errno.ENOENT:
                        raise
                    found = await self._find(cls, id)
                    if found:
                        await nft.run([delete_rule(c, h) for c, h in found], f"delete {cls.kind} {id}")
            if entry is not None:
                del self._entries[id]
                self._version += 1
                try:
                    self._save()
                except BaseException:
                    self._entries[id] = entry
                    await self._apply(entry)
                    raise
            return {"changed": True}
