"""The firewall through the real daemon: input policy, allow rules, ids, drift and restart.

The daemon runs inside the router namespace of a RouterLab; effects are checked with real
connections from the client namespace and with ``nft -j`` in the router namespace.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osd.backends.native.net.nft_text import ruleset_view
from support.daemon import REAL_DAEMON, Daemon
from support.netlab import NetLab
from support.routerlab import RouterLab

pytestmark = pytest.mark.root


@pytest.fixture
def lab() -> Iterator[RouterLab]:
    with NetLab() as netlab:
        yield RouterLab(netlab)


def drop_config(tmp_path: Path) -> list[str]:
    config = tmp_path / "osd.toml"
    config.write_text('[net]\ninput_policy = "drop"\n')
    return ["--config", str(config)]


def nft_table(lab: RouterLab, table: str = "osd") -> list[dict[str, Any]]:
    done = lab.router.exec("nft", "-j", "list", "table", "inet", table, check=False)
    return json.loads(done.stdout)["nftables"] if done.returncode == 0 else []


def comments(lab: RouterLab) -> list[str]:
    return [obj["rule"].get("comment") for obj in nft_table(lab) if "rule" in obj]


def test_drop_policy_blocks_until_a_rule_opens_the_port(lab: RouterLab, tmp_path: Path) -> None:
    lab.serve(lab.router, lab.ROUTER_C4, 8081)
    lab.serve(lab.router, lab.ROUTER_C6, 8081)
    assert lab.get(lab.ROUTER_C4, 8081) == lab.CLIENT4  # open before the daemon starts
    with Daemon(REAL_DAEMON, args=drop_config(tmp_path), netns=lab.router.name) as daemon:
        assert lab.get(lab.ROUTER_C4, 8081, timeout=1) is None
        assert lab.get(lab.ROUTER_C6, 8081, timeout=1) is None
        # The essentials still pass: ICMP echo, and IPv6 neighbour discovery (a fresh
        # neighbour table on both sides, so the ping needs NS/NA through the drop policy).
        lab.client.ip("-6", "neigh", "flush", "all")
        lab.router.ip("-6", "neigh", "flush", "all")
        lab.client.exec("ping", "-c1", "-W2", lab.ROUTER_C4)
        lab.client.exec("ping", "-c1", "-W2", lab.ROUTER_C6)

        rule = daemon.call("net.firewall.add_rule", {"port": 8081, "proto": "tcp", "comment": "test service"})
        assert rule["changed"] and rule["id"].startswith("fw-")
        assert lab.get(lab.ROUTER_C4, 8081) == lab.CLIENT4
        assert lab.get(lab.ROUTER_C6, 8081) == lab.CLIENT6
        assert rule["id"] in comments(lab)

        assert daemon.call("net.firewall.remove_rule", {"id": rule["id"]}) == {"changed": True}
        assert lab.get(lab.ROUTER_C4, 8081, timeout=1) is None
        assert rule["id"] not in comments(lab)

        # A rule for one source network and family opens the port to it alone.
        v6_only = daemon.call("net.firewall.add_rule", {"port": "8000-8090", "proto": "tcp",
                                                        "source": "2001:db8:1::/64"})
        assert lab.get(lab.ROUTER_C6, 8081) == lab.CLIENT6
        assert lab.get(lab.ROUTER_C4, 8081, timeout=1) is None
        assert daemon.call("net.firewall.remove_rule", {"id": v6_only["id"]}) == {"changed": True}


def test_ids_idempotency_conflicts_and_bad_input(lab: RouterLab) -> None:
    with Daemon(REAL_DAEMON, netns=lab.router.name) as daemon:
        params = {"port": 22, "proto": "tcp", "source": "192.0.2.0/24", "comment": "ssh"}
        first = daemon.call("net.firewall.add_rule", params)
        again = daemon.call("net.firewall.add_rule", {**params, "family": "inet", "source": "192.0.2.77/24"})
        assert again == {"id": first["id"], "changed": False}  # same rule, normalised
        assert comments(lab) == [first["id"]]
        conflict = daemon.error("net.firewall.add_rule", {**params, "comment": "other"})
        assert conflict.code == -32005 and conflict.data["name"] == first["id"]

        dnat = {"proto": "udp", "external_port": 5353, "internal_address": "198.51.100.2", "internal_port": 53}
        d1 = daemon.call("net.nat.add_dnat", dnat)
        assert daemon.call("net.nat.add_dnat", dnat) == {"id": d1["id"], "changed": False}
        assert daemon.error("net.nat.add_dnat", {**dnat, "internal_port": 54}).code == -32005
        s1 = daemon.call("net.nat.add_snat", {"source": "192.0.2.0/24", "out_interface": lab.router_s,
                                              "to_address": lab.ROUTER_S4})
        assert daemon.call("net.nat.add_snat", {"source": "192.0.2.0/24", "out_interface": lab.router_s,
                                                "to_address": lab.ROUTER_S4})["changed"] is False
        assert daemon.error("net.nat.add_snat", {"source": "192.0.2.0/24",
                                                      "out_interface": lab.router_s}).code == -32005

        before = nft_table(lab)
        bad = [
            ("net.firewall.add_rule", {"port": 22, "proto": "tcp", "source": "2001:db8::/32", "family": "inet"}),
            ("net.firewall.add_rule", {"port": "90-80", "proto": "tcp"}),
            ("net.firewall.add_rule", {"port": 0, "proto": "tcp"}),
            ("net.firewall.add_rule", {"port": 22, "proto": "icmp"}),
            ("net.firewall.add_rule", {"port": 22, "proto": "tcp", "interface": "a/b"}),
            ("net.nat.add_dnat", {**dnat, "internal_address": "2001:db8::2", "family": "inet"}),
            ("net.nat.add_dnat", {**dnat, "external_address": "2001:db8::1"}),
            ("net.nat.add_dnat", {**dnat, "internal_address": "0.0.0.0"}),
            ("net.nat.add_dnat", {**dnat, "internal_address": "not-an-ip"}),
            ("net.nat.add_snat", {"source": "192.0.2.0/24", "out_interface": "x", "to_address": "2001:db8::1"}),
            ("net.firewall.remove_rule", {"id": d1["id"]}),  # a DNAT id given to the firewall
            ("net.nat.remove_snat", {"id": "nonsense"}),
        ]
        for method, params in bad:
            assert daemon.error(method, params).code == -32602, (method, params)
        assert nft_table(lab) == before  # nothing was applied

        unknown = "fw-0123456789abcdef"
        assert daemon.call("net.firewall.remove_rule", {"id": unknown}) == {"changed": False}
        assert daemon.call("net.nat.remove_snat", {"id": s1["id"]}) == {"changed": True}
        assert daemon.call("net.nat.remove_snat", {"id": s1["id"]}) == {"changed": False}
        assert sorted(comments(lab)) == sorted([first["id"], d1["id"], d1["id"]])  # DNAT: prerouting + output


FOREIGN = """
table ip other {
  set blocked { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 203.0.113.7, 203.0.113.9, 203.0.113.11,
                203.0.113.13, 203.0.113.15, 203.0.113.17, 203.0.113.19, 203.0.113.21, 203.0.113.23 } }
  map ports { type inet_service : verdict; elements = { 22 : accept, 80 : drop } }
  counter hits { }
  chain in { type filter hook input priority filter + 5; policy accept; comment "a { chain"
    ip saddr @blocked drop comment "x{y"
    tcp dport { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 } accept
    tcp dport vmap { 9 : accept, 10 : jump sub }
    tcp dport vmap @ports
    icmp type echo-request counter comment "pings"
    tcp dport 9 accept comment "fw-0000000000000000"
  }
  chain sub { }
}
table netdev nd {
  chain ing { type filter hook ingress device "lo" priority 0; policy accept; }
}
"""


def ground_truth(lab: RouterLab) -> tuple[set, set, set]:
    """(tables, chains, rules) as `nft -j list ruleset` lists them."""
    listing = json.loads(lab.router.exec("nft", "-j", "list", "ruleset").stdout)["nftables"]
    tables = {(o["table"]["family"], o["table"]["name"], o["table"]["handle"]) for o in listing if "table" in o}
    chains = {(c["family"], c["table"], c["name"], c["handle"], c.get("hook"), c.get("prio"), c.get("policy"))
              for c in (o["chain"] for o in listing if "chain" in o)}
    rules = {(r["family"], r["table"], r["chain"], r["handle"], r.get("comment"))
             for r in (o["rule"] for o in listing if "rule" in o)}
    return tables, chains, rules


def as_sets(view: dict[str, Any]) -> tuple[set, set, set]:
    return ({(t["family"], t["name"], t["handle"]) for t in view["tables"]},
            {(c["family"], c["table"], c["name"], c["handle"], c.get("hook"), c.get("prio"), c.get("policy"))
             for c in view["chains"]},
            {(r["family"], r["table"], r["chain"], r["handle"], r["comment"]) for r in view["rules"]})


def test_listing_matches_nft_marks_what_the_daemon_manages_and_leaves_other_tables_alone(
        lab: RouterLab, tmp_path: Path) -> None:
    (tmp_path / "foreign.nft").write_text(FOREIGN)
    lab.router.exec("nft", "-f", str(tmp_path / "foreign.nft"))
    foreign = lab.router.exec("nft", "-s", "-j", "list", "table", "ip", "other").stdout  # -s: no counters
    with Daemon(REAL_DAEMON, netns=lab.router.name) as daemon:
        entries = [
            ("net.firewall.add_rule", {"port": 22, "proto": "tcp"}),
            ("net.firewall.add_rule", {"port": "60000-60100", "proto": "udp", "interface": lab.router_c}),
            ("net.firewall.add_rule", {"port": 53, "proto": "udp", "family": "inet6"}),
            ("net.firewall.add_rule", {"port": 22, "proto": "tcp", "source": "192.0.2.9"}),
            ("net.nat.add_dnat", {"proto": "tcp", "external_port": 2222, "internal_address": lab.SERVER4,
                                  "internal_port": 22, "external_address": lab.ROUTER_C4}),
            ("net.nat.add_dnat", {"proto": "tcp", "external_port": 2223, "internal_address": lab.SERVER6,
                                  "internal_port": 22, "interface": lab.router_c}),
            ("net.nat.add_snat", {"source": "2001:db8:1::/64", "out_interface": lab.router_s,
                                  "to_address": lab.ROUTER_S6}),
        ]
        ids = {daemon.call(method, params)["id"] for method, params in entries}
        # Every form the daemon writes lists back identically: no drift.
        assert daemon.call("net.verify") == {"ok": True, "drift": []}

        ruleset = daemon.call("net.firewall")
        assert as_sets(ruleset) == ground_truth(lab)
        tables = {(t["family"], t["name"]): t["managed"] for t in ruleset["tables"]}
        assert tables == {("inet", "osd"): True, ("ip", "other"): False, ("netdev", "nd"): False}
        assert {r["id"] for r in ruleset["rules"] if r["managed"]} == ids
        assert not any(r["managed"] or r["id"] for r in ruleset["rules"] if r["table"] != "osd")
        assert {c["name"] for c in ruleset["chains"] if c["managed"]} == {"input", "prerouting", "output",
                                                                        "postrouting"}
        assert "tcp dport 22 accept" in {r["expr"] for r in ruleset["rules"] if r["id"] in ids}

        # Counters change without a new ruleset generation: the listing must follow them.
        def pings() -> str:
            return next(r["expr"] for r in daemon.call("net.firewall")["rules"] if r["comment"] == "pings")
        before = pings()
        lab.client.exec("ping", "-c2", "-i0.2", "-W2", lab.ROUTER_C4)
        assert pings() != before

        # Behind the daemon's back: one rule edited, one foreign rule slipped into its table.
        handle = next(obj["rule"]["handle"] for obj in nft_table(lab)
                      if "rule" in obj and obj["rule"]["chain"] == "input" and obj["rule"]["expr"][-2]["match"]
                      ["right"] == 22 and len(obj["rule"]["expr"]) == 2)
        edited = next(obj["rule"]["comment"] for obj in nft_table(lab)
                      if "rule" in obj and obj["rule"]["handle"] == handle)
        lab.router.exec("nft", "replace", "rule", "inet", "osd", "input", "handle", str(handle),
                        "tcp", "dport", "23", "accept", "comment", edited)
        lab.router.exec("nft", "add", "rule", "inet", "osd", "input", "tcp", "dport", "7", "accept")
        ruleset = daemon.call("net.firewall")
        assert as_sets(ruleset) == ground_truth(lab)
        assert next(r["expr"] for r in ruleset["rules"] if r["comment"] == edited) == "tcp dport 23 accept"
        assert [r["managed"] for r in ruleset["rules"] if r["expr"] == "tcp dport 7 accept"] == [False]
        drift = daemon.call("net.verify")
        assert not drift["ok"]
        changed = [d for d in drift["drift"] if d["name"] == edited]
        assert len(changed) == 1 and changed[0]["kind"] == "firewall-rule"
        assert changed[0]["actual"]["expr"][0]["match"]["right"] == 23
        assert [d["kind"] for d in drift["drift"] if d["name"] != edited] == ["nft-rule"]
        assert daemon.call("net.health")["status"] == "degraded"
    assert lab.router.exec("nft", "-s", "-j", "list", "table", "ip", "other").stdout == foreign


def test_kill_9_table_deleted_behind_its_back_then_restart_restores(lab: RouterLab, tmp_path: Path) -> None:
    lab.serve(lab.server, lab.SERVER4, 80)
    lab.serve(lab.router, lab.ROUTER_C4, 8081)
    args = drop_config(tmp_path)
    first = Daemon(REAL_DAEMON, args=args, netns=lab.router.name).start()
    second = Daemon(REAL_DAEMON, args=args, netns=lab.router.name, workdir=str(first.workdir))
    try:
        fw = first.call("net.firewall.add_rule", {"port": 8081, "proto": "tcp"})["id"]
        dnat = first.call("net.nat.add_dnat", {"proto": "tcp", "external_port": 8080,
                                               "internal_address": lab.SERVER4, "internal_port": 80})["id"]
        snat = first.call("net.nat.add_snat", {"source": "192.0.2.0/24", "out_interface": lab.router_s})["id"]
        assert lab.get(lab.ROUTER_C4, 8080) == lab.ROUTER_S4 and lab.get(lab.ROUTER_C4, 8081) == lab.CLIENT4

        lab.router.exec("nft", "delete", "table", "inet", "osd")
        assert lab.get(lab.ROUTER_C4, 8080, timeout=1) is None
        drift = first.call("net.verify")
        assert not drift["ok"]
        missing = {(d["kind"], d["name"]) for d in drift["drift"] if d["actual"] is None}
        assert {("nft-table", "inet osd"), ("firewall-rule", fw), ("dnat", dnat), ("snat", snat),
                ("firewall-base-rule", "osd:established")} <= missing
        health = first.call("net.health")
        assert health["status"] == "degraded"

        first.kill()
        second.start()
        assert "rebuilt table inet osd" in second.log
        assert second.call("net.verify") == {"ok": True, "drift": []}
        assert sorted(comments(lab)).count(dnat) == 2 and fw in comments(lab) and snat in comments(lab)
        policy = next(obj["chain"]["policy"] for obj in nft_table(lab)
                      if "chain" in obj and obj["chain"]["name"] == "input")
        assert policy == "drop"
        assert lab.get(lab.ROUTER_C4, 8080) == lab.ROUTER_S4 and lab.get(lab.ROUTER_C4, 8081) == lab.CLIENT4
    finally:
        second.cleanup()
        first.cleanup()


def test_a_write_after_the_table_vanished_rebuilds_it(lab: RouterLab) -> None:
    with Daemon(REAL_DAEMON, netns=lab.router.name) as daemon:
        old = daemon.call("net.firewall.add_rule", {"port": 22, "proto": "tcp"})["id"]
        lab.router.exec("nft", "delete", "table", "inet", "osd")
        # Re-adding a recorded rule whose kernel rule is gone puts it back (changed true).
        assert daemon.call("net.firewall.add_rule", {"port": 22, "proto": "tcp"}) == {"id": old, "changed": True}
        assert daemon.call("net.verify") == {"ok": True, "drift": []}
        # A new rule finds the table gone: the whole table comes back with it, in one transaction.
        lab.router.exec("nft", "delete", "table", "inet", "osd")
        new = daemon.call("net.firewall.add_rule", {"port": 443, "proto": "tcp"})["id"]
        assert sorted(comments(lab)) == sorted([old, new])
        assert daemon.call("net.verify") == {"ok": True, "drift": []}


def test_an_unreadable_state_file_stops_start_up_naming_it(lab: RouterLab) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="osd-t-", dir="/tmp"))  # short: socket paths live in it
    (workdir / "state").mkdir()
    (workdir / "state" / "netfilter.json").write_text('{"format": "osd-state", "kind": "netfilter", "version": 1, '
                                          '"data": {"dnat": [{"proto": "tcp", "external_port": 1}]}}')
    daemon = Daemon(REAL_DAEMON, netns=lab.router.name, workdir=str(workdir))
    try:
        with pytest.raises(Exception, match="netfilter.json"):
            daemon.start(timeout=15)
        assert daemon.proc is not None and daemon.proc.returncode == 1
    finally:
        daemon.cleanup()
        shutil.rmtree(workdir)
    assert nft_table(lab) == []  # nothing applied


def test_after_changes_only_the_changed_tables_are_listed_and_the_answer_equals_a_whole_listing(
        lab: RouterLab) -> None:
    def nft(*commands: str) -> None:
        lab.router.exec("nft", "; ".join(commands))

    with Daemon(REAL_DAEMON, netns=lab.router.name) as daemon:
        ids = {daemon.call("net.firewall.add_rule", {"port": 22, "proto": "tcp"})["id"]}

        def same_as_whole_listing() -> list[tuple[str, str]]:
            answer = daemon.call("net.firewall")
            whole = lab.router.exec("nft", "--handle", "--numeric-priority", "--terse", "list", "ruleset").stdout
            assert answer == ruleset_view(whole, frozenset(ids))[0]
            assert as_sets(answer) == ground_truth(lab)
            return [(t["family"], t["name"]) for t in answer["tables"]]

        def listings() -> tuple[int, int]:
            detail = next(c["detail"] for c in daemon.call("net.health")["checks"] if c["name"] == "nftables")
            found = re.search(r"whole ruleset (\d+) times, single tables (\d+) times", detail)
            assert found, detail
            return int(found[1]), int(found[2])

        assert same_as_whole_listing() == [("inet", "osd")]
        nft("add table ip t1", "add chain ip t1 c { type filter hook input priority 10; }",
            "add rule ip t1 c tcp dport 80 accept")
        assert same_as_whole_listing() == [("inet", "osd"), ("ip", "t1")]
        nft("add table inet t2", "add rule ip t1 c udp dport 53 drop comment \"two tables, one transaction\"")
        assert same_as_whole_listing() == [("inet", "osd"), ("ip", "t1"), ("inet", "t2")]
        ids.add(daemon.call("net.firewall.add_rule", {"port": 443, "proto": "tcp"})["id"])
        same_as_whole_listing()
        nft("delete table ip t1")
        assert same_as_whole_listing() == [("inet", "osd"), ("inet", "t2")]
        nft("add table ip t1")  # made again: it now comes last
        assert same_as_whole_listing() == [("inet", "osd"), ("inet", "t2"), ("ip", "t1")]
        nft("delete table inet t2", "add table inet t2")  # between two calls, so is this
        assert same_as_whole_listing() == [("inet", "osd"), ("ip", "t1"), ("inet", "t2")]
        nft("add rule inet osd input tcp dport 7 accept")  # slipped into the daemon's table
        same_as_whole_listing()
        removed = ids.pop()
        assert daemon.call("net.firewall.remove_rule", {"id": removed}) == {"changed": True}
        same_as_whole_listing()
        # Counters change with traffic, not with a new generation: that table is listed every time.
        nft("add chain inet t2 in { type filter hook input priority 20; }",
            "add rule inet t2 in icmp type echo-request counter")
        before = same_as_whole_listing()
        lab.client.exec("ping", "-c2", "-i0.2", "-W2", lab.ROUTER_C4)
        assert same_as_whole_listing() == before
        assert "counter packets 2 " in next(r["expr"] for r in daemon.call("net.firewall")["rules"]
                                          if r["table"] == "t2")

        whole, single = listings()
        assert whole == 1 and single >= 9
        # Nothing changed: nothing is listed, except the table with a counter.
        daemon.call("net.firewall")
        assert listings() == (whole, single + 1)


def test_tables_nft_cannot_name_on_its_command_line_are_listed_with_the_whole_ruleset(
        lab: RouterLab, tmp_path: Path) -> None:
    def nft_json(*commands: dict[str, Any]) -> None:
        (tmp_path / "commands.json").write_text(json.dumps({"nftables": list(commands)}))
        lab.router.exec("nft", "-j", "-f", str(tmp_path / "commands.json"))

    # Names the kernel takes (through nft's JSON input) but nft's command line cannot parse
    # in `list table`: the daemon falls back to `list ruleset` for these.
    nft_json(*({"add": {"table": {"family": "ip", "name": name}}} for name in ("a b", "9x")))
    with Daemon(REAL_DAEMON, netns=lab.router.name) as daemon:
        for chain in ("c1", "c2"):
            answer = daemon.call("net.firewall")
            assert as_sets(answer) == ground_truth(lab)
            assert [(t["family"], t["name"]) for t in answer["tables"]] == [("ip", "a b"), ("ip", "9x"),
                                                                            ("inet", "osd")]
            nft_json({"add": {"chain": {"family": "ip", "table": "9x", "name": chain}}})
        assert as_sets(daemon.call("net.firewall")) == ground_truth(lab)


def test_a_table_the_kernel_drops_unannounced_leaves_the_answer(lab: RouterLab, tmp_path: Path) -> None:
    # A table with the owner flag lives as long as the netlink socket that made it.
    ready, release = tmp_path / "ready", tmp_path / "release"
    owner = lab.router.popen("/usr/bin/python3", "-c", f"""
import nftables, os, time
ctx = nftables.Nftables()
assert ctx.cmd("add table ip owned {{ flags owner; }}")[0] == 0
open({str(ready)!r}, "w").close()
while not os.path.exists({str(release)!r}):
    time.sleep(0.05)
""")
    try:
        with Daemon(REAL_DAEMON, netns=lab.router.name) as daemon:
            deadline = time.monotonic() + 10
            while not ready.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ("ip", "owned") in {(t["family"], t["name"]) for t in daemon.call("net.firewall")["tables"]}
            release.touch()
            owner.wait(timeout=10)
            assert as_sets(daemon.call("net.firewall")) == ground_truth(lab)
            assert "owned" not in {t["name"] for t in daemon.call("net.firewall")["tables"]}
    finally:
        owner.kill()
