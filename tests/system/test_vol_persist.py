"""Mounts survive the daemon (SPEC §4): kill -9, unmount behind its back, restart.

A persisted mount whose source still exists is mounted again at start; one whose device
is gone is pruned with a log line; a mount made with persist=false is forgotten. The
state file is checked directly, and net.verify reports a managed mount that disappears
while the daemon runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from support.daemon import Daemon
from support.looplab import LoopLab, VOL_DAEMON, blkid, config_file, findmnt, run

pytestmark = pytest.mark.root


@pytest.fixture
def lab() -> Iterator[LoopLab]:
    with LoopLab("volpersist") as lab:
        yield lab


def test_kill_9_unmount_restart(lab: LoopLab) -> None:
    keep, gone, temp = lab.disk(120), lab.disk(120), lab.disk(120)
    for dev in (keep, gone, temp):
        run(["mkfs.ext4", "-q", dev])
    args = config_file(lab)
    workdir = lab.mountpoint("daemon")
    # a space in each target: mountinfo escapes it as \040
    targets = {name: lab.mountpoint(f"mnt {name}") for name in ("keep", "gone", "temp")}
    first = Daemon(VOL_DAEMON, args, workdir=workdir).start()
    try:
        first.call("vol.mount", {"source": f"UUID={blkid(keep)['UUID']}", "target": targets["keep"]})
        first.call("vol.mount", {"source": gone, "target": targets["gone"]})
        first.call("vol.mount", {"source": temp, "target": targets["temp"], "persist": False})
        managed = {m["target"] for m in first.call("vol.list_mounts") if m["managed"]}
        assert managed == set(targets.values())
        first.kill()  # kill -9: nothing is written at exit
    finally:
        first.cleanup()
    state = json.load(open(os.path.join(workdir, "state", "mounts.json")))
    assert state["format"] == "osd-state" and state["kind"] == "mounts"
    assert {t: e["persist"] for t, e in state["data"]["mounts"].items()} == \
        {targets["keep"]: True, targets["gone"]: True, targets["temp"]: False}

    for target in targets.values():
        run(["umount", target])  # behind the daemon's back
    lab.detach(gone)  # and one device disappears altogether

    second = Daemon(VOL_DAEMON, args, workdir=workdir).start()
    try:
        seen = findmnt(targets["keep"])
        assert seen is not None and seen["source"] == keep and seen["fstype"] == "ext4"
        assert findmnt(targets["gone"]) is None and findmnt(targets["temp"]) is None
        # (another run on this machine may have attached a device of the same name meanwhile)
        assert f"pruned persisted mount {targets['gone']}: its source {gone} " in second.log
        listed = {m["target"]: m["managed"] for m in second.call("vol.list_mounts")}
        assert listed[targets["keep"]] is True and targets["gone"] not in listed and targets["temp"] not in listed
        state = json.load(open(os.path.join(workdir, "state", "mounts.json")))
        assert list(state["data"]["mounts"]) == [targets["keep"]]
        assert mount_drift(second) == []

        run(["umount", targets["keep"]])  # drift while the daemon runs
        assert [(d["name"], d["actual"]) for d in mount_drift(second)] == [(targets["keep"], None)]
        assert second.call("vol.unmount", {"target": targets["keep"]}) == {"changed": True}  # forgets it
        assert mount_drift(second) == []
    finally:
        second.cleanup()


def test_a_device_name_is_checked_against_the_recorded_filesystem(lab: LoopLab) -> None:
    moving, reformatted, blank = lab.disk(120), lab.disk(120), lab.disk(120)
    for dev in (moving, reformatted, blank):
        run(["mkfs.ext4", "-q", dev])
    uuid = blkid(moving)["UUID"]
    args = config_file(lab)
    workdir = lab.mountpoint("daemon")
    targets = {name: lab.mountpoint(name) for name in ("moving", "reformatted", "blank")}
    first = Daemon(VOL_DAEMON, args, workdir=workdir).start()
    try:
        for name, dev in (("moving", moving), ("reformatted", reformatted), ("blank", blank)):
            first.call("vol.mount", {"source": dev, "target": targets[name]})
        first.kill()
    finally:
        first.cleanup()
    for target in targets.values():
        run(["umount", target])
    moved = lab.reattach(moving)  # the same filesystem under another kernel name
    run(["mkfs.ext4", "-q", "-F", reformatted])  # the same name, another filesystem
    run(["wipefs", "-a", "-q", blank])  # the same name, nothing readable: no proof either way

    second = Daemon(VOL_DAEMON, args, workdir=workdir).start()
    try:
        seen = findmnt(targets["moving"])
        assert seen is not None and seen["source"] == moved and blkid(moved)["UUID"] == uuid
        assert f"filesystem UUID {uuid} found on {moved}, no longer on {moving}" in second.log
        assert findmnt(targets["reformatted"]) is None
        assert f"pruned persisted mount {targets['reformatted']}: its source {reformatted} now holds another " \
               f"filesystem" in second.log
        assert findmnt(targets["blank"]) is None
        assert f"could not re-mount {blank} on {targets['blank']}" in second.log
        assert {m["target"] for m in second.call("vol.list_mounts") if m["managed"]} == {targets["moving"]}
        assert [d["name"] for d in second.call("net.verify")["drift"] if d["kind"] == "mount"] == [targets["blank"]]
    finally:
        second.cleanup()


def mount_drift(daemon: Daemon) -> list[dict[str, Any]]:
    return [d for d in daemon.call("net.verify")["drift"] if d["kind"] == "mount"]


def test_an_unreadable_state_file_stops_start_up(lab: LoopLab) -> None:
    workdir = lab.mountpoint("daemon")
    os.makedirs(os.path.join(workdir, "state"))
    with open(os.path.join(workdir, "state", "mounts.json"), "w") as f:
        f.write("{not json")
    d = Daemon(VOL_DAEMON, config_file(lab), workdir=workdir)
    try:
        with pytest.raises(Exception) as err:
            d.start(timeout=15)
        assert "mounts.json" in str(err.value)
    finally:
        d.cleanup()
    assert open(os.path.join(workdir, "state", "mounts.json")).read() == "{not json"  # never replaced
