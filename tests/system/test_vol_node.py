"""The storage path a node goes through, on loop devices, through the real daemon.

Every effect is checked independently of the daemon's answers: blkid, sfdisk, findmnt,
the btrfs tool, /proc, filefrag and real writes.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from support.daemon import Daemon
from support.looplab import LoopLab, MIB, VOL_DAEMON, blkid, config_file, findmnt, run

pytestmark = pytest.mark.root

# [vol] label_prefix of this module's daemon: per run, because list_filesystems and the
# default of list_subvolumes look across the machine, where other runs make filesystems too.
PREFIX = f"T{secrets.token_hex(3).upper()}"  # upper case: it labels a vfat too


@pytest.fixture(scope="module")
def lab() -> Iterator[LoopLab]:
    with LoopLab("volnode") as lab:
        yield lab


@pytest.fixture(scope="module")
def disks(lab: LoopLab) -> dict[str, str]:
    return {"node": lab.disk(400), "small": lab.disk(300), "r1": lab.disk(200), "r2": lab.disk(200)}


@pytest.fixture(scope="module")
def daemon(lab: LoopLab, disks: dict[str, str]) -> Iterator[Daemon]:
    with Daemon(VOL_DAEMON, config_file(lab, label_prefix=PREFIX)) as d:
        yield d


def btrfs_json(*argv: str) -> str:
    return run(["btrfs", *argv]).stdout


def test_node_path_btrfs(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    disk = disks["node"]
    # ---- partition the blank disk: a GPT appears and the kernel sees the partition
    part = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 250 * MIB, "label": "osd-data"})
    assert part["changed"] and part["number"] == 1 and part["size_bytes"] == 250 * MIB
    table = json.loads(run(["sfdisk", "-J", disk]).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    assert [(p["start"] * 512, p["size"] * 512, p.get("name")) for p in table["partitions"]] == \
        [(part["start_bytes"], 250 * MIB, "osd-data")]
    assert lab.partitions(disk) == [part["path"]]
    again = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 250 * MIB, "label": "osd-data"})
    assert again == {**part, "changed": False}

    # ---- btrfs with the node's label (prefix + DATA)
    made = daemon.call("vol.create_filesystem", {"device": part["path"], "fs_type": "btrfs", "label": f"{PREFIX}DATA"})
    tags = blkid(part["path"])
    assert made["changed"] and tags["TYPE"] == "btrfs" and tags["LABEL"] == f"{PREFIX}DATA"
    assert made["uuid"] == tags["UUID"]
    assert daemon.call("vol.create_filesystem", {"device": part["path"], "fs_type": "btrfs"})["changed"] is False
    listed = {p["path"]: p for p in daemon.call("vol.list_partitions", {"disk": disk})}
    assert listed[part["path"]]["fs_type"] == "btrfs" and listed[part["path"]]["fs_uuid"] == tags["UUID"]
    assert listed[part["path"]]["part_label"] == "osd-data" and listed[part["path"]]["type"] == "linux"

    # ---- mount it by UUID
    mnt = lab.mountpoint("data")
    mounted = daemon.call("vol.mount", {"source": f"UUID={tags['UUID']}", "target": mnt})
    assert mounted == {"changed": True, "target": mnt, "source": f"UUID={tags['UUID']}", "persist": True}
    seen = findmnt(mnt)
    assert seen is not None and seen["fstype"] == "btrfs" and seen["source"] == part["path"]
    # the same filesystem by its path: mounted already, but the record now names it by path
    assert daemon.call("vol.mount", {"source": part["path"], "target": mnt})["changed"] is True
    assert daemon.call("vol.mount", {"source": part["path"], "target": mnt})["changed"] is False
    fs = [f for f in daemon.call("vol.list_filesystems") if f["uuid"] == tags["UUID"]]
    assert fs and fs[0]["mount_points"] == [mnt] and fs[0]["label"] == f"{PREFIX}DATA"
    assert {d["path"]: d["in_use"] for d in daemon.call("vol.list_disks")}[disk] is True

    # ---- subvolumes, and a read-only snapshot of one
    for name in ("vm1", "vm2"):
        sub = daemon.call("vol.create_subvolume", {"path": f"{mnt}/{name}"})
        assert sub["changed"] and sub["id"] >= 256
    assert daemon.call("vol.create_subvolume", {"path": f"{mnt}/vm1"})["changed"] is False
    with open(f"{mnt}/vm1/disk.img", "wb") as f:
        f.write(os.urandom(MIB))
    snap = daemon.call("vol.snapshot_subvolume", {"source": f"{mnt}/vm1", "dest": f"{mnt}/vm1-snap", "readonly": True})
    assert snap == {"changed": True, "path": f"{mnt}/vm1-snap", "readonly": True}
    assert daemon.call("vol.snapshot_subvolume", {"source": f"{mnt}/vm1", "dest": f"{mnt}/vm1-snap",
                                                  "readonly": True})["changed"] is False
    assert "readonly" in run(["btrfs", "subvolume", "show", f"{mnt}/vm1-snap"]).stdout.split("Flags:")[1].split("\n")[0]
    with pytest.raises(OSError) as denied:
        open(f"{mnt}/vm1-snap/new", "wb")
    assert denied.value.errno == errno.EROFS
    tool_list = run(["btrfs", "subvolume", "list", mnt]).stdout
    subs = {s["path"]: s for s in daemon.call("vol.list_subvolumes")}  # default: the {PREFIX}DATA filesystem
    assert set(subs) == {f"{mnt}/vm1", f"{mnt}/vm2", f"{mnt}/vm1-snap"}
    assert all(f"path {os.path.basename(p)}" in tool_list for p in subs)
    assert subs[f"{mnt}/vm1-snap"]["readonly"] and not subs[f"{mnt}/vm1"]["readonly"]
    assert subs[f"{mnt}/vm1-snap"]["parent_uuid"] == subs[f"{mnt}/vm1"]["uuid"]
    assert daemon.call("vol.delete_subvolume", {"path": f"{mnt}/vm2"}) == {"changed": True}
    assert not os.path.exists(f"{mnt}/vm2")
    assert daemon.call("vol.delete_subvolume", {"path": f"{mnt}/vm2"}) == {"changed": False}

    # ---- a quota: writes fail past the limit, and succeed again once it is cleared
    assert daemon.call("vol.set_quota", {"path": f"{mnt}/vm1", "limit_bytes": 8 * MIB}) == \
        {"changed": True, "limit_bytes": 8 * MIB}
    assert daemon.call("vol.set_quota", {"path": f"{mnt}/vm1", "limit_bytes": 8 * MIB})["changed"] is False
    qgroups = run(["btrfs", "qgroup", "show", "-re", "--raw", mnt]).stdout
    vm1_id = {s["path"]: s["id"] for s in daemon.call("vol.list_subvolumes", {"path": mnt})}[f"{mnt}/vm1"]
    assert any(line.split()[:1] == [f"0/{vm1_id}"] and line.split()[3] == str(8 * MIB) for line in qgroups.splitlines())
    quota = {s["path"]: s["quota"] for s in daemon.call("vol.list_subvolumes", {"path": mnt})}[f"{mnt}/vm1"]
    assert quota is not None and quota["limit_bytes"] == 8 * MIB
    dd = subprocess.run(["dd", "if=/dev/urandom", f"of={mnt}/vm1/big", "bs=1M", "count=20", "conv=fsync"],
                        capture_output=True, text=True)
    assert dd.returncode != 0 and "Disk quota exceeded" in dd.stderr
    assert daemon.call("vol.set_quota", {"path": f"{mnt}/vm1", "limit_bytes": None}) == \
        {"changed": True, "limit_bytes": None}
    run(["dd", "if=/dev/urandom", f"of={mnt}/vm1/big", "bs=1M", "count=20", "conv=fsync"])

    # ---- scrub in the background, slowed down (the kernel's per-device limit) to watch it run
    speed = f"/sys/fs/btrfs/{tags['UUID']}/devinfo/1/scrub_speed_max"
    with open(speed, "w") as f:
        f.write(str(2 * MIB))
    started = daemon.call("vol.scrub_start", {"path": mnt})
    assert started["changed"] and started["running"]
    deadline = time.monotonic() + 10
    while "Status:           running" not in run(["btrfs", "scrub", "status", mnt]).stdout:
        assert time.monotonic() < deadline, "the scrub never showed as running"
        time.sleep(0.05)
    status = daemon.call("vol.scrub_status", {"path": mnt})
    assert status["running"] and status["status"] == "running" and status["job"]["outcome"] == "running"
    assert daemon.call("vol.scrub_start", {"path": mnt}) == {"changed": False, "path": mnt, "running": True}
    with open(speed, "w") as f:
        f.write("0")  # no limit: let it finish
    status = _wait(daemon, "vol.scrub_status", mnt)
    assert status["status"] == "finished" and status["job"]["outcome"] == "finished"
    assert status["data_bytes_scrubbed"] > 20 * MIB and status["csum_errors"] == 0
    assert "Status:           finished" in run(["btrfs", "scrub", "status", mnt]).stdout

    # ---- balance in the background, then its status
    before = btrfs_json("filesystem", "df", "-b", mnt)
    started = daemon.call("vol.balance_start", {"path": mnt, "filters": {"data": "usage=100", "metadata": "usage=100"}})
    assert started["changed"] and started["running"]
    status = _wait(daemon, "vol.balance_status", mnt)
    assert status["status"] == "none" and status["job"]["outcome"] == "finished"
    assert "relocate" in status["job"]["message"] and before  # btrfs says how many chunks it moved
    assert daemon.call("vol.balance_start", {"path": mnt})["changed"] is True  # full balance, no filters
    assert _wait(daemon, "vol.balance_status", mnt)["job"]["argv"][-2] == "--full-balance"

    # ---- grow the loop file and the partition, then resize_max
    lab.grow(disk, 500)
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N", "1", disk], input=", +\n")
    run(["partx", "-u", disk])
    device_size = int(open(f"/sys/class/block/{os.path.basename(part['path'])}/size").read()) * 512
    assert device_size > 250 * MIB
    grown = daemon.call("vol.resize_max", {"path": mnt})
    fs_size = device_size // 4096 * 4096  # btrfs keeps whole sectors (4 KiB)
    assert grown == {"changed": True, "size_bytes": fs_size, "devid": 1}
    assert f"size {fs_size} " in btrfs_json("filesystem", "show", "--raw", mnt)
    assert daemon.call("vol.resize_max", {"path": mnt, "devid": 1})["changed"] is False
    usage = daemon.call("vol.usage", {"path": mnt})
    statvfs = os.statvfs(mnt)
    assert usage["size_bytes"] == statvfs.f_blocks * statvfs.f_frsize and usage["fs_type"] == "btrfs"

    # ---- unmount, and it is forgotten
    assert daemon.call("vol.unmount", {"target": mnt}) == {"changed": True}
    assert findmnt(mnt) is None
    assert daemon.call("vol.unmount", {"target": mnt}) == {"changed": False}
    assert mnt not in {m["target"] for m in daemon.call("vol.list_mounts")}


def _wait(daemon: Daemon, method: str, path: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = daemon.call(method, {"path": path})
        if not status["running"] or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_defrag_joins_a_fragmented_file(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    disk = disks["small"]
    part = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 150 * MIB})
    daemon.call("vol.create_filesystem", {"device": part["path"], "fs_type": "btrfs", "label": f"{PREFIX}frag"})
    mnt = lab.mountpoint("frag")
    daemon.call("vol.mount", {"source": part["path"], "target": mnt, "persist": False})
    path = f"{mnt}/fragmented"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    block = os.urandom(4096)
    for start in (0, 1):  # every other block, synced, then the gaps: one extent per block
        for i in range(start, 128, 2):
            os.pwrite(fd, block, i * 4096)
            os.fsync(fd)
    os.close(fd)

    def extents() -> int:
        return int(run(["filefrag", path]).stdout.split(":")[1].split()[0])

    assert extents() > 32
    assert daemon.call("vol.defrag", {"path": mnt, "recursive": True}) == {"changed": True}
    run(["sync"])
    assert extents() <= 2
    daemon.call("vol.unmount", {"target": mnt})


def test_ext4_swap_and_free_space(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    disk = disks["small"]  # after the defrag test's 150 MiB partition, if it ran
    free_before = daemon.call("vol.list_free_space", {"disk": disk})
    ext = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 40 * MIB})
    swap = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 8 * MIB, "type": "swap"})
    assert ext["start_bytes"] == free_before[0]["start_bytes"]
    assert swap["start_bytes"] == ext["start_bytes"] + 40 * MIB
    free_after = daemon.call("vol.list_free_space", {"disk": disk})
    assert free_after == [{"start_bytes": swap["start_bytes"] + 8 * MIB,
                           "size_bytes": free_before[-1]["start_bytes"] + free_before[-1]["size_bytes"]
                           - swap["start_bytes"] - 8 * MIB}]
    rows = [line.split() for line in run(["sfdisk", "-F", disk]).stdout.splitlines()]
    start, end = next(map(int, r[:2]) for r in rows if len(r) >= 3 and r[0].isdigit())
    assert start * 512 <= free_after[0]["start_bytes"]  # sfdisk does not align; the end agrees
    assert (end + 1) * 512 == free_after[0]["start_bytes"] + free_after[0]["size_bytes"]

    label = f"logs{secrets.token_hex(4)}"  # mounted by label: unique among runs sharing this machine
    made = daemon.call("vol.create_filesystem", {"device": ext["path"], "fs_type": "ext4", "label": label})
    assert blkid(ext["path"])["TYPE"] == "ext4" and blkid(ext["path"])["LABEL"] == label
    assert made["uuid"] == blkid(ext["path"])["UUID"]
    sw = daemon.call("vol.create_filesystem", {"device": swap["path"], "fs_type": "swap", "label": f"{PREFIX}swap"})
    assert blkid(swap["path"])["TYPE"] == "swap" and sw["uuid"] == blkid(swap["path"])["UUID"]
    assert blkid(swap["path"])["PART_ENTRY_TYPE"] == "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"

    mnt = lab.mountpoint("logs")
    daemon.call("vol.mount", {"source": f"LABEL={label}", "target": mnt, "options": "noatime", "persist": False})
    seen = findmnt(mnt)
    assert seen is not None and seen["fstype"] == "ext4" and "noatime" in seen["options"].split(",")
    entry = next(m for m in daemon.call("vol.list_mounts") if m["target"] == mnt)
    assert entry["managed"] and entry["source"] == ext["path"] and "noatime" in entry["options"]
    usage = daemon.call("vol.usage", {"path": mnt})
    sv = os.statvfs(mnt)
    assert usage["inodes"] == sv.f_files and usage["available_bytes"] == sv.f_bavail * sv.f_frsize
    assert daemon.error("vol.mount", {"source": swap["path"], "target": lab.mountpoint("swap")}).code == -32602
    daemon.call("vol.unmount", {"target": mnt})


def test_partition_with_an_sgdisk_type_code(daemon: Daemon, disks: dict[str, str]) -> None:
    part = daemon.call("vol.create_partition", {"disk": disks["small"], "size_bytes": 4 * MIB, "type": "8301"})
    assert blkid(part["path"])["PART_ENTRY_TYPE"] == "8da63339-0007-60c0-c436-083ac8230908"  # Linux reserved
    assert daemon.call("vol.list_partitions", {"disk": disks["small"]})[-1]["type"] == \
        "8da63339-0007-60c0-c436-083ac8230908"


def test_btrfs_raid1_over_two_loop_devices(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    pair = [disks["r1"], disks["r2"]]
    made = daemon.call("vol.create_btrfs_raid", {"devices": pair, "label": f"{PREFIX}RAID"})
    assert made["changed"] and made["devices"] == pair
    assert {blkid(d)["UUID"] for d in pair} == {made["uuid"]} and blkid(pair[0])["LABEL"] == f"{PREFIX}RAID"
    assert daemon.call("vol.create_btrfs_raid", {"devices": pair, "label": f"{PREFIX}RAID"})["changed"] is False
    mnt = lab.mountpoint("raid")
    daemon.call("vol.mount", {"source": f"UUID={made['uuid']}", "target": mnt, "persist": False})
    df = daemon.call("vol.fs_df", {"path": mnt})
    profiles = {d["type"]: d["profile"] for d in df}
    assert profiles["data"] == profiles["metadata"] == profiles["system"] == "raid1"
    assert "Data, RAID1" in run(["btrfs", "filesystem", "df", mnt]).stdout
    stats = daemon.call("vol.device_stats", {"path": mnt})
    assert sorted(s["device"] for s in stats) == sorted(pair) and all(s["corruption_errs"] == 0 for s in stats)
    usage = daemon.call("vol.fs_usage", {"path": mnt})
    assert usage["overall"]["data_ratio"] == 2.0
    assert {d["device"] for a in usage["allocations"] for d in a["devices"]} == set(pair)
    fs = next(f for f in daemon.call("vol.list_filesystems") if f["uuid"] == made["uuid"])
    assert sorted(fs["devices"]) == sorted(pair) and fs["mount_points"] == [mnt]
    in_use = {d["path"]: d["in_use"] for d in daemon.call("vol.list_disks")}
    assert in_use[pair[0]] and in_use[pair[1]]  # both members are mounted, not only the mount's source
    daemon.call("vol.unmount", {"target": mnt})


def test_vfat_mount_answers_not_supported_here(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    part = daemon.call("vol.create_partition", {"disk": disks["small"], "size_bytes": 2 * MIB, "type": "efi"})
    daemon.call("vol.create_filesystem", {"device": part["path"], "fs_type": "vfat", "label": f"{PREFIX}EFI"})
    assert blkid(part["path"])["TYPE"] == "vfat" and blkid(part["path"])["LABEL"] == f"{PREFIX}EFI"
    mnt = lab.mountpoint("efi")
    if "vfat" in open("/proc/filesystems").read():
        pytest.skip("this kernel has vfat; the VM lab covers the positive case")
    err = daemon.error("vol.mount", {"source": part["path"], "target": mnt})
    assert err.code == -32010 and err.data == {"reason": "kernel has no vfat support"}
    assert findmnt(mnt) is None
    assert mnt not in {m["target"] for m in daemon.call("vol.list_mounts")}


def test_bcachefs_answers_not_supported(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    part = daemon.call("vol.create_partition", {"disk": disks["small"], "size_bytes": 2 * MIB})
    before = lab.fingerprint(part["path"])
    tool = shutil.which("bcachefs", path="/usr/sbin:/usr/bin:/sbin:/bin")
    kernel = "bcachefs" in open("/proc/filesystems").read()
    if tool and kernel:
        pytest.skip("bcachefs is usable here")
    err = daemon.error("vol.create_filesystem", {"device": part["path"], "fs_type": "bcachefs"})
    reasons = []
    if not tool:
        reasons.append("bcachefs is not installed (Debian package bcachefs-tools)")
    if not kernel:
        reasons.append("kernel has no bcachefs support")
    assert err.code == -32010 and err.data == {"reason": "; ".join(reasons)}
    assert lab.fingerprint(part["path"]) == before


def test_md_methods_answer_not_supported_here(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    if os.path.exists("/proc/mdstat"):
        pytest.skip("this kernel has MD; the VM lab covers it")
    reason = {"reason": "kernel has no MD support (no /proc/mdstat)"}
    for method, params in (("vol.list_md_arrays", {}), ("vol.md_detail", {"device": "/dev/md0"}),
                           ("vol.stop_md_array", {"device": "/dev/md0"})):
        err = daemon.error(method, params)
        assert (err.code, err.data) == (-32010, reason), method
    a = daemon.call("vol.create_partition", {"disk": disks["small"], "size_bytes": 4 * MIB, "type": "raid"})
    b = daemon.call("vol.create_partition", {"disk": disks["small"], "size_bytes": 4 * MIB, "type": "raid"})
    before = [lab.fingerprint(p["path"]) for p in (a, b)]
    err = daemon.error("vol.create_md_array", {"devices": [a["path"], b["path"]], "name": "osdt"})
    assert (err.code, err.data) == (-32010, reason)
    assert [lab.fingerprint(p["path"]) for p in (a, b)] == before
    assert not any(n.startswith("md") for n in os.listdir("/sys/block"))  # mdadm never ran
    assert daemon.call("vol.inventory")["md_arrays"] == []
    md = next(t for t in daemon.call("vol.feasible_topologies") if t["name"] == "md-raid1")
    assert md["feasible"] is False and md["reason"] == reason["reason"]


def test_feasible_topologies(lab: LoopLab) -> None:
    blank = [lab.disk(130), lab.disk(130)]
    small = lab.disk(100)
    with Daemon(VOL_DAEMON, config_file(lab, allowed=[*blank, small], name="topo.toml")) as d:
        found = {t["name"]: t for t in d.call("vol.feasible_topologies")}
    assert found["single"]["feasible"] and sorted(found["single"]["disks"]) == sorted(blank)
    assert found["btrfs-raid1"]["feasible"] and sorted(found["btrfs-raid1"]["disks"]) == sorted(blank)
    assert not found["btrfs-raid1c3"]["feasible"] and found["btrfs-raid1c3"]["reason"].endswith("found 2")
    assert not found["btrfs-raid10"]["feasible"]
    assert small not in found["single"]["disks"]  # 100 MiB is below btrfs's minimum


def test_inventory_is_one_consistent_picture(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    inv = daemon.call("vol.inventory")
    assert {d["path"] for d in inv["disks"]} >= set(disks.values())
    mine = set(disks.values())  # other runs attach and detach loop devices meanwhile
    assert [p for p in inv["partitions"] if p["disk"] in mine] == \
        [p for p in daemon.call("vol.list_partitions") if p["disk"] in mine]
    def ours(mounts: list[dict[str, Any]]) -> list[str]:  # other runs mount and unmount meanwhile
        return [m["target"] for m in mounts if m["target"] == "/" or m["target"].startswith(lab.dir)]

    assert ours(inv["mounts"]) == ours(daemon.call("vol.list_mounts"))
    kinds = {d["path"]: d["kind"] for d in inv["disks"]}
    assert all(kinds[d] == "loop" for d in disks.values())
    lsblk = json.loads(run(["lsblk", "-J", "-b", "-o", "PATH,SIZE,TYPE"]).stdout)["blockdevices"]
    sizes = {d["path"]: d["size"] for d in lsblk if d["type"] == "loop"}
    assert all({d["path"]: d["size_bytes"] for d in inv["disks"]}[p] == sizes[p] for p in disks.values())
