"""Parsers of the vol backend on captured tool output: btrfs-progs, mountinfo, blkid and udev, MD."""

from __future__ import annotations

from pathlib import Path

import pytest

from osd.backends.native.vol import btrfs_text, md, mountinfo, probe

SAMPLES = Path(__file__).parent / "samples"


def sample(*parts: str) -> str:
    return (SAMPLES.joinpath(*parts)).read_text()


# ---------------------------------------------------------------- btrfs
def test_subvolume_list_with_spaces_and_snapshots() -> None:
    subs = {s["path"]: s for s in btrfs_text.parse_subvolume_list(sample("btrfs", "subvolume-list.txt"))}
    assert set(subs) == {"vm1", "vm1/nested", "with space", "vm1-snap"}
    assert subs["vm1/nested"]["parent"] == subs["vm1"]["id"] == 256
    assert subs["vm1-snap"]["parent_uuid"] == subs["vm1"]["uuid"] and subs["vm1"]["parent_uuid"] is None
    readonly = btrfs_text.parse_subvolume_list(sample("btrfs", "subvolume-list-readonly.txt"))
    assert [(s["id"], s["path"]) for s in readonly] == [(subs["vm1-snap"]["id"], "vm1-snap")]


def test_subvolume_show() -> None:
    info = btrfs_text.parse_subvolume_show(sample("btrfs", "subvolume-show-snapshot.txt"))
    assert info == {"id": 259, "uuid": "5b00df64-148c-7d47-afa1-a69357d8c118",
                    "parent_uuid": "b65681da-d395-ba46-9472-eac097e3329f", "parent_id": 5, "readonly": True}


def test_qgroups() -> None:
    groups = btrfs_text.parse_qgroups(sample("btrfs", "qgroup-show.txt"))
    assert groups[256] == {"referenced_bytes": 4210688, "exclusive_bytes": 4210688, "limit_bytes": 10485760}
    assert groups[5]["limit_bytes"] is None and set(groups) == {5, 256, 257, 258, 259}


def test_df_and_usage_of_raid1() -> None:
    df = btrfs_text.parse_df(sample("btrfs", "df-raid1.txt"))
    assert {(d["type"], d["profile"]) for d in df} >= {("data", "raid1"), ("metadata", "raid1"), ("system", "raid1")}
    usage = btrfs_text.parse_usage(sample("btrfs", "usage-raid1.txt"))
    assert usage["overall"]["device_size_bytes"] == 629145600 and usage["overall"]["data_ratio"] == 2.0
    assert usage["overall"]["multiple_profiles"] is False
    data = next(a for a in usage["allocations"] if a["type"] == "data")
    assert data == {"type": "data", "profile": "raid1", "size_bytes": 67108864, "used_bytes": 4194304,
                    "devices": [{"device": "/dev/loopA", "bytes": 67108864},
                                {"device": "/dev/loopB", "bytes": 67108864}]}
    assert usage["unallocated"] == [{"device": "/dev/loopA", "bytes": 205520896},
                                    {"device": "/dev/loopB", "bytes": 205520896}]


def test_device_stats_and_show() -> None:
    stats = btrfs_text.parse_device_stats_table(sample("btrfs", "device-stats-table.txt"))
    assert [(s["devid"], s["device"], s["corruption_errs"]) for s in stats] == \
        [(1, "/dev/loopA", 0), (2, "/dev/loopB", 0)]
    show = btrfs_text.parse_show(sample("btrfs", "show-raid1.txt"))
    assert show["label"] == "MOSRAID" and [d["devid"] for d in show["devices"]] == [1, 2]
    assert all(d["size_bytes"] == 314572800 for d in show["devices"])


def test_scrub_status() -> None:
    never = btrfs_text.parse_scrub_status(sample("btrfs", "scrub-status-never.txt"))
    assert never["status"] == "never" and never["data_bytes_scrubbed"] == 0
    done = btrfs_text.parse_scrub_status(sample("btrfs", "scrub-status-finished.txt"))
    assert done["status"] == "finished" and done["data_bytes_scrubbed"] == 8388608 and done["csum_errors"] == 0


def test_balance_status() -> None:
    assert btrfs_text.parse_balance_status(sample("btrfs", "balance-status-none.txt")) == {"status": "none"}
    # the format btrfs-progs prints (cmds/balance.c), which loop devices finish too fast to capture
    running = "Balance on '/mnt' is running\n2 out of about 5 chunks balanced (3 considered),  60% left\n"
    assert btrfs_text.parse_balance_status(running) == {
        "status": "running", "chunks_balanced": 2, "chunks_total": 5, "chunks_considered": 3, "percent_left": 60}
    paused = "Balance on '/mnt' is paused\n1 out of about 4 chunks balanced (1 considered),  75% left\n"
    assert btrfs_text.parse_balance_status(paused)["status"] == "paused"


# ---------------------------------------------------------------- mountinfo
def test_mountinfo_escapes_and_optional_fields() -> None:
    text = ("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
            "90 27 0:45 /sub\\040vol /mnt/a\\040b\\134c\\011d rw shared:5 master:2 - "
            "btrfs /dev/loop3p1 rw,subvol=/sub\\040vol\n")
    root, mount = mountinfo.parse_mountinfo(text)
    assert (root.major, root.minor, root.target, root.source) == (254, 0, "/", "/dev/vda")
    assert mount.target == "/mnt/a b\\c\td" and mount.root == "/sub vol" and mount.major == 0
    assert mount.fs_type == "btrfs" and mount.option("subvol") == "/sub vol"
    assert mountinfo.mount_of("/", [root, mount]) is root


def test_swaps() -> None:
    text = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
            "/dev/loop1p2  partition\t8188\t0\t-2\n/swap\\040file file 4 0 -3\n")
    assert mountinfo.parse_swaps(text) == ["/dev/loop1p2", "/swap file"]


# ---------------------------------------------------------------- blkid and udev: one vocabulary
BLKID = """DEVNAME=/dev/loop0
PTUUID=6f3820d3-b87e-4238-848c-37201fe7dab2
PTTYPE=gpt

DEVNAME=/dev/loop0p2
LABEL=é a"$b
UUID=e0a21211-ff67-42ea-a11e-0bb6d2591110
VERSION=1.0
BLOCK_SIZE=1024
TYPE=ext4
USAGE=filesystem
PART_ENTRY_SCHEME=gpt
PART_ENTRY_NAME=my part
PART_ENTRY_UUID=cff7fa13-323b-7146-824c-7c97ba16e045
PART_ENTRY_TYPE=0FC63DAF-8483-4772-8E79-3D69D8477DE4
PART_ENTRY_NUMBER=2
PART_ENTRY_OFFSET=206848
PART_ENTRY_SIZE=102400
PART_ENTRY_DISK=7:0
"""
# what udev's database holds for the same partition (blkid builtin; _ENC values \\x-encoded)
UDEV = {
    "DEVNAME": "/dev/loop0p2", "ID_FS_LABEL": "é_a_$b", "ID_FS_LABEL_ENC": "é\\x20a\\x22\\x24b",
    "ID_FS_UUID": "e0a21211-ff67-42ea-a11e-0bb6d2591110", "ID_FS_UUID_ENC": "e0a21211-ff67-42ea-a11e-0bb6d2591110",
    "ID_FS_VERSION": "1.0", "ID_FS_TYPE": "ext4", "ID_FS_USAGE": "filesystem", "ID_PART_ENTRY_SCHEME": "gpt",
    "ID_PART_ENTRY_NAME": "my\\x20part", "ID_PART_ENTRY_UUID": "cff7fa13-323b-7146-824c-7c97ba16e045",
    "ID_PART_ENTRY_TYPE": "0fc63daf-8483-4772-8e79-3d69d8477de4", "ID_PART_ENTRY_NUMBER": "2",
    "ID_PART_ENTRY_OFFSET": "206848", "ID_PART_ENTRY_SIZE": "102400", "ID_PART_ENTRY_DISK": "7:0",
}


def test_blkid_and_udev_give_the_same_probe() -> None:
    found = probe.parse_export(BLKID)
    assert found["/dev/loop0"].pt_type == "gpt" and found["/dev/loop0"].fs_type is None
    part = found["/dev/loop0p2"]
    assert (part.fs_type, part.fs_label, part.part_name, part.part_number) == ("ext4", 'é a"$b', "my part", 2)
    assert part.part_type == "0fc63daf-8483-4772-8e79-3d69d8477de4"
    assert probe.from_udev(UDEV) == part


def test_udev_partition_table_of_the_parent_is_not_a_table_on_the_partition() -> None:
    """Seen in the VM lab: udev sets the disk's ID_PART_TABLE_TYPE on every partition too."""
    fresh = {"DEVNAME": "/dev/vdb1", "DEVTYPE": "partition", "ID_PART_TABLE_TYPE": "gpt",
             "ID_PART_TABLE_UUID": "5d1f5b7e-2a8c-4c8e-9d0e-1f2a3b4c5d6e", "ID_PART_ENTRY_SCHEME": "gpt",
             "ID_PART_ENTRY_NUMBER": "1", "ID_PART_ENTRY_OFFSET": "2048", "ID_PART_ENTRY_SIZE": "204800"}
    found = probe.from_udev(fresh)
    assert found.pt_type is None and not found.holds_data and found.part_number == 1
    disk = probe.from_udev({"DEVNAME": "/dev/vdb", "DEVTYPE": "disk", "ID_PART_TABLE_TYPE": "gpt"})
    assert disk.pt_type == "gpt" and disk.holds_data


def test_unreadable_or_ambivalent_devices_count_as_holding_data() -> None:
    errors = probe.parse_errors("blkid: error: /dev/vda: Operation not permitted\n"
                                "/dev/loop3: ambivalent result (probably more filesystems on the device)\n")
    assert errors == {"/dev/vda": "Operation not permitted",
                      "/dev/loop3": "ambivalent result (probably more filesystems on the device)"}
    unknown = probe.Probe(error="Operation not permitted")
    assert unknown.holds_data and "contents unknown" in unknown.what
    assert not probe.Probe().holds_data and probe.Probe(pt_type="gpt").holds_data


# ---------------------------------------------------------------- MD (samples captured by the VM lab)
MD = SAMPLES / "md"


def test_mdstat_lifecycle() -> None:
    assert md.parse_mdstat((MD / "00-no-arrays.mdstat").read_text()) == []
    assert md.parse_mdstat((MD / "raid1-07-stopped.mdstat").read_text()) == []
    (resync,) = md.parse_mdstat((MD / "raid1-01-resyncing.mdstat").read_text())
    assert (resync["device"], resync["level"], resync["state"]) == ("/dev/md0", "raid1", "active")
    assert resync["sync"]["action"] == "resync" and 0 < resync["sync"]["percent"] < 100
    assert [m["device"] for m in resync["members"]] == ["/dev/vdb", "/dev/vdc"]
    (spare,) = md.parse_mdstat((MD / "raid1-03-spare-added.mdstat").read_text())
    assert [(m["device"], m["role"]) for m in spare["members"]][-1] == ("/dev/vdd", "spare") and spare["sync"] is None
    (failed,) = md.parse_mdstat((MD / "raid1-04-member-failed-recovering.mdstat").read_text())
    assert failed["state"] == "active, degraded" and failed["sync"]["action"] == "recovery"
    assert {m["device"]: m["state"] for m in failed["members"]}["/dev/vdb"] == "faulty"
    (degraded,) = md.parse_mdstat((MD / "raid1-06-degraded.mdstat").read_text())
    assert (degraded["raid_devices"], degraded["active_devices"]) == (2, 1) and len(degraded["members"]) == 1
    (raid0,) = md.parse_mdstat((MD / "raid0-active.mdstat").read_text())
    assert raid0["level"] == "raid0" and raid0["size_bytes"] == 126976 * 1024
    (raid5,) = md.parse_mdstat((MD / "raid5-01-building.mdstat").read_text())
    assert raid5["level"] == "raid5" and raid5["sync"]["action"] == "recovery"


def test_mdadm_detail() -> None:
    clean = md.parse_detail((MD / "raid1-02-clean.detail").read_text())
    assert (clean["device"], clean["level"], clean["state"], clean["raid_devices"]) == ("/dev/md0", "raid1", "clean", 2)
    assert clean["size_bytes"] == 64512 * 1024 and clean["sync"] is None and clean["name"] == "osd-vmlab:osdtest"
    assert [(m["device"], m["raid_device"], m["state"]) for m in clean["members"]] == \
        [("/dev/vdb", 0, "active sync"), ("/dev/vdc", 1, "active sync")]
    rebuilding = md.parse_detail((MD / "raid1-04-member-failed-recovering.detail").read_text())
    assert rebuilding["state"] == "clean, degraded, recovering" and rebuilding["sync"]["action"] == "recovery"
    assert {m["device"]: m["state"] for m in rebuilding["members"]} == \
        {"/dev/vdd": "spare rebuilding", "/dev/vdc": "active sync", "/dev/vdb": "faulty"}
    degraded = md.parse_detail((MD / "raid1-06-degraded.detail").read_text())
    assert degraded["members"][-1] == {"number": None, "major": 0, "minor": 0, "raid_device": 1, "state": "removed",
                                       "device": None}
    resync = md.parse_detail((MD / "raid1-01-resyncing.detail").read_text())
    assert resync["sync"]["action"] == "resync"
    export = md.parse_export((MD / "raid1-03-spare-added.export").read_text())
    assert export["members"] == {"/dev/vdc": "1", "/dev/vdd": "spare", "/dev/vdb": "0"}


def test_mdstat_without_samples() -> None:
    text = ("Personalities : [raid1]\nmd127 : active (auto-read-only) raid1 sdb1[1] sda1[0]\n"
            "      1046528 blocks super 1.2 [2/2] [UU]\n      \tresync=PENDING\n\nunused devices: <none>\n")
    (array,) = md.parse_mdstat(text)
    assert array["state"] == "active (auto-read-only)" and array["sync"] == {"action": "resync", "percent": 0.0,
                                                                             "status": "pending"}


def test_udev_database_is_used_for_initialised_devices_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The glue to pyudev: initialised devices answer from their properties, the others are left
    for blkid; without /run/udev/data pyudev is not consulted at all."""
    import sys
    import types

    class Device:
        def __init__(self, name: str) -> None:
            self.is_initialized = name == "loop0p2"
            self.properties = UDEV if self.is_initialized else {}

    class Devices:
        @staticmethod
        def from_name(context: object, subsystem: str, name: str) -> Device:
            assert subsystem == "block"
            if name == "gone":
                raise fake.DeviceNotFoundError(name)
            return Device(name)

    fake = types.SimpleNamespace(Context=lambda: object(), Devices=Devices, DeviceNotFoundError=LookupError)
    monkeypatch.setitem(sys.modules, "pyudev", fake)
    monkeypatch.setattr(probe.os.path, "isdir", lambda path: path == "/run/udev/data")
    found = probe.udev_probes(["loop0", "loop0p2", "gone"])
    assert found == {"/dev/loop0p2": probe.parse_export(BLKID)["/dev/loop0p2"]}
    monkeypatch.setattr(probe.os.path, "isdir", lambda path: False)
    assert probe.udev_probes(["loop0p2"]) == {}
