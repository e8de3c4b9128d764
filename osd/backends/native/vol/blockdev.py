"""One consistent picture of the host's storage: sysfs devices, what is on them, and what is in use.

``scan()`` reads sysfs, mountinfo and /proc/swaps, and probes the devices (udev's database
for the devices udev has initialised, one ``blkid -p`` run for the rest). The picture is
used for the answers of the read methods and, taken again right before a destructive call,
by the safety guard.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ....errors import Conflict
from . import mountinfo, probe, sysfs
from .mountinfo import Mount
from .probe import Probe
from .sysfs import BlockDev

# kind of a whole block device, by kernel name prefix; anything else is a "disk"
_KINDS = (("loop", "loop"), ("md", "md"), ("dm-", "dm"), ("zram", "zram"), ("nbd", "nbd"), ("sr", "rom"),
          ("ram", "ram"), ("zd", "zvol"))

# friendly names of GPT partition type GUIDs (the aliases create_partition accepts)
GPT_TYPES = {
    "linux": "0fc63daf-8483-4772-8e79-3d69d8477de4",
    "swap": "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
    "efi": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    "raid": "a19d880f-05fc-4d3b-a006-743f0f84911e",
    "lvm": "e6d6d379-f507-44c2-a23c-238f2a3df928",
    "home": "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
}
_TYPE_NAMES = {guid: name for name, guid in GPT_TYPES.items()}


def kind_of(name: str) -> str:
    return next((kind for prefix, kind in _KINDS if name.startswith(prefix)), "disk")


@dataclasses.dataclass
class Storage:
    devices: dict[str, BlockDev]           # by kernel name, disks followed by their partitions
    probes: dict[str, Probe]               # by kernel name; absent: blank
    mounts: list[Mount]
    mounted: dict[str, list[str]]          # kernel name -> mount targets (btrfs: every member device)
    swaps: set[str]                        # kernel names of active swap devices
    root: set[str]                         # kernel names of the devices the root filesystem lives on
    btrfs: dict[str, list[str]]            # mounted btrfs uuid -> member names
    mount_types: dict[str, str]            # kernel name -> type of its first mount

    def probe(self, name: str) -> Probe:
        return self.probes.get(name, Probe())

    def partitions_of(self, disk: str) -> list[BlockDev]:
        return [d for d in self.devices.values() if d.disk == disk]

    def disks(self) -> list[BlockDev]:
        return [d for d in self.devices.values() if d.disk is None]

    def fs_type(self, name: str) -> str | None:
        """The filesystem type on a device: probed, else the type it is mounted with (when it could not be probed)."""
        return self.probe(name).fs_type or self.mount_types.get(name)


def mount_device_names(mount: Mount, btrfs: dict[str, list[str]]) -> set[str]:
    """Kernel names of the devices a mount lives on (every member of a mounted btrfs)."""
    names = set()
    if mount.major != 0:
        found = sysfs.name_of_devno(mount.major, mount.minor)
        if found:
            names.add(found)
    if mount.source.startswith("/dev/"):
        found = sysfs.name_of(mount.source)
        if found:
            names.add(found)
    if mount.fs_type == "btrfs":
        for members in btrfs.values():
            if names & set(members):
                names.update(members)
    return names


def _expand(names: set[str], devices: dict[str, BlockDev]) -> set[str]:
    """``names`` with what they are built on (slaves, recursively) and the disks of partitions."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        dev = devices.get(name)
        if dev is None:
            continue
        todo.extend(dev.slaves)
        if dev.disk:
            todo.append(dev.disk)
    return seen


async def scan(*, probe_devices: bool = True, partitions_only: bool = False) -> Storage:
    """The storage picture; raises NotSupported without blkid.

    ``partitions_only`` probes partitions and leaves whole disks unprobed (enough for
    list_partitions, not for the guard).
    """
    devices = sysfs.scan()
    mounts = mountinfo.read_mounts()
    btrfs = sysfs.btrfs_members()
    mounted: dict[str, list[str]] = {}
    mount_types: dict[str, str] = {}
    root: set[str] = set()
    for mount in mounts:
        names = mount_device_names(mount, btrfs)
        for name in names:
            mounted.setdefault(name, []).append(mount.target)
            mount_types.setdefault(name, mount.fs_type)
        if mount.target == "/":
            root = names  # the topmost mount on / wins
    swaps = {n for n in map(sysfs.name_of, mountinfo.read_swaps()) if n}
    probes: dict[str, Probe] = {}
    if probe_devices and devices:
        wanted = [d for d in devices.values() if d.disk is not None or not partitions_only]
        by_path = probe.udev_probes(d.name for d in wanted)
        missing = [d.path for d in wanted if d.path not in by_path]
        by_path.update(await probe.blkid(missing))
        probes = {path.removeprefix("/dev/"): p for path, p in by_path.items()}
    return Storage(devices=devices, probes=probes, mounts=mounts, mounted=mounted, swaps=swaps,
                   root=_expand(root, devices), btrfs=btrfs, mount_types=mount_types)


# ---------------------------------------------------------------- answers
def partition_type(guid: str | None) -> str | None:
    """A partition type as create_partition spells it: an alias (linux, swap, ...) or the GUID / MBR code."""
    if guid is None:
        return None
    return _TYPE_NAMES.get(guid.lower(), guid.lower())


def disk_entry(st: Storage, dev: BlockDev, in_use: bool) -> dict[str, Any]:
    p = st.probe(dev.name)
    entry: dict[str, Any] = {
        "name": dev.name, "path": dev.path, "kind": kind_of(dev.name), "size_bytes": dev.size_bytes,
        "model": dev.model, "serial": dev.serial, "rotational": dev.rotational, "removable": dev.removable,
        "partition_table": p.pt_type, "in_use": in_use, "read_only": dev.read_only,
        "fs_type": st.fs_type(dev.name), "fs_label": p.fs_label, "fs_uuid": p.fs_uuid,
    }
    if dev.backing_file is not None:
        entry["backing_file"] = dev.backing_file
    return entry


def partition_entry(st: Storage, dev: BlockDev) -> dict[str, Any]:
    p = st.probe(dev.name)
    return {
        "path": dev.path, "disk": f"/dev/{dev.disk}", "number": dev.number or 0, "start_bytes": dev.start_bytes or 0,
        "size_bytes": dev.size_bytes, "type": partition_type(p.part_type), "part_label": p.part_name,
        "part_uuid": p.part_uuid, "fs_type": st.fs_type(dev.name), "fs_label": p.fs_label, "fs_uuid": p.fs_uuid,
        "mount_points": st.mounted.get(dev.name, []),
    }


def filesystems(st: Storage, prefix: str) -> list[dict[str, Any]]:
    """Filesystems whose label starts with ``prefix``, one entry per filesystem (a multi-device btrfs
    lists its devices under ``devices``; ``device`` is the first of them)."""
    by_uuid: dict[str, dict[str, Any]] = {}
    for dev in st.devices.values():
        p = st.probe(dev.name)
        if not p.fs_type or not p.fs_label or not p.fs_label.startswith(prefix):
            continue
        key = p.fs_uuid or dev.name
        entry = by_uuid.setdefault(key, {"device": dev.path, "devices": [], "type": p.fs_type, "label": p.fs_label,
                                         "uuid": p.fs_uuid, "mount_points": []})
        entry["devices"].append(dev.path)
        for target in st.mounted.get(dev.name, []):
            if target not in entry["mount_points"]:
                entry["mount_points"].append(target)
    return list(by_uuid.values())


def matching_devices(st: Storage, source: str) -> list[str]:
    """The kernel names of every device a mount source names (/dev/..., UUID=, LABEL=,
    PARTUUID=, PARTLABEL=), in kernel order."""
    if source.startswith("/dev/"):
        name = sysfs.name_of(source)
        return [name] if name in st.devices else []
    key, _, value = source.partition("=")
    field = {"UUID": "fs_uuid", "LABEL": "fs_label", "PARTUUID": "part_uuid", "PARTLABEL": "part_name"}[key]
    matches = []
    for dev in st.devices.values():
        found = getattr(st.probe(dev.name), field)
        if found is not None and (found == value or (key.endswith("UUID") and found.lower() == value.lower())):
            matches.append(dev.name)
    return matches


def one_filesystem(st: Storage, names: list[str]) -> bool:
    """Whether devices hold one filesystem: a single device, or members of one multi-device
    btrfs (the only filesystem here whose devices share a UUID by design; two ext4 sharing
    one are clones, and which of them to mount would be a guess)."""
    if len(names) <= 1:
        return True
    probes = [st.probe(name) for name in names]
    return all(p.fs_type == "btrfs" and p.fs_uuid and p.fs_uuid == probes[0].fs_uuid for p in probes)


def find_source(st: Storage, source: str) -> str | None:
    """The kernel name of the device a mount source names, None when none does.

    Raises Conflict when a tag names more than one filesystem or partition (two disks
    labelled alike, a cloned UUID): mounting either would be a guess. The members of one
    multi-device btrfs share its UUID and label; the first member stands for it.
    """
    matches = matching_devices(st, source)
    if not one_filesystem(st, matches):
        devices = ", ".join(f"/dev/{name}" for name in matches)
        kind = "partition" if source.startswith("PART") else "filesystem"
        raise Conflict("mount source", source, f"names more than one {kind} ({devices}); name the device instead")
    return matches[0] if matches else None
