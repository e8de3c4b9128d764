"""Block devices as sysfs describes them: disks, their partitions, sizes, holders and slaves.

This needs no udev and no tool: every kernel has /sys/block. Sizes and starts in sysfs are
always in 512-byte units, whatever the device's logical sector size.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

SYSFS = "/sys"
SECTOR = 512


@dataclasses.dataclass(frozen=True)
class BlockDev:
    name: str                    # kernel name: sda, sda1, loop3p2, md0, dm-1
    major: int
    minor: int
    size_bytes: int
    disk: str | None             # the whole disk of a partition; None for a disk
    number: int | None           # partition number
    start_bytes: int | None      # partition start on its disk
    removable: bool
    rotational: bool
    read_only: bool
    model: str | None
    serial: str | None
    holders: tuple[str, ...]     # devices built on this one (md0, dm-0)
    slaves: tuple[str, ...]      # devices this one is built on (for md and dm)
    backing_file: str | None     # loop devices
    logical_sector: int

    @property
    def path(self) -> str:
        return f"/dev/{self.name}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _int(path: Path, default: int = 0) -> int:
    text = _read(path)
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _listdir(path: Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(path)))
    except OSError:
        return ()


def _device(base: Path, name: str, disk: BlockDev | None) -> BlockDev:
    major, _, minor = (_read(base / "dev") or "0:0").partition(":")
    if disk is not None:  # a partition: the rest is its disk's
        return dataclasses.replace(
            disk, name=name, major=int(major), minor=int(minor), size_bytes=_int(base / "size") * SECTOR,
            disk=disk.name, number=_int(base / "partition"), start_bytes=_int(base / "start") * SECTOR,
            read_only=_int(base / "ro") == 1, model=None, serial=None, holders=_listdir(base / "holders"),
            slaves=(), backing_file=None)
    queue = base / "queue"
    return BlockDev(
        name=name,
        major=int(major),
        minor=int(minor),
        size_bytes=_int(base / "size") * SECTOR,
        disk=None,
        number=None,
        start_bytes=None,
        removable=_int(base / "removable") == 1,
        rotational=_int(queue / "rotational") == 1,
        read_only=_int(base / "ro") == 1,
        model=_read(base / "device" / "model") or None,
        serial=_read(base / "serial") or _read(base / "device" / "serial") or None,
        holders=_listdir(base / "holders"),
        slaves=_listdir(base / "slaves"),
        backing_file=_read(base / "loop" / "backing_file"),
        logical_sector=_int(queue / "logical_block_size", SECTOR),
    )


def scan(sysfs: str = SYSFS, only: str | None = None) -> dict[str, BlockDev]:
    """Every block device with a non-zero size (disks first, each followed by its partitions).

    ``only`` limits the scan to one disk and its partitions. Devices of size 0 (unattached
    loop devices, empty drives) are left out.
    """
    block = Path(sysfs) / "block"
    found: dict[str, BlockDev] = {}
    for name in _listdir(block) if only is None else (only,):
        base = block / name
        if _int(base / "size") == 0:  # also: not a device at all
            continue
        disk = _device(base, name, None)
        found[name] = disk
        # partitions are the subdirectories named after the disk (sda1, loop0p1, nvme0n1p1)
        parts = [_device(base / child, child, disk) for child in _listdir(base)
                 if child.startswith(name) and (base / child / "partition").exists()]
        for part in sorted(parts, key=lambda p: p.number or 0):
            found[part.name] = part
    return found


def name_of(path: str, sysfs: str = SYSFS) -> str | None:
    """The kernel name of the block device at ``path`` (symlinks followed), or None when it is not one."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    return name_of_devno(os.major(st.st_rdev), os.minor(st.st_rdev), sysfs)


def name_of_devno(major: int, minor: int, sysfs: str = SYSFS) -> str | None:
    """The kernel name of device ``major:minor``, or None."""
    try:
        return os.path.basename(os.readlink(f"{sysfs}/dev/block/{major}:{minor}"))
    except OSError:
        return None


def btrfs_members(sysfs: str = SYSFS) -> dict[str, list[str]]:
    """Mounted btrfs filesystems: uuid -> names of their member devices (/sys/fs/btrfs exists only while mounted)."""
    base = Path(sysfs) / "fs" / "btrfs"
    return {uuid: list(_listdir(base / uuid / "devices"))
            for uuid in _listdir(base) if (base / uuid / "devices").is_dir()}
