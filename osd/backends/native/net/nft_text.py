"""net.firewall's view of the whole ruleset, read from libnftables' text listing.

Why text: the answer is what people read (``tcp dport 22 accept``), about half the size
of the same rules as JSON statements (1100 rules with a source match: 206 against 438 kB),
and a little cheaper to produce (88 ms of CPU against 92-108 ms for JSON, 1100 rules on
the loaded development VM; most of either is libnftables fetching and decoding the rules).
The daemon's own table is still read as JSON wherever expressions are compared (drift).

The listing has a fixed shape: ``table FAMILY NAME { # handle N`` at depth 0, blocks
(``chain``, ``set``, ``map``, ``counter``, ...) at depth 1, and inside a chain one line of
declarations (``type ... hook ... priority N; policy P;``, ``comment``, ``devices``) or
one line per rule ending in ``# handle N``. Only set elements span several lines, so
blocks are skipped by counting braces outside quoted strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .nft_model import BASE_RULES, CHAINS, FAMILY, TABLE

# No handle in `list chain`; names unquoted; an owned table adds "progname NAME".
_TABLE = re.compile(r'^table (\S+) (.+?) \{(?: # handle (\d+)(?: .*)?)?$')
_BLOCK = re.compile(r'^(\S+) (\S+) \{ # handle (\d+)$')
_HOOK = re.compile(r'type (\S+) hook (\S+)(?: device "?([^";]*)"?)? priority (-?\d+);(?: policy (\S+);)?')
_QUOTED = re.compile(r'"[^"]*"')

View = dict[str, list[dict[str, Any]]]


def _name(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


def _rule(line: str) -> tuple[str, str | None, int] | None:
    """(expression, comment, handle) of a rule line, or None when it is not one.

    String operations rather than one regular expression: a pattern that has to find an
    optional comment before the handle backtracks over every character of long rules.
    """
    head, sep, handle = line.rpartition(" # handle ")
    if not sep or not handle.isdigit():
        return None
    if head.endswith('"'):
        start = head.rfind(' comment "')
        if start >= 0 and '"' not in head[start + 10:-1]:
            return head[:start], head[start + 10:-1], int(handle)
    return head, None, int(handle)


def _depth_change(line: str) -> int:
    bare = _QUOTED.sub("", line)
    return bare.count("{") - bare.count("}")


@dataclass
class TableView:
    """One table of a listing: the table, its chains and rules, and whether any rule shows
    values that traffic changes (counters, quotas), which makes the view stale without a
    new ruleset generation."""

    table: dict[str, Any]
    chains: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    live: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.table["family"], self.table["name"]


def joined(tables: Iterable[TableView]) -> View:
    """net.firewall's answer from table views, in the order given."""
    view: View = {"tables": [], "chains": [], "rules": []}
    for table in tables:
        view["tables"].append(table.table)
        view["chains"] += table.chains
        view["rules"] += table.rules
    return view


def ruleset_view(text: str, managed_ids: set[str] | frozenset[str]) -> tuple[View, bool]:
    """Tables, chains and rules of ``list ruleset`` text (handles on, numeric priorities),
    each marked ``managed`` when it is the daemon's; and whether any rule shows values that
    traffic changes (counters, quotas).

    Raises ValueError on a line it cannot place (a listing format it does not know).
    """
    tables = table_views(text, managed_ids)
    return joined(tables), any(table.live for table in tables)


def table_views(text: str, managed_ids: set[str] | frozenset[str]) -> list[TableView]:
    """The tables of a ``list ruleset`` or ``list table`` text, in listing order (see
    ruleset_view). Raises ValueError on a line it cannot place."""
    tables: list[TableView] = []
    current: TableView | None = None
    chain: dict[str, Any] | None = None
    skip = 0  # depth inside a block that is not a chain (sets, maps, objects)
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if skip:
            skip += _depth_change(line)
            continue
        if chain is not None:
            assert current is not None
            if line == "}":
                chain = None
            elif (rule := _rule(line)) is not None:
                expr, comment, handle = rule
                ours = chain["managed"]
                # values that traffic changes without a new ruleset generation
                if not current.live:
                    current.live = "counter packets" in expr or "quota " in expr or "last used" in expr
                current.rules.append({"family": chain["family"], "table": chain["table"], "chain": chain["name"],
                                      "handle": handle, "expr": expr, "comment": comment,
                                      "id": comment if ours and comment in managed_ids else None,
                                      "managed": ours and (comment in managed_ids or comment in BASE_RULES)})
            elif (hook := _HOOK.search(line)) is not None:
                kind, hook_name, device, prio, policy = hook.groups()
                chain.update(type=kind, hook=hook_name, prio=int(prio), policy=policy or "accept")
                if device:
                    chain["device"] = device
            # other declarations (comment "...", devices = {...}, flags) are not shown
            continue
        if current is not None:
            table = current.table
            if line == "}":
                current = None
            elif (block := _BLOCK.match(line)) is not None:
                kind, name, handle = block.groups()
                if kind == "chain":
                    name = _name(name)
                    ours = table["managed"] and name in CHAINS
                    chain = {"family": table["family"], "table": table["name"], "name": name,
                             "handle": int(handle), "managed": ours}
                    current.chains.append(chain)
                else:
                    skip = 1
            elif _depth_change(line) > 0:  # an unnamed block (e.g. a table's flags section)
                skip = _depth_change(line)
            continue
        match = _TABLE.match(line)
        if match is None:
            raise ValueError(f"unexpected line in the ruleset listing: {line!r}")
        family, name, handle = match.groups()
        name = _name(name)
        current = TableView({"family": family, "name": name, "handle": int(handle) if handle else None,
                             "managed": family == FAMILY and name == TABLE})
        tables.append(current)
    return tables
