"""net.firewall's view of the whole ruleset, read from libnftables' text listing.

Why text: ``list ruleset`` as text with handles costs about 60% of the same listing as
JSON (plus its decoding), and the answer is what people read (``tcp dport 22 accept``).
The daemon's own table is still read as JSON wherever expressions are compared (drift).

The listing has a fixed shape: ``table FAMILY NAME { # handle N`` at depth 0, blocks
(``chain``, ``set``, ``map``, ``counter``, ...) at depth 1, and inside a chain one line of
declarations (``type ... hook ... priority N; policy P;``, ``comment``, ``devices``) or
one line per rule ending in ``# handle N``. Only set elements span several lines, so
blocks are skipped by counting braces outside quoted strings.
"""

from __future__ import annotations

import re
from typing import Any

from .nft_model import BASE_RULES, CHAINS, FAMILY, TABLE

_TABLE = re.compile(r'^table (\S+) (\S+) \{(?: # handle (\d+))?$')  # no handle in `list chain`
_BLOCK = re.compile(r'^(\S+) (\S+) \{ # handle (\d+)$')
_RULE = re.compile(r'^(.*?)(?: comment "([^"]*)")? # handle (\d+)$')
_HOOK = re.compile(r'type (\S+) hook (\S+)(?: device "?([^";]*)"?)? priority (-?\d+);(?: policy (\S+);)?')
_QUOTED = re.compile(r'"[^"]*"')
# Statements whose listed values change with traffic, without a new ruleset generation.
_LIVE = re.compile(r'\b(?:counter packets|quota|last used)\b')

View = dict[str, list[dict[str, Any]]]


def _name(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


def _depth_change(line: str) -> int:
    bare = _QUOTED.sub("", line)
    return bare.count("{") - bare.count("}")


def ruleset_view(text: str, managed_ids: set[str] | frozenset[str]) -> tuple[View, bool]:
    """Tables, chains and rules of ``list ruleset`` text (handles on, numeric priorities),
    each marked ``managed`` when it is the daemon's; and whether any rule shows values that
    traffic changes (counters, quotas), which makes the view stale without a new generation.

    Raises ValueError on a line it cannot place (a listing format it does not know).
    """
    tables: list[dict[str, Any]] = []
    chains: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    live = False
    table: dict[str, Any] | None = None
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
            if line == "}":
                chain = None
            elif (rule := _RULE.match(line)) is not None:
                expr, comment, handle = rule.groups()
                ours = chain["managed"]
                live = live or bool(_LIVE.search(expr))
                rules.append({"family": chain["family"], "table": chain["table"], "chain": chain["name"],
                              "handle": int(handle), "expr": expr, "comment": comment,
                              "id": comment if ours and comment in managed_ids else None,
                              "managed": ours and (comment in managed_ids or comment in BASE_RULES)})
            elif (hook := _HOOK.search(line)) is not None:
                kind, hook_name, device, prio, policy = hook.groups()
                chain.update(type=kind, hook=hook_name, prio=int(prio), policy=policy or "accept")
                if device:
                    chain["device"] = device
            # other declarations (comment "...", devices = {...}, flags) are not shown
            continue
        if table is not None:
            if line == "}":
                table = None
            elif (block := _BLOCK.match(line)) is not None:
                kind, name, handle = block.groups()
                if kind == "chain":
                    name = _name(name)
                    ours = table["managed"] and name in CHAINS
                    chain = {"family": table["family"], "table": table["name"], "name": name,
                             "handle": int(handle), "managed": ours}
                    chains.append(chain)
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
        table = {"family": family, "name": name, "handle": int(handle) if handle else None,
                 "managed": family == FAMILY and name == TABLE}
        tables.append(table)
    return {"tables": tables, "chains": chains, "rules": rules}, live
