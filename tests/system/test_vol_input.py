"""Bad input gets a clear error and changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from support.daemon import Daemon
from support.looplab import LoopLab, MIB, VOL_DAEMON, config_file, findmnt, run

pytestmark = pytest.mark.root

MISSING = "/dev/osdt-no-such-device"


@pytest.fixture(scope="module")
def lab() -> Iterator[LoopLab]:
    with LoopLab("volinput") as lab:
        yield lab


@pytest.fixture(scope="module")
def disk(lab: LoopLab) -> str:
    return lab.disk(150)


@pytest.fixture(scope="module")
def daemon(lab: LoopLab, disk: str) -> Iterator[Daemon]:
    with Daemon(VOL_DAEMON, config_file(lab)) as d:
        yield d


@pytest.mark.parametrize("method, params", [
    ("vol.list_partitions", {"disk": MISSING}),
    ("vol.list_free_space", {"disk": MISSING}),
    ("vol.create_partition", {"disk": MISSING}),
    ("vol.create_filesystem", {"device": MISSING, "fs_type": "ext4"}),
    ("vol.create_btrfs_raid", {"devices": [MISSING, MISSING + "2"]}),
    ("vol.mount", {"source": MISSING, "target": "/"}),
    ("vol.mount", {"source": "UUID=00000000-0000-0000-0000-00000000dead", "target": "/"}),
    ("vol.mount", {"source": "LABEL=osdt-no-such-label", "target": "/"}),
])
def test_missing_devices_are_not_found(daemon: Daemon, method: str, params: dict[str, Any]) -> None:
    err = daemon.error(method, params)
    assert err.code == -32004 and err.data["kind"] == "block device", err


def test_an_unattached_loop_device_is_not_found(daemon: Daemon) -> None:
    free = run(["losetup", "-f"]).stdout.strip()  # exists in /dev, has no backing file (size 0)
    assert daemon.error("vol.create_filesystem", {"device": free, "fs_type": "ext4"}).code == -32004


def test_not_a_block_device(daemon: Daemon) -> None:
    err = daemon.error("vol.create_filesystem", {"device": "/dev/null", "fs_type": "ext4"})
    assert err.code == -32602 and "not a block device" in err.data["reason"]


def test_partition_larger_than_the_free_extent(daemon: Daemon, lab: LoopLab, disk: str) -> None:
    before = lab.fingerprint(disk)
    err = daemon.error("vol.create_partition", {"disk": disk, "size_bytes": 200 * MIB})
    assert err.code == -32602 and err.data["path"] == "/size_bytes"
    assert "exceeds the largest free extent" in err.data["reason"]
    assert lab.fingerprint(disk) == before  # no partition table was written either
    err = daemon.error("vol.create_partition", {"disk": disk, "size_bytes": 1000})
    assert err.code == -32602  # below the schema's 1 MiB minimum


def test_partition_of_a_partition(daemon: Daemon, disk: str) -> None:
    part = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 8 * MIB})["path"]
    err = daemon.error("vol.create_partition", {"disk": part})
    assert err.code == -32602 and "is a partition" in err.data["reason"]


def test_mount_targets(daemon: Daemon, lab: LoopLab, disk: str) -> None:
    part = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 8 * MIB, "label": "tgt"})["path"]
    daemon.call("vol.create_filesystem", {"device": part, "fs_type": "ext4"})
    err = daemon.error("vol.mount", {"source": part, "target": "relative/dir"})
    assert err.code == -32602 and err.data["path"] == "/target"
    missing = f"{lab.dir}/no-such-dir"
    err = daemon.error("vol.mount", {"source": part, "target": missing})
    assert err.code == -32004 and err.data == {"kind": "directory", "name": missing}
    with open(f"{lab.dir}/a-file", "w"):
        pass
    assert daemon.error("vol.mount", {"source": part, "target": f"{lab.dir}/a-file"}).code == -32602
    busy = lab.mountpoint("busy")
    run(["mount", "-t", "tmpfs", "osdt-tmpfs", busy])
    err = daemon.error("vol.mount", {"source": part, "target": busy})
    assert err.code == -32005 and err.data["reason"] == "osdt-tmpfs is mounted there"
    assert findmnt(busy)["source"] == "osdt-tmpfs"
    run(["umount", busy])
    assert daemon.error("vol.mount", {"source": part, "target": busy, "options": "a b"}).code == -32602


@pytest.mark.parametrize("params", [
    {"device": "/dev/loop0", "fs_type": "zfs"},
    {"device": "/dev/loop0", "fs_type": "EXT4"},
    {"device": "relative", "fs_type": "ext4"},
    {"device": "/dev/loop0", "fs_type": "ext4", "label": "a/b"},
    {"device": "/dev/loop0", "fs_type": "ext4", "extra": 1},
])
def test_schema_refusals(daemon: Daemon, params: dict[str, Any]) -> None:
    assert daemon.error("vol.create_filesystem", params).code == -32602


def test_label_too_long_for_the_filesystem(daemon: Daemon, lab: LoopLab, disk: str) -> None:
    part = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 4 * MIB})["path"]
    before = lab.fingerprint(part)
    err = daemon.error("vol.create_filesystem", {"device": part, "fs_type": "ext4", "label": "x" * 17})
    assert err.code == -32602 and err.data["path"] == "/label"
    assert lab.fingerprint(part) == before


def test_btrfs_methods_off_btrfs(daemon: Daemon, lab: LoopLab) -> None:
    for method, params in (("vol.create_subvolume", {"path": f"{lab.dir}/sub"}),
                           ("vol.scrub_start", {"path": lab.dir}), ("vol.fs_df", {"path": lab.dir}),
                           ("vol.set_quota", {"path": lab.dir, "limit_bytes": MIB})):
        err = daemon.error(method, params)
        assert err.code == -32602 and "not on a btrfs filesystem" in err.data["reason"], method
    assert daemon.error("vol.usage", {"path": f"{lab.dir}/nothing"}).code == -32004
    assert daemon.error("vol.create_subvolume", {"path": f"{lab.dir}/no/parent"}).code == -32004


def test_btrfs_paths_that_are_not_subvolumes(daemon: Daemon, lab: LoopLab, disk: str) -> None:
    part = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": 115 * MIB})["path"]
    daemon.call("vol.create_filesystem", {"device": part, "fs_type": "btrfs"})
    mnt = lab.mountpoint("btrfs")
    daemon.call("vol.mount", {"source": part, "target": mnt, "persist": False})
    import os

    os.mkdir(f"{mnt}/plain")
    assert daemon.error("vol.set_quota", {"path": f"{mnt}/plain", "limit_bytes": MIB}).code == -32602
    assert daemon.error("vol.snapshot_subvolume", {"source": f"{mnt}/plain", "dest": f"{mnt}/s"}).code == -32602
    assert daemon.error("vol.create_subvolume", {"path": f"{mnt}/plain"}).code == -32005
    assert daemon.error("vol.delete_subvolume", {"path": f"{mnt}/plain"}).code == -32005
    err = daemon.error("vol.resize_max", {"path": mnt, "devid": 7})
    assert err.code == -32004 and err.data == {"kind": "btrfs device", "name": "7"}
    daemon.call("vol.create_subvolume", {"path": f"{mnt}/sub"})
    os.mkdir(f"{mnt}/taken")
    assert daemon.error("vol.snapshot_subvolume", {"source": f"{mnt}/sub", "dest": f"{mnt}/taken"}).code == -32005
    daemon.call("vol.unmount", {"target": mnt})


def test_a_label_naming_two_filesystems_is_a_conflict_not_a_guess(daemon: Daemon, lab: LoopLab) -> None:
    label = f"twin{secrets.token_hex(4)}"
    twins = [lab.disk(40), lab.disk(40)]
    for dev in twins:
        run(["mkfs.ext4", "-q", "-L", label, dev])
    target = lab.mountpoint("twin")
    err = daemon.error("vol.mount", {"source": f"LABEL={label}", "target": target})
    assert err.code == -32005 and all(dev in err.data["reason"] for dev in twins), err
    assert findmnt(target) is None
    uuid = run(["blkid", "-o", "value", "-s", "UUID", twins[1]]).stdout.strip()
    assert daemon.call("vol.mount", {"source": f"UUID={uuid}", "target": target, "persist": False})["changed"]
    assert findmnt(target)["source"] == twins[1]
    assert daemon.call("vol.unmount", {"target": target}) == {"changed": True}
