"""The nftables model without a kernel: ids, normalisation, validation, drift and the listing view."""

from __future__ import annotations

import copy
import errno

import pytest

from osd.backends.native.net.nft import errno_from_text
from osd.backends.native.net.nft_listing import drift, present
from osd.backends.native.net.nft_model import (
    BASE_RULES, Dnat, FirewallRule, Snat, chain_spec, expected_rules, from_record, rebuild,
)
from osd.backends.native.net.nft_text import ruleset_view
from osd.errors import InvalidParams


def listing_of(policy: str, entries: list, extra: list | None = None) -> list[dict]:
    """What the kernel would list for a correct table (handles made up)."""
    out: list[dict] = [{"metainfo": {}}, {"table": {"family": "inet", "name": "osd", "handle": 9}}]
    out += [{"chain": {**chain_spec(name, policy), "handle": i}}
            for i, name in enumerate(("input", "prerouting", "output", "postrouting"))]
    for handle, (chain, comment, expr) in enumerate(expected_rules(policy, entries), start=10):
        out.append({"rule": {"family": "inet", "table": "osd", "chain": chain, "handle": handle,
                             "expr": copy.deepcopy(expr), "comment": comment}})
    return out + (extra or [])


def test_ids_follow_the_match_and_ignore_spelling() -> None:
    a = FirewallRule.from_params(22, "tcp", source="192.0.2.77/24")
    b = FirewallRule.from_params("22", "tcp", source="192.0.2.0/24", family="inet")
    assert a == b and a.id == b.id and a.id.startswith("fw-") and len(a.id) == 19
    assert FirewallRule.from_params("22-22", "tcp").port == 22
    assert FirewallRule.from_params("80-90", "udp").port == "80-90"
    assert FirewallRule.from_params(22, "udp").id != FirewallRule.from_params(22, "tcp").id
    # The comment is not part of the identity: same id, different value (a conflict upstream).
    commented = FirewallRule.from_params(22, "tcp", comment="ssh")
    plain = FirewallRule.from_params(22, "tcp")
    assert commented.id == plain.id and commented != plain
    # The target is not either: the same forward to another place has the same id.
    d1 = Dnat.from_params("tcp", 8080, "198.51.100.2", 80)
    d2 = Dnat.from_params("tcp", 8080, "198.51.100.3", 80)
    assert d1.id == d2.id and d1.id.startswith("dnat-") and d1.family == "inet"
    assert Dnat.from_params("tcp", 8080, "2001:db8::0:2", 80).internal_address == "2001:db8::2"
    assert Snat.from_params("2001:db8:1::/64", "eth0").id.startswith("snat-")


@pytest.mark.parametrize("build, path", [
    (lambda: FirewallRule.from_params(22, "tcp", source="2001:db8::/32", family="inet"), "/source"),
    (lambda: FirewallRule.from_params("90-80", "tcp"), "/port"),
    (lambda: FirewallRule.from_params(70000, "tcp"), "/port"),
    (lambda: Dnat.from_params("tcp", 80, "2001:db8::2", 80, family="inet"), "/internal_address"),
    (lambda: Dnat.from_params("tcp", 80, "198.51.100.2", 80, external_address="2001:db8::1"), "/external_address"),
    (lambda: Dnat.from_params("tcp", 80, "224.0.0.1", 80), "/internal_address"),
    (lambda: Dnat.from_params("tcp", "80-81", "198.51.100.2", 80), "/external_port"),
    (lambda: Snat.from_params("192.0.2.0/24", "eth0", to_address="2001:db8::1"), "/to_address"),
    (lambda: Snat.from_params("nonsense", "eth0"), "/source"),
])
def test_bad_input_is_invalid_params_with_its_path(build, path: str) -> None:
    with pytest.raises(InvalidParams) as err:
        build()
    assert err.value.data["path"] == path


def test_placements() -> None:
    plain = Dnat.from_params("tcp", 8080, "198.51.100.2", 80)
    assert [chain for chain, _ in plain.placements()] == ["prerouting", "output"]
    assert {"dnat": {"family": "ip", "addr": "198.51.100.2", "port": 80}} in plain.placements()[0][1]
    on_interface = Dnat.from_params("tcp", 8080, "2001:db8::2", 80, interface="eth0")
    assert [chain for chain, _ in on_interface.placements()] == ["prerouting"]
    masq = Snat.from_params("192.0.2.0/24", "eth1")
    assert masq.placements()[0][1][-1] == {"masquerade": None}
    host = FirewallRule.from_params(22, "tcp", source="192.0.2.9")
    assert host.placements()[0][1][0]["match"]["right"] == "192.0.2.9"  # a /32 lists as a bare address


def test_state_records_round_trip() -> None:
    for entry in (FirewallRule.from_params("80-90", "tcp", interface="eth0", comment="web"),
                  Dnat.from_params("udp", 53, "2001:db8::5", 5353, external_address="2001:db8::1"),
                  Snat.from_params("192.0.2.0/24", "eth1", to_address="198.51.100.1")):
        assert from_record(entry.kind, entry.params()) == entry
    with pytest.raises(InvalidParams):
        from_record("dnat", {"proto": "tcp"})
    with pytest.raises(InvalidParams):
        from_record("snat", {"source": "192.0.2.0/24", "out_interface": "x", "colour": "red"})


def test_base_rules_only_with_the_drop_policy() -> None:
    entry = FirewallRule.from_params(22, "tcp")
    assert [c for _, c, _ in expected_rules("accept", [entry])] == [entry.id]
    assert [c for _, c, _ in expected_rules("drop", [entry])] == [*BASE_RULES, entry.id]
    commands = rebuild("drop", [entry])
    assert [next(iter(c)) for c in commands[:3]] == ["add", "delete", "add"]  # atomic replace
    assert commands[3]["add"]["chain"]["policy"] == "drop"


ENTRIES = [FirewallRule.from_params(22, "tcp"), Dnat.from_params("tcp", 8080, "198.51.100.2", 80),
           Snat.from_params("192.0.2.0/24", "eth1")]


def test_no_drift_when_the_listing_matches_even_with_sets_reordered() -> None:
    listing = listing_of("drop", ENTRIES)
    icmp = next(o["rule"] for o in listing if "rule" in o and o["rule"]["comment"] == "osd:icmp")
    icmp["expr"][0]["match"]["right"]["set"].reverse()
    assert drift("drop", ENTRIES, listing) == []


def test_drift_reports_a_missing_table_and_every_missing_rule() -> None:
    items = drift("accept", ENTRIES, None)
    assert items[0] == {"kind": "nft-table", "name": "inet osd", "expected": "present", "actual": None}
    missing = [(i["kind"], i["name"]) for i in items if i["kind"] not in ("nft-table", "nft-chain")]
    fw, dnat, snat = (e.id for e in ENTRIES)
    assert missing == [("firewall-rule", fw), ("dnat", dnat), ("dnat", dnat), ("snat", snat)]


def test_drift_reports_changed_duplicated_and_foreign_rules_and_a_changed_policy() -> None:
    listing = listing_of("accept", ENTRIES)
    rules = [o["rule"] for o in listing if "rule" in o]
    rules[0]["expr"][0]["match"]["right"] = 23  # the firewall rule edited
    listing.append({"rule": {**copy.deepcopy(rules[-1]), "handle": 99}})  # the SNAT rule twice
    listing.append({"rule": {"family": "inet", "table": "osd", "chain": "input", "handle": 100,
                             "expr": [{"accept": None}]}})  # someone else's rule in our table
    items = drift("drop", ENTRIES, listing)  # the config now says drop
    kinds = [(i["kind"], i["name"]) for i in items]
    assert ("nft-chain", "input") in kinds
    assert [i["expected"]["policy"] for i in items if i["kind"] == "nft-chain"] == ["drop"]
    assert ("firewall-base-rule", "osd:established") in kinds
    changed = next(i for i in items if i["name"] == ENTRIES[0].id)
    assert changed["actual"]["expr"][0]["match"]["right"] == 23
    assert kinds.count(("snat", ENTRIES[2].id)) == 2
    assert ("nft-rule", "input handle 100") in kinds


LISTING = """\
table ip tricky { # handle 8
\tcounter cnt { # handle 3
\t\tpackets 0 bytes 0
\t}

\tset blocked { # handle 4
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.0.0.0/8, 192.0.2.1,
\t\t\t     203.0.113.21, 203.0.113.23 }
\t}

\tchain in { # handle 1
\t\tcomment "a { chain"
\t\ttype filter hook input priority 5; policy drop;
\t\tip saddr @blocked drop comment "x{y" # handle 6
\t\ttcp dport { 1, 2, 3 } accept comment "fw-0123456789abcdef" # handle 8
\t\ttcp dport vmap { 22 : accept, 24 : jump sub } # handle 10
\t}

\tchain sub { # handle 2
\t}
}
table netdev nd { # handle 9
\tchain ing { # handle 1
\t\ttype filter hook ingress device "lo" priority 0; policy accept;
\t}
}
table inet osd { # handle 12
\tchain input { # handle 1
\t\ttype filter hook input priority 0; policy drop;
\t\tct state established,related accept comment "osd:established" # handle 3
\t\ttcp dport 22 accept comment "fw-0123456789abcdef" # handle 4
\t\ttcp dport 23 accept # handle 5
\t}
}
"""


def test_ruleset_view_reads_the_text_listing_and_marks_only_the_daemons_objects() -> None:
    view, live = ruleset_view(LISTING, frozenset({"fw-0123456789abcdef"}))
    assert not live
    assert [(t["family"], t["name"], t["handle"], t["managed"]) for t in view["tables"]] == [
        ("ip", "tricky", 8, False), ("netdev", "nd", 9, False), ("inet", "osd", 12, True)]
    assert [(c["table"], c["name"], c.get("hook"), c.get("prio"), c.get("policy"), c["managed"])
            for c in view["chains"]] == [("tricky", "in", "input", 5, "drop", False),
                                         ("tricky", "sub", None, None, None, False),
                                         ("nd", "ing", "ingress", 0, "accept", False),
                                         ("osd", "input", "input", 0, "drop", True)]
    assert view["chains"][2]["device"] == "lo"
    rules = [(r["table"], r["chain"], r["handle"], r["expr"], r["comment"], r["id"], r["managed"])
             for r in view["rules"]]
    assert rules == [
        ("tricky", "in", 6, "ip saddr @blocked drop", "x{y", None, False),
        ("tricky", "in", 8, "tcp dport { 1, 2, 3 } accept", "fw-0123456789abcdef", None, False),  # not our table
        ("tricky", "in", 10, "tcp dport vmap { 22 : accept, 24 : jump sub }", None, None, False),
        ("osd", "input", 3, "ct state established,related accept", "osd:established", None, True),
        ("osd", "input", 4, "tcp dport 22 accept", "fw-0123456789abcdef", "fw-0123456789abcdef", True),
        ("osd", "input", 5, "tcp dport 23 accept", None, None, False),  # slipped into our table
    ]


def test_ruleset_view_notices_live_values_and_unknown_lines() -> None:
    counting = LISTING.replace("tcp dport 23 accept", "tcp dport 23 counter packets 4 bytes 240 accept")
    assert ruleset_view(counting, frozenset())[1] is True
    with pytest.raises(ValueError):
        ruleset_view("something new { # handle 1\n}\n", frozenset())
    owned = "table ip owned { # handle 1 progname python3\n\tflags owner\n}\n"
    assert [(t["name"], t["handle"]) for t in ruleset_view(owned, frozenset())[0]["tables"]] == [("owned", 1)]
    # `list chain` prints its table without a handle
    chain = 'table inet osd {\n\tchain input { # handle 1\n\t\ttcp dport 22 accept comment "fw-1" # handle 4\n\t}\n}\n'
    assert [(r["chain"], r["handle"], r["comment"]) for r in ruleset_view(chain, frozenset())[0]["rules"]] == [
        ("input", 4, "fw-1")]


def test_present_lists_commented_rules() -> None:
    assert ("input", ENTRIES[0].id) in present(listing_of("accept", ENTRIES))


@pytest.mark.parametrize("text, code", [
    ("internal:0:0-0: Error: Could not process rule: No such file or directory\n\n", errno.ENOENT),
    ("Error: No such file or directory; did you mean table ‘osd’ in family inet?", errno.ENOENT),
    ("Error: Could not process rule: Operation not supported\nadd rule ...\n^^^", errno.EOPNOTSUPP),
    ("Error: syntax error, unexpected junk", errno.EINVAL),
])
def test_libnftables_error_text_maps_to_errno(text: str, code: int) -> None:
    assert errno_from_text(text) == code
