"""The vol backend's decisions without a kernel: the guard's rules, free extents, topologies, job starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from osd import tools
from osd.backends.native.vol import filesystems, maintenance, partitions, topology
from osd.backends.native.vol.blockdev import Storage
from osd.backends.native.vol.guard import Guard, busy_reason
from osd.backends.native.vol.probe import Probe
from osd.backends.native.vol.sysfs import BlockDev
from osd.config import VolConfig

MIB = 1 << 20


def dev(name: str, disk: str | None = None, holders: tuple[str, ...] = (), slaves: tuple[str, ...] = ()) -> BlockDev:
    return BlockDev(name=name, major=8, minor=0, size_bytes=1 << 30, disk=disk, number=1 if disk else None,
                    start_bytes=MIB if disk else None, removable=False, rotational=False, read_only=False,
                    model=None, serial=None, holders=holders, slaves=slaves, backing_file=None, logical_sector=512)


def storage(**kw: object) -> Storage:
    devices = [dev("sda"), dev("sda1", "sda"), dev("sda2", "sda"), dev("sdb"), dev("sdc", holders=("md0",)),
               dev("sdd", holders=("dm-0",)), dev("md0", slaves=("sdc",)), dev("sde"), dev("sde1", "sde")]
    base: dict[str, object] = {"devices": {d.name: d for d in devices}, "probes": {}, "mounts": [], "mounted": {},
                               "swaps": set(), "root": set(), "btrfs": {}, "mount_types": {}}
    base.update(kw)
    return Storage(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw, name, reason", [
    ({"root": {"sda", "sda1"}}, "sda", "backs the root filesystem"),
    ({"mounted": {"sda2": ["/srv"]}}, "sda2", "mounted at /srv"),
    ({"mounted": {"sda2": ["/srv"]}}, "sda", "its partition /dev/sda2 is mounted at /srv"),
    ({"swaps": {"sde1"}}, "sde1", "active swap"),
    ({"swaps": {"sde1"}}, "sde", "its partition /dev/sde1 is active swap"),
    ({}, "sdc", "a member of the active MD array /dev/md0"),
    ({}, "sdd", "held by /dev/dm-0"),
])
def test_each_busy_rule_alone(kw: dict[str, object], name: str, reason: str) -> None:
    st = storage(**kw)
    assert busy_reason(st, name) == reason
    assert Guard(VolConfig()).refusal(st, name, f"/dev/{name}") == reason
    assert busy_reason(storage(), "sdb") is None and busy_reason(st, "sdb") is None


def test_a_partition_next_to_a_mounted_one_is_free() -> None:
    assert busy_reason(storage(mounted={"sda2": ["/srv"]}), "sda1") is None


def test_protected_and_allowed_patterns() -> None:
    st = storage()
    guard = Guard(VolConfig(protected_devices=("/dev/sdb*",)))
    assert guard.refusal(st, "sdb", "/dev/sdb") == "matches [vol] protected_devices"
    assert guard.refusal(st, "sde1", "/dev/sde1") is None
    covered = Guard(VolConfig(protected_devices=("/dev/sde",)))  # a disk covers its partitions
    assert covered.refusal(st, "sde1", "/dev/sde1") == "matches [vol] protected_devices"
    allowed = Guard(VolConfig(allowed_devices=("/dev/sde",)))
    assert allowed.refusal(st, "sde1", "/dev/sde1") is None and allowed.refusal(st, "sde", "/dev/sde") is None
    assert allowed.refusal(st, "sdb", "/dev/sdb") == "not in [vol] allowed_devices"
    assert Guard(VolConfig(allowed_devices=())).refusal(st, "sde", "/dev/sde") == "not in [vol] allowed_devices"
    # a symlink spelling is matched as given and as resolved
    assert allowed.refusal(st, "sdb", "/dev/disk/by-id/x") == "not in [vol] allowed_devices"


def test_check_raises_refused_for_the_first_refused_device() -> None:
    from osd.errors import Refused

    st = storage(mounted={"sda2": ["/srv"]})
    with pytest.raises(Refused) as err:
        Guard(VolConfig()).check(st, [("sdb", "/dev/sdb"), ("sda2", "/dev/sda2")])
    assert err.value.data == {"device": "/dev/sda2", "reason": "mounted at /srv"}


# ---------------------------------------------------------------- partitions
def test_free_extents_are_aligned_and_skip_partitions() -> None:
    table = partitions.Table("gpt", 512, 34, 614366, ((1, 2048, 204800), (2, 206848, 102400)))
    assert partitions.free_extents(table) == [{"start_bytes": 309248 * 512, "size_bytes": (614366 - 309248 + 1) * 512}]
    gap = partitions.Table("gpt", 512, 34, 614366, ((2, 206848, 102400),))
    assert partitions.free_extents(gap)[0] == {"start_bytes": MIB, "size_bytes": (206848 - 2048) * 512}
    blank = partitions.blank_table(300 * MIB, 512)
    assert (blank.first_lba, blank.last_lba) == (34, 300 * 2048 - 34)
    assert partitions.blank_table(300 * MIB, 4096).first_lba == 6


def test_choose_extent_rounds_up_and_refuses_what_does_not_fit() -> None:
    from osd.errors import InvalidParams

    table = partitions.Table("gpt", 512, 34, 614366, ((1, 4096, 2048),))  # a 1 MiB gap, then the rest
    assert partitions.choose_extent(table, 1000 * 1024) == (2048, 2048)  # rounded to 1 MiB; fits the gap
    assert partitions.choose_extent(table, 2 * MIB) == (6144, 4096)  # the gap is too small: the next one
    assert partitions.choose_extent(table, None) == (2048, 2048)  # all of the first extent
    with pytest.raises(InvalidParams) as err:
        partitions.choose_extent(table, 400 * MIB)
    assert err.value.data["path"] == "/size_bytes"


def test_type_names() -> None:
    assert partitions.type_guid(None) == ("0fc63daf-8483-4772-8e79-3d69d8477de4", None)
    assert partitions.type_guid("8200") == ("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", None)
    assert partitions.type_guid("8301") == ("0fc63daf-8483-4772-8e79-3d69d8477de4", "8301")  # sgdisk sets it after
    guid = "A19D880F-05FC-4D3B-A006-743F0F84911E"
    assert partitions.type_guid(guid) == (guid.lower(), None)


def test_parse_sfdisk() -> None:
    text = ('{"partitiontable": {"label": "gpt", "id": "X", "device": "/dev/loop0", "unit": "sectors", '
            '"firstlba": 34, "lastlba": 614366, "sectorsize": 512, "partitions": ['
            '{"node": "/dev/loop0p1", "start": 2048, "size": 204800, "type": "T"},'
            '{"node": "/dev/loop0p12", "start": 206848, "size": 2048, "type": "T"}]}}')
    assert partitions.parse_sfdisk(text).partitions == ((1, 2048, 204800), (12, 206848, 2048))


# ---------------------------------------------------------------- topologies and kernel support
def test_topologies() -> None:
    found = {t["name"]: t for t in topology.feasible([("/dev/a", 200 * MIB), ("/dev/b", 120 * MIB)],
                                                     {"btrfs": None, "md": "kernel has no MD support"})}
    assert found["single"]["feasible"] and found["single"]["disks"] == ["/dev/a", "/dev/b"]
    assert not found["btrfs-raid1"]["feasible"] and found["btrfs-raid1"]["disks"] == ["/dev/a"]
    assert found["btrfs-raid1"]["reason"].endswith("found 1")
    assert found["md-raid1"] == {**found["md-raid1"], "feasible": False, "reason": "kernel has no MD support"}


def test_kernel_support_from_proc_filesystems_and_modules(tmp_path: Path) -> None:
    proc = tmp_path / "filesystems"
    proc.write_text("nodev\tsysfs\n\text4\n\tbtrfs\n")
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "modules.dep").write_text("kernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz\n")
    assert filesystems.kernel_supports("btrfs", str(proc), str(modules))
    assert filesystems.kernel_supports("vfat", str(proc), str(modules))  # loadable on demand
    assert not filesystems.kernel_supports("bcachefs", str(proc), str(modules))
    assert not filesystems.kernel_supports("vfat", str(proc), str(tmp_path / "none"))


def test_module_names_match_with_dashes_or_underscores(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text("kernel/drivers/md/md-mod.ko.xz:\nkernel/drivers/md/raid1.ko.xz: "
                                          "kernel/drivers/md/md-mod.ko.xz\n")
    (tmp_path / "modules.builtin").write_text("kernel/net/8021q/8021q.ko\n")
    assert filesystems.module_available("md_mod", str(tmp_path))
    assert filesystems.module_available("8021q", str(tmp_path))
    assert not filesystems.module_available("md", str(tmp_path))
    assert not filesystems.module_available("raid", str(tmp_path))


def test_labels() -> None:
    from osd.errors import InvalidParams

    filesystems.check_label("vfat", "MOSEFI")
    with pytest.raises(InvalidParams):
        filesystems.check_label("vfat", "TWELVE_CHARS")
    with pytest.raises(InvalidParams):
        filesystems.check_label("ext4", "é" * 9)  # 18 bytes
    assert Probe(fs_type="ext4").holds_data


def test_a_partition_is_removed_again_when_a_later_step_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """create_partition's rollback: the kernel refuses the new partition (partx fails) after the
    table was written, so the partition is deleted and the table made on a blank disk is wiped."""
    import asyncio

    from osd import tools
    from osd.errors import ToolFailed

    calls: list[list[str]] = []
    table_json = ('{"partitiontable": {"label": "gpt", "firstlba": 34, "lastlba": 614366, "sectorsize": 512, '
                  '"partitions": [{"node": "/dev/loop9p1", "start": 2048, "size": 204800}]}}')

    async def fake_run(argv: list[str], **kw: object) -> tools.Result:
        calls.append(list(argv))
        if argv[:2] == ["partx", "-u"]:
            raise ToolFailed(list(argv), 1, "partx: /dev/loop9: error adding partition 1")
        return tools.Result(tuple(argv), 0, table_json if argv[:2] == ["sfdisk", "-J"] else "", "")

    monkeypatch.setattr(tools, "run", fake_run)
    monkeypatch.setattr(partitions.sysfs, "scan", lambda **kw: {})
    blank = partitions.blank_table(300 * MIB, 512)
    with pytest.raises(ToolFailed):
        asyncio.run(partitions.add("loop9", blank, 2048, 204800, None, "data"))
    assert calls[0][0] == "sfdisk" and calls[0][-1] == "/dev/loop9"  # label: gpt + the partition
    assert ["sfdisk", "--no-reread", "--no-tell-kernel", "--part-label", "/dev/loop9", "1", "data"] in calls
    assert calls[-3:] == [["partx", "-d", "--nr", "1", "/dev/loop9"],
                          ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "--delete", "/dev/loop9", "1"],
                          ["wipefs", "-a", "-q", "/dev/loop9"]]


class _Where:
    """A BtrfsPath stand-in: the filesystem every path below is on."""

    def __init__(self, path: str) -> None:
        self.uuid, self.target = "fs-1", "/mnt/fs"


@pytest.mark.parametrize("method, status", [("scrub_start", "status:\tnever\n"), ("balance_start", "")])
def test_concurrent_starts_start_one_job(monkeypatch: pytest.MonkeyPatch, method: str, status: str) -> None:
    """Two starts at once: one starts the job, the other finds it running (changed false).
    Before, both passed the "nothing runs" check while the status tool ran, and both started one."""
    started: list[tuple[str, ...]] = []

    async def run(argv: list[str], **kwargs: object) -> tools.Result:
        if "start" in argv:
            started.append(tuple(argv))
            await asyncio.sleep(0.2)
        else:
            await asyncio.sleep(0.01)  # the status tool: other calls run meanwhile
        return tools.Result(tuple(argv), 0, status, "")

    monkeypatch.setattr(maintenance, "BtrfsPath", _Where)
    monkeypatch.setattr(tools, "run", run)
    service = maintenance.MaintenanceService(None)  # type: ignore[arg-type]

    async def scenario() -> list[dict[str, object]]:
        results = await asyncio.gather(*(getattr(service, method)("/mnt/fs/a") for _ in range(2)))
        await service.close()
        return list(results)

    results = asyncio.run(scenario())
    assert sorted(r["changed"] for r in results) == [False, True]
    assert len(started) == 1


def _scrub_text(started: str, data_bytes: int) -> str:
    return (f"UUID: fs-1\nScrub started:    {started}\nStatus:           finished\nDuration:         0:00:01\n"
            f"\tdata_bytes_scrubbed: {data_bytes}\n\tcsum_errors: 0\n")


@pytest.mark.parametrize("status_file, expected", [
    (_scrub_text("Mon Nov 23 04:39:36 2026", 13631488), 20971520),  # the same scrub, a stale write
    ("", 20971520),  # the file read while being rewritten
    (_scrub_text("Mon Nov 23 05:00:00 2026", 5), 5),  # a scrub started since, by someone else
])
def test_scrub_status_after_the_job_prefers_its_final_figures(
        monkeypatch: pytest.MonkeyPatch, status_file: str, expected: int) -> None:
    job_output = "scrub done for fs-1\n" + _scrub_text("Mon Nov 23 04:39:36 2026", 20971520)

    async def run(argv: list[str], **kwargs: object) -> tools.Result:
        return tools.Result(tuple(argv), 0, job_output if "start" in argv else status_file, "")

    monkeypatch.setattr(maintenance, "BtrfsPath", _Where)
    monkeypatch.setattr(tools, "run", run)
    service = maintenance.MaintenanceService(None)  # type: ignore[arg-type]

    async def scenario() -> dict[str, object]:
        monkeypatch.setattr(tools, "run", run)
        service.jobs.start("scrub", "fs-1", ["btrfs", "scrub", "start", "-B", "-R", "/mnt/fs"])
        job = service.jobs.get("scrub", "fs-1")
        while job is not None and job.running:
            await asyncio.sleep(0.01)
        status = await service.scrub_status("/mnt/fs/a")
        await service.close()
        return status

    status = asyncio.run(scenario())
    assert status["status"] == "finished" and status["data_bytes_scrubbed"] == expected


def test_a_mount_tag_names_one_filesystem_or_is_a_conflict() -> None:
    from osd.backends.native.vol.blockdev import find_source
    from osd.errors import Conflict

    probes = {
        "sda1": Probe(fs_type="ext4", fs_label="data", fs_uuid="u-1"),
        "sda2": Probe(fs_type="ext4", fs_label="data", fs_uuid="u-2"),  # a second disk labelled alike
        "sdb": Probe(fs_type="ext4", fs_label="clone", fs_uuid="u-3"),
        "sde": Probe(fs_type="ext4", fs_label="clone", fs_uuid="u-3"),  # dd'd: the same UUID
        "sde1": Probe(fs_type="vfat", fs_label="nouuid"),
        "sdd": Probe(fs_type="vfat", fs_label="nouuid"),  # two labelled alike, neither with a UUID
        "sdc": Probe(fs_type="btrfs", fs_label="pool", fs_uuid="u-4"),
        "md0": Probe(fs_type="btrfs", fs_label="pool", fs_uuid="u-4"),  # members of one btrfs
    }
    st = storage(probes=probes)
    for source in ("LABEL=data", "UUID=u-3", "LABEL=clone", "LABEL=nouuid"):
        with pytest.raises(Conflict) as err:
            find_source(st, source)
        assert "/dev/" in err.value.data["reason"], source
    assert find_source(st, "UUID=u-1") == "sda1" and find_source(st, "UUID=U-1") == "sda1"
    assert find_source(st, "LABEL=pool") == "sdc" and find_source(st, "UUID=u-4") == "sdc"
    assert find_source(st, "LABEL=none") is None and find_source(st, "/dev/osdt-none") is None
