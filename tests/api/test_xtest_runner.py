"""osd xtest's mechanics against the real daemon with the FakeBackend: exit codes, report, output, Ctrl-C."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from osd.xtest.engine import Scenarios, Trial
from osd.xtest.runner import Options, main
from support.daemon import Daemon
from support.lines import read_until
from support.profiles import base, only, write

OSD = [sys.executable, "-m", "osd"]
TESTS = str(Path(__file__).resolve().parents[1])


def osd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OSD, *args], capture_output=True, text=True, timeout=timeout)


def xtest(options: Options, scenarios: Scenarios) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(options, scenarios=scenarios, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def config_scenarios() -> Scenarios:
    table = Scenarios()

    @table("config", methods=("net.config",))
    async def config(t: Trial) -> None:
        echoed = await t.call("net.config")  # the fake echoes: an open object, so it fits the schema
        t.expect("net.config", echoed["method"] == "net.config", "the fake echoed the call")

    return table


@pytest.mark.parametrize("argv", [["--profile", "host"], ["--profile", "host", "--spawn", "--socket", "/x"],
                                  ["--socket", "/x"], ["--socket", "/x", "--profile", "host", "--quiet",
                                                       "--json-stdout"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert osd("xtest", *argv).returncode == 2


def test_unknown_profile_is_usage_and_an_invalid_one_exits_4(tmp_path: Path) -> None:
    out = osd("xtest", "--socket", "/x", "--profile", "nope")
    assert out.returncode == 2 and "no shipped profile 'nope'" in out.stderr
    doc = base()
    doc["must_succeed"] = doc["must_succeed"][1:]
    out = osd("xtest", "--socket", "/x", "--profile", write(tmp_path, doc))
    assert out.returncode == 4 and "1 catalogue methods are not classified" in out.stderr and "rpc.discover" in out.stderr


def test_an_unreachable_daemon_exits_3_with_a_report(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    out = osd("xtest", "--socket", str(tmp_path / "none.sock"), "--profile", "host", "--report", str(report))
    assert out.returncode == 3, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("RESULT: UNREACHABLE (cannot reach the daemon")
    doc = json.loads(report.read_text())
    assert doc["result"] == "UNREACHABLE" and doc["exit_code"] == 3
    assert doc["methods"]["net.bridge.add"]["detail"].startswith("not reached: cannot reach the daemon")


def test_a_passing_run_its_report_and_outputs(daemon: Daemon, tmp_path: Path) -> None:
    profile = write(tmp_path, only(["net.config"]))
    report = tmp_path / "out" / "report.json"
    options = Options(profile=profile, socket=daemon.socket, report=str(report))
    code, out, err = xtest(options, config_scenarios())
    assert code == 0, out + err
    doc = json.loads(report.read_text())
    assert doc["result"] == "PASS" and doc["exit_code"] == 0
    assert doc["registration"] == {"ok": True, "registered": 74, "missing": [], "unexpected": []}
    assert doc["daemon"]["mode"] == "socket" and doc["daemon"]["backend"] == "native"
    assert doc["counts"] == {"passed": 1, "failed": 0, "unsupported": 0, "skipped": 67, "not-run": 6}
    assert doc["namespaces"]["net"]["passed"] == 1 and doc["namespaces"]["rpc"]["skipped"] == 2
    entry = doc["methods"]["net.config"]
    assert (entry["outcome"], entry["calls"], entry["classification"]) == ("passed", 1, "must_succeed")
    assert doc["methods"]["net.ovs"]["outcome"] == "not-run"
    assert doc["scenarios"][0]["name"] == "config" and doc["scenarios"][0]["status"] == "completed"
    assert [p.name for p in report.parent.iterdir()] == ["report.json"]  # no temporary file left
    lines = out.splitlines()
    assert lines[-1] == "RESULT: PASS"
    assert any(line.split() == ["net", "1", "0", "0", "34", "6"] for line in lines), out
    assert "xtest: [1/1] config: completed" in err

    code, out, err = xtest(Options(profile=profile, socket=daemon.socket, report=str(report), quiet=True),
                           config_scenarios())
    assert (code, out, err) == (0, "RESULT: PASS\n", "")
    code, out, _ = xtest(Options(profile=profile, socket=daemon.socket, report=str(report), json_stdout=True),
                         config_scenarios())
    assert json.loads(out)["result"] == "PASS"


def test_failures_exit_1_and_are_listed(daemon: Daemon, tmp_path: Path) -> None:
    profile = write(tmp_path, only(["net.config", "net.bridge.add", "net.bridge"]))
    table = config_scenarios()

    @table("bridges", methods=("net.bridge.add", "net.bridge"))
    async def bridges(t: Trial) -> None:
        await t.call("net.bridge.add", {"name": "br0"})  # the echo lacks "changed": breaks the schema
        await t.call("net.bridge.add", {"name": "missing"})  # the fake answers -32004

    code, out, _ = xtest(Options(profile=profile, socket=daemon.socket, report=str(tmp_path / "r.json")), table)
    assert code == 1
    assert "net.bridge.add: result breaks the catalogue's result schema at /: 'changed' is a required property" in out
    assert "net.bridge: not reached: net.bridge.add failed: error -32004: bridge 'missing' not found" in out
    assert out.splitlines()[-1] == "RESULT: FAIL (2 failed)"


def test_registration_problems_fail_the_run(daemon: Daemon, tmp_path: Path) -> None:
    doc = only(["net.config"], {}, must_be_registered=["rpc.*", "vol.*"], must_be_unregistered=["net.ovs*"])
    code, out, _ = xtest(Options(profile=write(tmp_path, doc), socket=daemon.socket,
                                 report=str(tmp_path / "r.json")), config_scenarios())
    assert code == 1
    assert "net.ovs: must not be registered, rpc.discover lists it" in out
    assert out.splitlines()[-1] == "RESULT: FAIL (0 failed, 4 registration problems)"


INTERRUPTED_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from osd.xtest.engine import Scenarios
    from osd.xtest.runner import Options, main

    table = Scenarios()

    @table("slow", methods=("net.bridge.add", "net.bridge.delete"))
    async def slow(t):
        await t.call("net.bridge.add", {{"name": "first"}}, undo=("net.bridge.delete", {{"name": "first"}}))
        print("STARTED", file=sys.stderr, flush=True)
        await t.call("net.bridge.add", {{"name": "sleep4000"}}, timeout=60)

    sys.exit(main(Options(profile={profile!r}, socket={socket!r}, report={report!r}), scenarios=table))
""")


def test_ctrl_c_undoes_the_scenario_writes_the_report_and_exits_130(daemon: Daemon, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    script = INTERRUPTED_RUN.format(tests=TESTS, profile=write(tmp_path, only(["net.bridge.add", "net.bridge.delete"])),
                                    socket=daemon.socket, report=str(report))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(proc, "STARTED", timeout=30)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert out.splitlines()[-1].startswith("RESULT: INTERRUPTED")
    doc = json.loads(report.read_text())
    assert doc["result"] == "INTERRUPTED" and doc["exit_code"] == 130
    calls: list[dict[str, Any]] = daemon.call("net.status")["calls"]
    assert calls[-2]["method"] == "net.bridge.delete" and calls[-2]["params"] == {"name": "first"}


def test_the_cli_runs_the_shipped_scenarios(daemon: Daemon, tmp_path: Path) -> None:
    # Reads only (the other scenarios build lab objects, which is for the system tier). The
    # fake backend echoes every call, which no read's result schema accepts: they fail, and
    # the run still ends with a table, a report and exit 1.
    reads = ["rpc.discover", "rpc.health", "net.status", "net.config", "net.interfaces", "net.verify"]
    report = tmp_path / "r.json"
    out = osd("xtest", "--socket", daemon.socket, "--profile", write(tmp_path, only(reads)), "--report", str(report),
              "--timeout-default", "5")
    assert out.returncode == 1, out.stderr
    doc = json.loads(report.read_text())
    outcomes = {m: doc["methods"][m]["outcome"] for m in reads}
    assert outcomes == {"rpc.discover": "passed", "rpc.health": "passed", "net.status": "failed",
                        "net.config": "failed", "net.interfaces": "failed", "net.verify": "failed"}, doc["failed"]
    assert "is not of type 'array'" in doc["methods"]["net.interfaces"]["detail"]
    assert "net.verify: check failed: the result has ok, drift" in out.stdout
    skipped = [s for s in doc["scenarios"] if s["status"].startswith("skipped")]
    assert len(skipped) == len(doc["scenarios"]) - 5
    assert "logs" not in doc
