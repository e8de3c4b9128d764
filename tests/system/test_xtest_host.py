"""osd xtest --spawn --profile host, for real: a daemon in a namespace, loop disks, every scenario.

The lab the runner built (its namespace, its loop devices, named in the report) must be
gone afterwards, after a full run and after Ctrl-C alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from osd.xtest.lab import collect_orphans
from osd.xtest.record import RECORDS
from support.lines import read_until

pytestmark = pytest.mark.root

OSD = [sys.executable, "-m", "osd"]


def assert_lab_gone(doc: dict[str, Any]) -> None:
    daemon = doc["daemon"]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert daemon["netns"] not in namespaces
    loops = json.loads(subprocess.run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"],
                                      capture_output=True, text=True, check=True).stdout or '{"loopdevices": []}')
    rundir = str(Path(daemon["socket"]).parent)
    assert not [d for d in loops["loopdevices"] if str(d.get("back-file", "")).startswith(rundir)]
    assert not list(Path(rundir).glob("*.img"))
    shutil.rmtree(rundir, ignore_errors=True)  # kept by the runner for its logs when the run did not pass


def test_host_profile_passes(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    out = subprocess.run([*OSD, "xtest", "--spawn", "--profile", "host", "--report", str(report)],
                         capture_output=True, text=True, timeout=900)
    doc = json.loads(report.read_text())
    assert_lab_gone(doc)
    assert out.returncode in (0, 1), f"{out.stdout}\n{out.stderr[-3000:]}"
    assert doc["registration"]["ok"], doc["registration"]
    methods = doc["methods"]
    assert {m for m, e in methods.items() if e["outcome"] == "not-run"} == {
        "net.ovs", "net.flows", "net.datapath", "net.ovs.conntrack", "net.ovs.conntrack.stats",
        "net.ovs.conntrack.flush"}
    failed = {m: e["detail"] for m, e in methods.items() if e["outcome"] == "failed"}
    assert not failed, f"{failed}\n{out.stdout}\n{out.stderr[-3000:]}"
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "RESULT: PASS", out.stdout
    unsupported = {m for m, e in methods.items() if e["outcome"] == "unsupported"}
    assert unsupported == {"vol.list_md_arrays", "vol.md_detail", "vol.create_md_array", "vol.stop_md_array"}
    assert methods["vol.mount"]["cases"]["vfat"]["outcome"] == "unsupported"
    assert methods["net.bridge.add"]["cases"]["vlan_filtering"]["outcome"] == "unsupported"
    assert doc["leftovers"] == [] and doc["teardown"] == []


def test_ctrl_c_tears_the_lab_down(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.Popen([*OSD, "xtest", "--spawn", "--profile", "host", "--report", str(report)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(proc, "[3/")  # the lab is built and scenarios are running
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    doc = json.loads(report.read_text())
    assert doc["result"] == "INTERRUPTED" and doc["exit_code"] == 130
    assert_lab_gone(doc)


def test_the_lab_of_a_killed_runner_is_collected_by_the_next_run(tmp_path: Path) -> None:
    proc = subprocess.Popen([*OSD, "xtest", "--spawn", "--profile", "host", "--report", str(tmp_path / "r.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = read_until(proc, "[3/")
        rundir = next(line.split("building the lab in ")[1].split()[0] for line in lines
                      if "building the lab in" in line)
        record = RECORDS / f"{Path(rundir).name}.json"
        lab = json.loads(record.read_text())
        proc.send_signal(signal.SIGKILL)  # no teardown, no report
        proc.wait(10)
    finally:
        proc.kill()
    daemon_ns = lab["namespaces"][0]
    deadline = time.monotonic() + 10  # the daemon dies with the runner (PR_SET_PDEATHSIG)
    while _pids(daemon_ns) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pids(daemon_ns)
    # Another run on this machine may collect the orphan first: it is "the next run" too.
    assert daemon_ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout \
        or not record.exists()
    done = asyncio.run(collect_orphans())
    if not any(rundir in line for line in done):
        deadline = time.monotonic() + 60
        while record.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not record.exists(), done
    assert_lab_gone({"daemon": {"netns": daemon_ns, "socket": f"{rundir}/osd.sock"}})
    for loop in lab["loops"]:
        assert not os.path.exists(loop[1])


def _pids(netns: str) -> list[str]:
    return subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
