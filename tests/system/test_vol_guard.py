"""The safety guard (SPEC §3), proven refusal by refusal on the real daemon.

Every refusal is -32006 with the device and the reason, and the device is unchanged
afterwards (its first and last MiB, its partitions and blkid's view). Mounts and swap are
made by the test itself, not through the daemon: the guard must see any use of a device.

The root device is the one real device touched here, and only through calls that could
not harm it even if the guard were broken: the test first proves that the step after the
guard cannot run on this host (mkfs for bcachefs is missing; the kernel has no MD, so
mdadm is never started) and skips otherwise. Two independent layers stand between the
test and the host's disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from osd.backends.native.vol import filesystems
from osd.client import RpcError
from osd.errors import NotSupported
from support.daemon import Daemon
from support.looplab import LoopLab, MIB, VOL_DAEMON, blkid, config_file, run

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab() -> Iterator[LoopLab]:
    with LoopLab("volguard") as lab:
        yield lab


@pytest.fixture(scope="module")
def disks(lab: LoopLab) -> dict[str, str]:
    return {name: lab.disk(160) for name in ("mounted", "swap", "spare", "pair1", "pair2", "protected", "data")}


@pytest.fixture(scope="module")
def daemon(lab: LoopLab, disks: dict[str, str]) -> Iterator[Daemon]:
    # The protected disk is in the allowed list too, so only the protected rule can refuse it.
    with Daemon(VOL_DAEMON, config_file(lab, protected=[disks["protected"] + "*"])) as d:
        yield d


def refused(daemon: Daemon, method: str, params: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(RpcError) as err:
        daemon.call(method, params)
    assert err.value.code == -32006, err.value
    return err.value.data


def formatted(daemon: Daemon, disk: str, fs_type: str, size_mib: int = 150) -> str:
    part = daemon.call("vol.create_partition", {"disk": disk, "size_bytes": size_mib * MIB})["path"]
    daemon.call("vol.create_filesystem", {"device": part, "fs_type": fs_type})
    return part


def test_mounted_device_and_its_disk(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    disk = disks["mounted"]
    part = formatted(daemon, disk, "btrfs")
    mnt = lab.mountpoint("mounted")
    run(["mount", part, mnt])
    before = {d: lab.fingerprint(d) for d in (disk, part)}
    assert refused(daemon, "vol.create_filesystem", {"device": part, "fs_type": "ext4", "force": True}) == \
        {"device": part, "reason": f"mounted at {mnt}"}
    reason = f"its partition {part} is mounted at {mnt}"
    assert refused(daemon, "vol.create_partition", {"disk": disk})["reason"] == reason
    params = {"device": disk, "fs_type": "ext4", "force": True}
    assert refused(daemon, "vol.create_filesystem", params)["reason"] == reason
    params = {"devices": [disks["spare"], part]}
    assert refused(daemon, "vol.create_btrfs_raid", params)["reason"] == f"mounted at {mnt}"
    assert refused(daemon, "vol.create_md_array", {"devices": [disks["spare"], part]})["reason"] == f"mounted at {mnt}"
    assert {d: lab.fingerprint(d) for d in (disk, part)} == before
    assert blkid(disks["spare"]) == {}  # the acceptable device of the pair was not touched either
    assert {d["path"]: d["in_use"] for d in daemon.call("vol.list_disks")}[disk] is True


def test_active_swap(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    disk = disks["swap"]
    part = formatted(daemon, disk, "swap", 16)
    run(["swapon", part])
    try:
        before = {d: lab.fingerprint(d) for d in (disk, part)}
        assert refused(daemon, "vol.create_filesystem", {"device": part, "fs_type": "ext4", "force": True}) == \
            {"device": part, "reason": "active swap"}
        reason = f"its partition {part} is active swap"
        assert refused(daemon, "vol.create_partition", {"disk": disk})["reason"] == reason
        assert refused(daemon, "vol.create_btrfs_raid", {"devices": [part, disks["spare"]]})["reason"] == "active swap"
        assert {d: lab.fingerprint(d) for d in (disk, part)} == before
    finally:
        run(["swapoff", part])
    assert daemon.call("vol.create_filesystem", {"device": part, "fs_type": "ext4", "force": True})["changed"]


def test_every_member_of_a_mounted_multi_device_btrfs(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    pair = [disks["pair1"], disks["pair2"]]
    daemon.call("vol.create_btrfs_raid", {"devices": pair})
    mnt = lab.mountpoint("pair")
    run(["mount", pair[0], mnt])  # mountinfo names pair1 only; pair2 is just as much in use
    before = lab.fingerprint(pair[1])
    assert refused(daemon, "vol.create_filesystem", {"device": pair[1], "fs_type": "ext4", "force": True}) == \
        {"device": pair[1], "reason": f"mounted at {mnt}"}
    assert refused(daemon, "vol.create_partition", {"disk": pair[1]})["reason"] == f"mounted at {mnt}"
    assert lab.fingerprint(pair[1]) == before
    run(["umount", mnt])


def test_protected_devices(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    disk = disks["protected"]
    before = lab.fingerprint(disk)
    reason = "matches [vol] protected_devices"
    assert refused(daemon, "vol.create_partition", {"disk": disk}) == {"device": disk, "reason": reason}
    assert refused(daemon, "vol.create_filesystem", {"device": disk, "fs_type": "btrfs"})["reason"] == reason
    assert refused(daemon, "vol.create_btrfs_raid", {"devices": [disks["spare"], disk]})["reason"] == reason
    assert lab.fingerprint(disk) == before and blkid(disks["spare"]) == {}


def test_only_allowed_devices(daemon: Daemon, lab: LoopLab) -> None:
    stranger = lab.disk(160)  # attached after the daemon's allowed list was written
    before = lab.fingerprint(stranger)
    reason = "not in [vol] allowed_devices"
    assert refused(daemon, "vol.create_partition", {"disk": stranger}) == {"device": stranger, "reason": reason}
    assert refused(daemon, "vol.create_filesystem", {"device": stranger, "fs_type": "ext4"})["reason"] == reason
    assert lab.fingerprint(stranger) == before


def test_a_filesystem_is_kept_unless_force(daemon: Daemon, lab: LoopLab, disks: dict[str, str]) -> None:
    part = formatted(daemon, disks["data"], "ext4", 20)
    before = lab.fingerprint(part)
    with pytest.raises(RpcError) as err:
        daemon.call("vol.create_filesystem", {"device": part, "fs_type": "btrfs"})
    assert err.value.code == -32005 and "holds a ext4 signature" in err.value.data["reason"]
    assert lab.fingerprint(part) == before
    # the same type again is no change; a different label is a conflict, force overwrites
    assert daemon.call("vol.create_filesystem", {"device": part, "fs_type": "ext4"})["changed"] is False
    with pytest.raises(RpcError) as err:
        daemon.call("vol.create_filesystem", {"device": part, "fs_type": "ext4", "label": "other"})
    assert err.value.code == -32005
    uuid = blkid(part)["UUID"]
    made = daemon.call("vol.create_filesystem", {"device": part, "fs_type": "ext4", "label": "other", "force": True})
    assert made["changed"] and blkid(part)["LABEL"] == "other" and blkid(part)["UUID"] == made["uuid"] != uuid
    # a disk with a partition table is not re-partitioned from scratch by mkfs either
    with pytest.raises(RpcError) as err:
        daemon.call("vol.create_filesystem", {"device": disks["data"], "fs_type": "ext4"})
    assert err.value.code == -32005 and "gpt partition table" in err.value.data["reason"]


def _root_device() -> str:
    source = run(["findmnt", "-n", "-o", "SOURCE", "/"]).stdout.strip()
    if not source.startswith("/dev/") or not os.path.exists(source):
        pytest.skip(f"the root filesystem's source {source!r} is not a block device here")
    return source


def test_the_root_device(lab: LoopLab) -> None:
    root = _root_device()
    # Layer two: what would run after the guard cannot run on this host.
    with pytest.raises(NotSupported):
        filesystems.check_maker("bcachefs")
    if os.path.exists("/proc/mdstat"):
        pytest.skip("this kernel has MD: create_md_array on the root device would not be harmless without the guard")
    spare = lab.disk(160)
    # Layer one, alone: no allowed list and nothing protected, so only "backs the root filesystem" can refuse.
    with Daemon(VOL_DAEMON, ["--config", _no_limits(lab)]) as d:
        reason = {"device": root, "reason": "backs the root filesystem"}
        assert refused(d, "vol.create_filesystem", {"device": root, "fs_type": "bcachefs", "force": True}) == reason
        assert refused(d, "vol.create_md_array", {"devices": [spare, root]}) == reason
        assert {x["path"]: x["in_use"] for x in d.call("vol.list_disks")}[root] is True
    assert blkid(spare) == {}
    assert run(["findmnt", "-n", "-o", "SOURCE", "/"]).stdout.strip() == root


def _no_limits(lab: LoopLab) -> str:
    path = os.path.join(lab.dir, "nolimits.toml")
    with open(path, "w") as f:
        f.write('[vol]\nlabel_prefix = "MOS"\n')
    return path
