"""The proxy backend end to end: real processes, no mocks.

Two native osd daemons stand in for the MOS upstreams, serving under the upstream names
(``--rename net=mosnet`` inside a fresh network namespace; ``--rename vol=storage`` in the
host's mount namespace, confined to this test's loop devices, with an empty network
namespace of its own so its net services leave the host alone), and a third osd runs
``--backend proxy`` in the host namespace in front of them. Every answer through the proxy
is compared with the same call made straight to the upstream, and effects are checked
independently of the daemons: ``ip -n NS -j``, ``nft -j``, ``sfdisk -J``, ``blkid``,
``findmnt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from osd import methods
from osd.client import Client
from support.daemon import REAL_DAEMON, Daemon
from support.looplab import MIB, VOL_DAEMON, LoopLab, blkid, config_file, findmnt, run
from support.netlab import NetLab, Netns, short_name

pytestmark = pytest.mark.root

TOKEN = "proxy-test-writer-token"
DEADLINE_S = 2.0  # long enough that a storage call under load stays well inside it
# Reads whose answers do not change from one call to the next, through the proxy or not.
READS = [
    ("net.verify", {}), ("net.health", {}), ("net.interfaces", {}), ("net.interfaces", {"name": "lo"}),
    ("net.routes", {"family": "inet"}), ("net.bridge", {}), ("net.sysctl", {}), ("net.vlan", {}),
    ("net.firewall", {}), ("net.nat.status", {}), ("net.neighbors", {}), ("net.dns", {}), ("net.config", {}),
    ("net.vm.list", {}), ("net.conntrack", {}),
    ("vol.list_disks", {}), ("vol.list_mounts", {}), ("vol.list_filesystems", {}), ("vol.list_md_arrays", {}),
]


class Mos:
    """A MOS node in miniature: the two upstream stand-ins and a proxy in front of them."""

    def __init__(self, stack: contextlib.ExitStack, work: Path, *, net_args: tuple[str, ...] = ("--rename", "net=mosnet")) -> None:
        lab = stack.enter_context(NetLab())
        self.ns: Netns = lab.netns("px")
        self.net = stack.enter_context(Daemon(REAL_DAEMON, args=net_args, netns=self.ns.name))
        self.loops = stack.enter_context(LoopLab("proxy"))
        self.disks = [self.loops.disk(64), self.loops.disk(64)]
        self.vol = stack.enter_context(Daemon(VOL_DAEMON, args=["--rename", "vol=storage", *config_file(self.loops)]))
        acl = work / "acl.toml"
        acl.write_text(
            '[[group]]\nname = "writers"\nusers = ["token:ci"]\n'
            '[[ace]]\nright = "write"\ngroups = ["writers"]\n'
            f'[[token]]\nname = "ci"\nsha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
            '[policy]\nanonymous_local = "read"\n'
        )
        acl.chmod(0o600)
        config = work / "proxy.toml"
        config.write_text(f"[proxy]\ndeadline_s = {DEADLINE_S}\n")
        self.proxy = stack.enter_context(Daemon(REAL_DAEMON, args=[
            "--backend", "proxy", "--upstream-net", self.net.socket, "--upstream-vol", self.vol.socket,
            "--acl", str(acl), "--config", str(config)]))

    def direct(self, method: str) -> tuple[Daemon, str]:
        """The upstream serving ``method`` and its name there."""
        namespace, _, rest = method.partition(".")
        return (self.net, f"mosnet.{rest}") if namespace == "net" else (self.vol, f"storage.{rest}")


@pytest.fixture(scope="module")
def mos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mos]:
    """Shared by the tests that leave the upstreams running."""
    with contextlib.ExitStack() as stack:
        yield Mos(stack, tmp_path_factory.mktemp("mos"))


@pytest.fixture
def own_mos(tmp_path: Path) -> Iterator[Mos]:
    """For a test that kills or stops an upstream."""
    with contextlib.ExitStack() as stack:
        yield Mos(stack, tmp_path)


def answer(daemon: Daemon, method: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """The whole JSON-RPC reply without its id: {"result": ...} or {"error": {...}} exactly as sent."""
    with daemon.client(**kw) as client:
        reply = client.request({"jsonrpc": "2.0", "id": 7, "method": method, "params": params or {}})
    return {k: v for k, v in reply.items() if k not in ("id", "jsonrpc")}


def via_proxy_and_direct(mos: Mos, method: str, params: dict[str, Any], **kw: Any) -> tuple[dict, dict]:
    """The answers through the proxy (called with ``kw``, e.g. the writer's token) and straight from the upstream."""
    upstream, name = mos.direct(method)
    return answer(mos.proxy, method, params, **kw), answer(upstream, name, params)


def logged(daemon: Daemon, text: str, timeout: float = 5.0) -> bool:
    """Whether ``text`` appears in the daemon's log within ``timeout`` (call lines are written a loop turn late)."""
    deadline = time.monotonic() + timeout
    while text not in daemon.log:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def links(ns: Netns) -> set[str]:
    return {link["ifname"] for link in ns.ip_json("link", "show")}


# ---------------------------------------------------------------- renamed stand-ins
def test_rename_serves_the_upstream_names(mos: Mos) -> None:
    net_names = {m["name"] for m in mos.net.call("rpc.discover")["methods"]}
    vol_names = {m["name"] for m in mos.vol.call("rpc.discover")["methods"]}
    catalogue = {s.name for s in methods.registry()}
    assert net_names == {n.replace("net.", "mosnet.", 1) if n.startswith("net.") else n for n in catalogue}
    assert vol_names == {n.replace("vol.", "storage.", 1) if n.startswith("vol.") else n for n in catalogue}
    assert answer(mos.net, "net.verify")["error"]["code"] == -32601
    assert answer(mos.net, "mosnet.verify") == {"result": {"ok": True, "drift": []}}
    assert answer(mos.vol, "storage.list_disks").keys() == answer(mos.proxy, "vol.list_disks").keys()


def test_rpc_discover_is_the_catalogue_in_proxy_mode(mos: Mos) -> None:
    assert mos.proxy.call("rpc.discover") == json.loads(json.dumps(methods.registry().openrpc()))


# ---------------------------------------------------------------- same answers, same effects
@pytest.mark.parametrize("method, params", READS, ids=[f"{m}{p or ''}" for m, p in READS])
def test_reads_answer_the_same_through_the_proxy(mos: Mos, method: str, params: dict[str, Any]) -> None:
    # Other runs on this machine add and remove loop devices and mounts between two calls,
    # so a host-wide vol.* read may differ once; a proxy that altered answers differs every time.
    for _ in range(3):
        proxied, direct = via_proxy_and_direct(mos, method, params)
        if proxied == direct:
            break
    assert proxied == direct


def nft_comments(ns: Netns) -> list[str]:
    ruleset = json.loads(ns.exec("nft", "-j", "list", "ruleset").stdout)["nftables"]
    return [item["rule"].get("comment", "") for item in ruleset if "rule" in item]


def write_scenario(mos: Mos, call: Callable[[str, dict[str, Any]], dict[str, Any]], *, dst: str,
                   port: int) -> list[str]:
    """Writes through ``call``, each effect checked in the kernel; the answers with names and ids masked."""
    bridge, tap = short_name("pxb"), short_name("pxt")
    answers = []

    def step(method: str, params: dict[str, Any]) -> dict[str, Any]:
        got = call(method, params)
        answers.append(got)
        return got

    assert step("net.bridge.add", {"name": bridge})["result"]["changed"] is True
    assert mos.ns.ip_json("-d", "link", "show", bridge)[0]["linkinfo"]["info_kind"] == "bridge"
    assert step("net.bridge.add", {"name": bridge})["result"]["changed"] is False
    assert step("net.vm.create_tap", {"name": tap, "bridge": bridge})["result"]["changed"] is True
    assert mos.ns.ip_json("link", "show", tap)[0]["master"] == bridge
    assert step("net.routes.add", {"dst": dst, "dev": bridge})["result"]["changed"] is True
    assert [r["dev"] for r in mos.ns.ip_json("route", "show", dst)] == [bridge]
    rule = step("net.firewall.add_rule", {"port": port, "proto": "tcp", "comment": "proxy test"})["result"]
    assert rule["id"] in nft_comments(mos.ns)
    step("net.bridge", {"name": bridge})
    step("net.interfaces", {"name": tap})
    assert step("net.firewall.remove_rule", {"id": rule["id"]})["result"]["changed"] is True
    assert step("net.routes.delete", {"dst": dst, "dev": bridge})["result"]["changed"] is True
    assert step("net.vm.delete_tap", {"name": tap})["result"]["changed"] is True
    assert step("net.bridge.delete", {"name": bridge})["result"]["changed"] is True
    assert step("net.bridge.delete", {"name": bridge})["result"]["changed"] is False
    assert rule["id"] not in nft_comments(mos.ns) and not mos.ns.ip_json("route", "show", dst)
    assert not {bridge, tap} & links(mos.ns)
    masked = []
    for got in answers:
        text = json.dumps(got).replace(bridge, "BRIDGE").replace(tap, "TAP").replace(dst, "DST")
        text = re.sub(r'"(mac|address)": "[^"]*"', r'"\1": "-"', text.replace(str(port), "PORT"))
        text = re.sub(r'"index": [0-9]+', '"index": 0', text)
        masked.append(re.sub(r"fw-[0-9a-f]+", "ID", text))
    return masked


def test_writes_have_the_same_answers_and_kernel_effects(mos: Mos) -> None:
    proxied = write_scenario(mos, lambda m, p: answer(mos.proxy, m, p, token=TOKEN), dst="198.51.100.0/24", port=8080)
    direct = write_scenario(mos, lambda m, p: answer(*mos.direct(m), p), dst="203.0.113.0/24", port=8081)
    assert proxied == direct


def storage_scenario(mos: Mos, call: Callable[[str, dict[str, Any]], dict[str, Any]], disk: str) -> list[str]:
    """Partition, format, mount, read and unmount ``disk`` through ``call``; effects checked; answers masked."""
    answers = []

    def step(method: str, params: dict[str, Any]) -> dict[str, Any]:
        got = call(method, params)
        answers.append(got)
        return got

    part = step("vol.create_partition", {"disk": disk, "size_bytes": 32 * MIB, "label": "px-data"})["result"]
    table = json.loads(run(["sfdisk", "-J", disk]).stdout)["partitiontable"]
    assert part["changed"] and [(p["size"] * 512, p.get("name")) for p in table["partitions"]] == [(32 * MIB, "px-data")]
    assert step("vol.create_partition", {"disk": disk, "size_bytes": 32 * MIB, "label": "px-data"})["result"] == \
        {**part, "changed": False}
    made = step("vol.create_filesystem", {"device": part["path"], "fs_type": "ext4", "label": "pxfs"})["result"]
    assert made["changed"] and blkid(part["path"])["TYPE"] == "ext4" and made["uuid"] == blkid(part["path"])["UUID"]
    target = mos.loops.mountpoint(f"mnt-{os.path.basename(disk)}")
    assert step("vol.mount", {"source": part["path"], "target": target, "persist": False})["result"]["changed"]
    assert findmnt(target)["source"] == part["path"]
    step("vol.list_partitions", {"disk": disk})
    step("vol.list_free_space", {"disk": disk})
    step("vol.usage", {"path": target})
    assert step("vol.unmount", {"target": target})["result"]["changed"] is True
    assert findmnt(target) is None
    assert step("vol.unmount", {"target": target})["result"]["changed"] is False
    masked = []
    for got in answers:
        text = json.dumps(got).replace(part["path"], "PART").replace(disk, "DISK").replace(target, "TARGET")
        masked.append(re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", text))
    return masked


def test_storage_writes_have_the_same_answers_and_effects(mos: Mos) -> None:
    proxied = storage_scenario(mos, lambda m, p: answer(mos.proxy, m, p, token=TOKEN), mos.disks[0])
    direct = storage_scenario(mos, lambda m, p: answer(*mos.direct(m), p), mos.disks[1])
    assert proxied == direct


def test_a_reader_cannot_write_through_the_proxy_though_the_upstream_would_let_it(mos: Mos) -> None:
    name = short_name("pxr")
    refused = answer(mos.proxy, "net.bridge.add", {"name": name})
    assert refused["error"]["code"] == -32002
    assert refused["error"]["data"]["required"] == "write" and refused["error"]["data"]["granted"] == "read"
    assert name not in links(mos.ns)
    upstream, upstream_name = mos.direct("net.bridge.add")
    assert answer(upstream, upstream_name, {"name": name})["result"]["changed"] is True  # the upstream lets root
    assert answer(upstream, "mosnet.bridge.delete", {"name": name})["result"]["changed"] is True
    writer_bridge = short_name("pxw")
    with_token = answer(mos.proxy, "net.bridge.add", {"name": writer_bridge}, token=TOKEN)
    assert with_token["result"]["changed"] is True and writer_bridge in links(mos.ns)
    # the caller's identity stays at the proxy: the upstream sees the proxy's own peer credentials
    assert logged(mos.proxy, "identity=token:ci method=net.bridge.add")
    assert logged(mos.net, "identity=user:root method=mosnet.bridge.add") and "identity=token:ci" not in mos.net.log
    assert answer(mos.proxy, "net.bridge.delete", {"name": writer_bridge}, token=TOKEN)["result"]["changed"]
    # validation happens in osd too: a bad name never reaches the upstream
    assert logged(mos.net, "method=mosnet.bridge.delete")
    calls_before = mos.net.log.count("method=mosnet.bridge.add")
    assert answer(mos.proxy, "net.bridge.add", {"name": "a/b"}, token=TOKEN)["error"]["code"] == -32602
    assert logged(mos.proxy, "method=net.bridge.add ms=")  # the refusal is logged by the proxy...
    time.sleep(0.1)
    assert mos.net.log.count("method=mosnet.bridge.add") == calls_before  # ...and never reached the upstream


def test_upstream_errors_pass_through_unchanged(mos: Mos) -> None:
    proxied, direct = via_proxy_and_direct(mos, "net.interfaces", {"name": "nosuch0"})
    assert proxied == direct and proxied["error"]["code"] == -32004
    proxied, direct = via_proxy_and_direct(mos, "net.bridge.delete", {"name": "lo"}, token=TOKEN)
    assert proxied == direct and proxied["error"]["code"] == -32005  # lo is not a bridge
    proxied, direct = via_proxy_and_direct(mos, "net.ovs", {})
    assert proxied == direct and proxied["error"]["code"] == -32010  # MOS-only on a native stand-in


def test_an_upstream_lacking_methods_is_logged_and_its_error_passed_through(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        mos = Mos(stack, tmp_path, net_args=())  # serves net.*, not mosnet.*
        assert logged(mos.proxy, "lacks")
        count = {ns: sum(s.namespace == ns for s in methods.registry()) for ns in ("net", "vol")}
        assert f"net.* upstream at {mos.net.socket} lacks {count['net']} of {count['net']} methods" in mos.proxy.log
        assert answer(mos.proxy, "net.verify") == answer(mos.net, "mosnet.verify")
        assert answer(mos.proxy, "net.verify")["error"]["code"] == -32601
        assert logged(mos.proxy, f"vol.* upstream at {mos.vol.socket} serves all {count['vol']} methods")


# ---------------------------------------------------------------- failure isolation
def test_a_killed_upstream_fails_fast_alone_and_is_back_without_a_proxy_restart(own_mos: Mos) -> None:
    mos = own_mos
    assert "result" in answer(mos.proxy, "net.verify")
    mos.net.kill()
    started = time.monotonic()
    down = answer(mos.proxy, "net.verify")
    assert time.monotonic() - started < 1.0
    assert down["error"]["code"] == -32000
    assert down["error"]["data"]["namespace"] == "net" and down["error"]["data"]["socket"] == mos.net.socket
    assert "ECONNREFUSED" in down["error"]["data"]["reason"]
    _, vol_direct = via_proxy_and_direct(mos, "vol.list_disks", {})
    assert answer(mos.proxy, "vol.list_disks") == vol_direct
    health = mos.proxy.call("rpc.health")
    assert health["status"] == "degraded"
    assert health["namespaces"]["net"]["ok"] is False and health["namespaces"]["net"]["status"] == "unreachable"
    assert health["namespaces"]["vol"]["ok"] is True

    mos.net.start()
    assert answer(mos.proxy, "net.verify") == {"result": {"ok": True, "drift": []}}
    assert mos.proxy.call("rpc.health")["namespaces"]["net"]["ok"] is True
    assert mos.proxy.proc.poll() is None


def test_a_stopped_upstream_times_out_after_the_deadline_and_recovers(own_mos: Mos) -> None:
    mos = own_mos
    assert "result" in answer(mos.proxy, "net.verify")
    mos.net.signal(signal.SIGSTOP)
    try:
        vol_seen: list[float] = []

        def vol_meanwhile() -> None:
            time.sleep(0.2)
            t0 = time.monotonic()
            answer(mos.proxy, "vol.list_disks")
            vol_seen.append(time.monotonic() - t0)

        other = threading.Thread(target=vol_meanwhile)
        other.start()
        started = time.monotonic()
        hung = answer(mos.proxy, "net.verify")
        elapsed = time.monotonic() - started
        other.join()
        assert hung["error"]["code"] == -32030 and hung["error"]["data"] == {"seconds": DEADLINE_S}
        assert DEADLINE_S <= elapsed < DEADLINE_S + 1.0
        # vol starts 0.2 s in: waiting for the hung namespace would take DEADLINE_S - 0.2 s or more
        assert vol_seen and vol_seen[0] < DEADLINE_S - 0.5
        started = time.monotonic()
        health = mos.proxy.call("rpc.health")
        assert time.monotonic() - started < 1.5
        assert health["namespaces"]["net"]["status"] == "timeout" and health["namespaces"]["vol"]["ok"] is True
    finally:
        mos.net.signal(signal.SIGCONT)
    assert answer(mos.proxy, "net.verify") == {"result": {"ok": True, "drift": []}}


# ---------------------------------------------------------------- concurrency
def socket_fds(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(FileNotFoundError):
            count += os.readlink(fd).startswith("socket:")
    return count


def test_eight_clients_for_ten_seconds_without_errors_or_leaks(mos: Mos) -> None:
    calls = [("net.verify", {}), ("vol.list_disks", {}), ("net.interfaces", {}), ("rpc.health", None)]
    # the direct answer's kind: a result (its value may change with the host), or an exact error
    expected = {m: via_proxy_and_direct(mos, m, p)[1] for m, p in calls if p is not None}
    pids = {"proxy": mos.proxy.proc.pid, "net": mos.net.proc.pid, "vol": mos.vol.proc.pid}
    baseline = {name: socket_fds(pid) for name, pid in pids.items()}
    problems: list[str] = []
    counts = [0] * 8
    stop_at = time.monotonic() + 10

    def client(i: int) -> None:
        with Client(mos.proxy.socket) as c:
            n = 0
            while time.monotonic() < stop_at:
                method, params = calls[(i + n) % len(calls)]
                n += 1
                reply = c.request({"jsonrpc": "2.0", "id": n, "method": method, "params": params or {}})
                got = {k: v for k, v in reply.items() if k not in ("id", "jsonrpc")}
                if method == "rpc.health":
                    if got.get("result", {}).get("status") != "ok":
                        problems.append(f"{method}: {got}")
                elif "error" in got if "result" in expected[method] else got != expected[method]:
                    problems.append(f"{method}: {got}")
            counts[i] = n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == [], problems[:5]
    assert min(counts) > 50, counts
    time.sleep(0.3)  # let the proxy notice its clients are gone
    after = {name: socket_fds(pid) for name, pid in pids.items()}
    # at most one pooled connection per concurrent client to each upstream, none per client left
    assert after["proxy"] <= baseline["proxy"] + 16, (baseline, after)
    assert after["net"] <= baseline["net"] + 8 and after["vol"] <= baseline["vol"] + 8, (baseline, after)
