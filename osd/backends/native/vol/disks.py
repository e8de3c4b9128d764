"""Disks and partitions: the enumeration methods, create_partition and create_filesystem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .... import tools
from ....errors import Conflict, InvalidParams, NotSupported
from ....methods import vol
from ..impl import Implementations, Service
from . import blockdev, filesystems, md, mdraid, partitions, probe, topology
from .blockdev import Storage
from .context import VolContext
from .guard import busy_reason
from .mounts import MountRecords, mount_entry

implements = Implementations()
NOT_CANDIDATES = ("rom", "zram", "ram")


class DiskService(Service):
    namespace = "vol"
    implementations = implements

    def __init__(self, ctx: VolContext, records: MountRecords) -> None:
        self.ctx = ctx
        self.records = records

    # ------------------------------------------------------------ read
    @staticmethod
    def _disks(st: Storage) -> list[dict[str, Any]]:
        return [blockdev.disk_entry(st, d, busy_reason(st, d.name) is not None) for d in st.disks()]

    @staticmethod
    def _partitions(st: Storage, disk: str | None = None) -> list[dict[str, Any]]:
        return [blockdev.partition_entry(st, d) for d in st.devices.values()
                if d.disk is not None and (disk is None or d.disk == disk)]

    @implements(vol.LIST_DISKS)
    async def list_disks(self) -> list[dict[str, Any]]:
        """Whole block devices of non-zero size; ``in_use`` as the guard sees it (config aside). Read-only."""
        return self._disks(await self.ctx.scan())

    @implements(vol.LIST_PARTITIONS)
    async def list_partitions(self, disk: str | None = None) -> list[dict[str, Any]]:
        """Partitions (of ``disk`` only, when given: NotFound when it does not exist). Read-only."""
        st = await self.ctx.scan(partitions_only=True)
        name = self.ctx.device_name(st, disk, "disk") if disk is not None else None
        return self._partitions(st, name)

    @implements(vol.LIST_FILESYSTEMS)
    async def list_filesystems(self) -> list[dict[str, Any]]:
        """Filesystems labelled with ``[vol] label_prefix``, one entry per filesystem. Read-only."""
        return blockdev.filesystems(await self.ctx.scan(), self.ctx.vol.label_prefix)

    @implements(vol.LIST_FREE_SPACE)
    async def list_free_space(self, disk: str) -> list[dict[str, Any]]:
        """Unpartitioned extents of at least 1 MiB, 1 MiB aligned, where a GPT partition could go.

        A disk holding a filesystem (no partition table) has none. Raises NotFound,
        InvalidParams (a partition). Read-only.
        """
        st = await self.ctx.scan()
        name = self._whole_disk(st, disk)
        p = st.probe(name)
        if p.pt_type is None and (p.fs_type or p.error):
            return []
        dev = st.devices[name]
        table = await partitions.read_table(dev.path, p.pt_type, dev.size_bytes, dev.logical_sector)
        return partitions.free_extents(table)

    @implements(vol.INVENTORY)
    async def inventory(self) -> dict[str, Any]:
        """Disks, partitions, filesystems, mounts and MD arrays from one scan. Read-only."""
        st = await self.ctx.scan()
        text = await mdraid.mdstat_text()
        return {"disks": self._disks(st), "partitions": self._partitions(st),
                "filesystems": blockdev.filesystems(st, self.ctx.vol.label_prefix),
                "mounts": [mount_entry(m, m.target in self.records.entries) for m in st.mounts],
                "md_arrays": md.parse_mdstat(text) if text is not None else []}

    @implements(vol.FEASIBLE_TOPOLOGIES)
    async def feasible_topologies(self) -> list[dict[str, Any]]:
        """Templates with feasible/reason/disks; candidates are blank, unused disks the guard allows. Read-only."""
        st = await self.ctx.scan()
        candidates = [(d.path, d.size_bytes) for d in st.disks()
                      if blockdev.kind_of(d.name) not in NOT_CANDIDATES and not d.read_only
                      and not st.probe(d.name).holds_data and not st.partitions_of(d.name)
                      and self.ctx.guard.refusal(st, d.name, d.path) is None]
        missing: dict[str, str | None] = {"btrfs": None, "md": None}
        if not filesystems.kernel_supports("btrfs"):
            missing["btrfs"] = "kernel has no btrfs support"
        else:
            missing["btrfs"] = _missing(lambda: filesystems.check_maker("btrfs"))
        if await mdraid.mdstat_text() is None:
            missing["md"] = md.NO_MD
        else:
            missing["md"] = _missing(lambda: tools.require("mdadm", "mdadm"))
        return topology.feasible(candidates, missing)

    def _whole_disk(self, st: Storage, path: str) -> str:
        """The kernel name of disk ``path``; raises NotFound, InvalidParams (not a block device, or a partition)."""
        name = self.ctx.device_name(st, path, "disk")
        _require_disk(st, name, path)
        return name

    # ------------------------------------------------------------ write
    @implements(vol.CREATE_PARTITION)
    async def create_partition(self, disk: str, size_bytes: int | None = None, type: str | None = None,
                               label: str | None = None) -> dict[str, Any]:
        """Add a GPT partition in the first free extent that fits (all of it without size_bytes).

        A blank disk gets a GPT first. With ``label``, an existing partition of that name
        and the same size and type is changed=false (different: Conflict); without a label
        every call adds a partition. Raises NotFound, InvalidParams (a partition, no extent
        large enough), Refused (guard), Conflict (the disk holds a filesystem or a non-GPT
        table), ToolFailed. A failure after the table was written removes the partition again.
        """
        async with self.ctx.lock:
            st, (name,) = await self.ctx.guarded([disk], "disk")
            _require_disk(st, name, disk)
            p = st.probe(name)
            if p.error or (p.pt_type is None and p.fs_type):
                raise Conflict("block device", disk, f"holds {p.what}; partitioning would destroy it")
            if p.pt_type not in (None, "gpt"):
                raise Conflict("block device", disk, f"has a {p.pt_type} partition table; only GPT is handled")
            if label is not None:
                same = self._labelled(st, name, label, size_bytes, type)
                if same is not None:
                    return {"changed": False, **same}
            dev = st.devices[name]
            table = await partitions.read_table(dev.path, p.pt_type, dev.size_bytes, dev.logical_sector)
            start, size = partitions.choose_extent(table, size_bytes)
            made = await partitions.add(name, table, start, size, type, label)
        return {"changed": True, **made}

    @staticmethod
    def _labelled(st: Storage, disk: str, label: str, size_bytes: int | None,
                  type_: str | None) -> dict[str, Any] | None:
        for part in st.partitions_of(disk):
            p = st.probe(part.name)
            if p.part_name != label:
                continue
            want_size = None if size_bytes is None else -(-size_bytes // partitions.MIB) * partitions.MIB
            guid, code = partitions.type_guid(type_)
            if (want_size is not None and part.size_bytes != want_size) or (
                    type_ is not None and code is None and p.part_type != guid):
                raise Conflict("partition", label, f"{part.path} has this label with another size or type")
            return {"path": part.path, "number": part.number, "start_bytes": part.start_bytes,
                    "size_bytes": part.size_bytes}
        return None

    @implements(vol.CREATE_FILESYSTEM)
    async def create_filesystem(self, device: str, fs_type: str, label: str | None = None,
                                force: bool = False) -> dict[str, Any]:
        """Format ``device``. Idempotent: the same type (and label, when given) already there is
        changed=false unless ``force``; other contents are Conflict unless ``force``.

        Raises NotFound, InvalidParams (label too long), Refused (guard), NotSupported (tool
        or, for bcachefs, kernel support missing), Conflict, ToolFailed.
        """
        filesystems.check_label(fs_type, label)
        async with self.ctx.lock:
            st, (name,) = await self.ctx.guarded([device])
            filesystems.check_maker(fs_type)
            p = st.probe(name)
            if p.holds_data and not force:
                if not p.error and p.fs_type == fs_type and label in (None, p.fs_label):
                    return {"changed": False, "device": device, "fs_type": fs_type, "uuid": p.fs_uuid}
                raise Conflict("block device", device, f"holds {p.what}; pass force to overwrite")
            path = f"/dev/{name}"
            await filesystems.make(fs_type, [path], label)
            if st.devices[name].disk is None and st.partitions_of(name):
                # the old partitions are gone from the disk; drop them from the kernel too
                await tools.run(["partx", "-d", path], deadline_s=30, ok=range(256))
            uuid = (await probe.blkid([path])).get(path)
        return {"changed": True, "device": device, "fs_type": fs_type, "uuid": uuid.fs_uuid if uuid else None}


def _missing(check: Callable[[], object]) -> str | None:
    """The reason a tool check gives (NotSupported), None when it passes."""
    try:
        check()
    except NotSupported as exc:
        return exc.message
    return None


def _require_disk(st: Storage, name: str, path: str) -> None:
    """Raises InvalidParams when ``name`` (asked for as ``path``) is a partition, not a disk."""
    if st.devices[name].disk is not None:
        raise InvalidParams(f"{path} is a partition; name its disk", "/disk")
