"""The daemon's table as listed in JSON, compared with the model: drift, and what is present.

Pure functions of a libnftables JSON listing (the ``nftables`` array), unit-tested
without a kernel. JSON because expressions are compared exactly.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .nft_model import CHAINS, FAMILY, TABLE, Entry, canonical, chain_spec, expected_rules

Listing = list[dict[str, Any]]
_HOOKED = ("type", "hook", "prio", "policy")


def present(listing: Listing | None) -> set[tuple[str, str]]:
    """(chain, comment) of every commented rule in a listing of table inet osd."""
    return {(obj["rule"]["chain"], obj["rule"]["comment"]) for obj in listing or ()
            if "rule" in obj and "comment" in obj["rule"]}


def drift(policy: str, entries: list[Entry], listing: Listing | None) -> list[dict[str, Any]]:
    """What differs between the expected table inet osd and a listing of it (None: absent).

    Items are ``{kind, name, expected, actual}``: the table, a chain (hook, priority,
    policy), a rule missing or changed (``name`` is the entry id, or ``osd:...`` for a base
    rule), or a rule in the daemon's table that nobody recorded (kind ``nft-rule``).
    """
    items: list[dict[str, Any]] = []
    if listing is None:
        items.append({"kind": "nft-table", "name": f"{FAMILY} {TABLE}", "expected": "present", "actual": None})
    chains = {obj["chain"]["name"]: obj["chain"] for obj in listing or () if "chain" in obj}
    for name in CHAINS:
        want = {key: chain_spec(name, policy)[key] for key in _HOOKED}
        have = {key: chains[name].get(key) for key in _HOOKED} if name in chains else None
        if want != have:
            items.append({"kind": "nft-chain", "name": name, "expected": want, "actual": have})
    for name in sorted(set(chains) - set(CHAINS)):
        items.append({"kind": "nft-chain", "name": name, "expected": None, "actual": chains[name]})

    actual: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for obj in listing or ():
        if "rule" in obj:
            actual[(obj["rule"]["chain"], obj["rule"].get("comment"))].append(obj["rule"])
    kinds = {entry.id: entry.kind for entry in entries}
    for chain, comment, expr in expected_rules(policy, entries):
        kind = kinds.get(comment, "firewall-base-rule")
        found = actual.pop((chain, comment), [])
        expected = {"chain": chain, "expr": expr}
        if not found:
            items.append({"kind": kind, "name": comment, "expected": expected, "actual": None})
            continue
        for rule in found:
            if len(found) > 1 or canonical(rule["expr"]) != canonical(expr):
                items.append({"kind": kind, "name": comment, "expected": expected,
                              "actual": {"chain": chain, "expr": rule["expr"], "handle": rule["handle"]}})
    for (chain, comment), rules in actual.items():
        for rule in rules:
            items.append({"kind": "nft-rule", "name": f"{chain} handle {rule['handle']}", "expected": None,
                          "actual": {"chain": chain, "expr": rule["expr"], "comment": comment}})
    return items
