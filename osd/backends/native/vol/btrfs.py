"""Btrfs: subvolumes, snapshots, quotas, defrag, resize, reports, and multi-device creation."""

from __future__ import annotations

import os
from typing import Any

from .... import tools
from ....errors import Conflict, InvalidParams, NotFound, ToolFailed
from ....methods import vol
from ..impl import Implementations, Service
from . import blockdev, btrfs_text, filesystems, mountinfo, probe, sysfs
from .context import VolContext

implements = Implementations()
SUBVOLUME_INODE = 256  # every subvolume root (the top level too) has this inode number


class BtrfsPath:
    """A path on a mounted btrfs: the path itself (resolved), its mount and the filesystem's uuid."""

    def __init__(self, path: str, param: str = "path", must_exist: bool = True) -> None:
        self.path = os.path.realpath(path)
        if must_exist and not os.path.exists(self.path):
            raise NotFound("path", path)
        mounts = mountinfo.read_mounts()
        mount = mountinfo.mount_of(self.path if must_exist else os.path.dirname(self.path), mounts)
        if mount is None or mount.fs_type != "btrfs":
            raise InvalidParams(f"{path} is not on a btrfs filesystem", f"/{param}")
        self.mount = mount
        members = sysfs.btrfs_members()
        names = blockdev.mount_device_names(mount, members)
        self.uuid = next((u for u, m in members.items() if names & set(m)), None)

    @property
    def target(self) -> str:
        return self.mount.target

    def is_subvolume(self) -> bool:
        try:
            return os.stat(self.path).st_ino == SUBVOLUME_INODE
        except FileNotFoundError:
            return False


async def btrfs(*args: str, ok: tuple[int, ...] = (0,), deadline_s: float = 60) -> str:
    return (await tools.run(["btrfs", *args], ok=ok, deadline_s=deadline_s)).stdout


async def subvolume_info(path: str) -> dict[str, Any]:
    return btrfs_text.parse_subvolume_show(await btrfs("subvolume", "show", path))


async def qgroups(target: str) -> dict[int, dict[str, int | None]] | None:
    """Level-0 qgroups of the filesystem mounted at ``target``; None when quotas are off.

    Raises ToolFailed for any other failure of ``btrfs qgroup show``."""
    result = await tools.run(["btrfs", "qgroup", "show", "-re", "--raw", target], ok=(0, 1), deadline_s=60)
    if result.returncode != 0:
        if "not enabled" in result.stderr:
            return None
        raise ToolFailed(list(result.argv), result.returncode, result.stderr)
    return btrfs_text.parse_qgroups(result.stdout)


def _subvolume(path: str) -> BtrfsPath:
    where = BtrfsPath(path)
    if not where.is_subvolume():
        raise InvalidParams(f"{path} is not a btrfs subvolume", "/path")
    return where


class BtrfsService(Service):
    namespace = "vol"
    implementations = implements

    def __init__(self, ctx: VolContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------ read
    def _default_path(self) -> str:
        """The mount point of the filesystem labelled <prefix>DATA (its top level preferred)."""
        label = f"{self.ctx.vol.label_prefix}DATA"
        members = sysfs.btrfs_members()
        wanted = set()
        for uuid, names in members.items():
            try:
                with open(f"{sysfs.SYSFS}/fs/btrfs/{uuid}/label") as f:
                    if f.read().strip() == label:
                        wanted.update(names)
            except OSError:
                continue
        mounts = [m for m in mountinfo.read_mounts() if m.fs_type == "btrfs"
                  and blockdev.mount_device_names(m, members) & wanted]
        if not mounts:
            raise NotFound("filesystem", label)
        return min(mounts, key=lambda m: (m.root != "/", m.target)).target

    @implements(vol.LIST_SUBVOLUMES)
    async def list_subvolumes(self, path: str | None = None) -> list[dict[str, Any]]:
        """Subvolumes below ``path`` (default: the mounted <prefix>DATA filesystem), with their
        absolute paths, readonly flag and quota (None when quotas are off). Read-only."""
        where = BtrfsPath(path or self._default_path())
        listing = btrfs_text.parse_subvolume_list(await btrfs("subvolume", "list", "-p", "-u", "-q", where.target))
        readonly_text = await btrfs("subvolume", "list", "-r", where.target)
        readonly = {s["id"] for s in btrfs_text.parse_subvolume_list(readonly_text)}
        quotas = await qgroups(where.target)
        root = where.mount.root.strip("/")
        found = []
        for sub in listing:
            rel = sub["path"]
            if root:
                if rel != root and not rel.startswith(root + "/"):
                    continue  # not reachable through this mount
                rel = rel[len(root):].lstrip("/")
            absolute = os.path.join(where.target, rel) if rel else where.target
            if not absolute.startswith(where.path.rstrip("/") + "/"):
                continue
            quota = None
            if quotas is not None and sub["id"] in quotas:
                quota = quotas[sub["id"]]
            found.append({"id": sub["id"], "path": absolute, "parent": sub["parent"], "uuid": sub["uuid"],
                          "parent_uuid": sub["parent_uuid"], "readonly": sub["id"] in readonly, "quota": quota})
        return found

    @implements(vol.DEVICE_STATS)
    async def device_stats(self, path: str) -> list[dict[str, Any]]:
        """Per-device error counters. Raises NotFound, InvalidParams (not btrfs). Read-only."""
        return btrfs_text.parse_device_stats_table(await btrfs("device", "stats", "-T", BtrfsPath(path).target))

    @implements(vol.FS_USAGE)
    async def fs_usage(self, path: str) -> dict[str, Any]:
        """``btrfs filesystem usage``: overall figures, allocations per profile and device. Read-only."""
        return btrfs_text.parse_usage(await btrfs("filesystem", "usage", "-b", BtrfsPath(path).target))

    @implements(vol.FS_DF)
    async def fs_df(self, path: str) -> list[dict[str, Any]]:
        """``btrfs filesystem df``: total and used per chunk type and profile. Read-only."""
        return btrfs_text.parse_df(await btrfs("filesystem", "df", "-b", BtrfsPath(path).target))

    # ------------------------------------------------------------ subvolumes
    @implements(vol.CREATE_SUBVOLUME)
    async def create_subvolume(self, path: str) -> dict[str, Any]:
        """Create subvolume ``path`` (its parent directory must exist on btrfs).

        Idempotent: an existing subvolume there is changed=false; another existing file or
        directory is Conflict. Raises NotFound (parent), InvalidParams (not btrfs), ToolFailed.
        """
        parent = os.path.dirname(os.path.realpath(path))
        if not os.path.isdir(parent):
            raise NotFound("directory", parent)
        where = BtrfsPath(path, must_exist=False)
        async with self.ctx.lock:
            if os.path.lexists(where.path):
                if not where.is_subvolume():
                    raise Conflict("subvolume", path, "exists and is not a subvolume")
                changed = False
            else:
                await btrfs("subvolume", "create", where.path)
                changed = True
            info = await subvolume_info(where.path)
        return {"changed": changed, "path": where.path, "id": info["id"]}

    @implements(vol.DELETE_SUBVOLUME)
    async def delete_subvolume(self, path: str) -> dict[str, Any]:
        """Delete subvolume ``path``. Idempotent: nothing there is changed=false. Raises Conflict
        (not a subvolume), InvalidParams (not btrfs), ToolFailed (for example: it holds subvolumes)."""
        if not os.path.lexists(path):
            return {"changed": False}
        where = BtrfsPath(path)
        if not where.is_subvolume():
            raise Conflict("subvolume", path, "is not a subvolume")
        async with self.ctx.lock:
            await btrfs("subvolume", "delete", "--commit-after", where.path)
        return {"changed": True}

    @implements(vol.SNAPSHOT_SUBVOLUME)
    async def snapshot_subvolume(self, source: str, dest: str, readonly: bool = False) -> dict[str, Any]:
        """Snapshot subvolume ``source`` as ``dest``.

        Idempotent: a snapshot of ``source`` with the same readonly flag already at ``dest``
        is changed=false; anything else there is Conflict. Raises NotFound (source, dest's
        parent), InvalidParams (source not a subvolume, not btrfs), ToolFailed.
        """
        src = _subvolume(source)
        parent = os.path.dirname(os.path.realpath(dest))
        if not os.path.isdir(parent):
            raise NotFound("directory", parent)
        dst = BtrfsPath(dest, "dest", must_exist=False)
        async with self.ctx.lock:
            if os.path.lexists(dst.path):
                src_info = await subvolume_info(src.path)
                if dst.is_subvolume():
                    info = await subvolume_info(dst.path)
                    if info["parent_uuid"] == src_info["uuid"] and info["readonly"] == readonly:
                        return {"changed": False, "path": dst.path, "readonly": readonly}
                raise Conflict("subvolume", dest, "exists and is not this snapshot of the source")
            await btrfs("subvolume", "snapshot", *(["-r"] if readonly else []), src.path, dst.path)
        return {"changed": True, "path": dst.path, "readonly": readonly}

    @implements(vol.SET_QUOTA)
    async def set_quota(self, path: str, limit_bytes: int | None) -> dict[str, Any]:
        """Limit the referenced bytes of subvolume ``path`` (None: no limit), enabling quotas on the
        filesystem first when needed. Idempotent (the same limit is changed=false). Raises
        NotFound, InvalidParams (not a subvolume), ToolFailed."""
        where = _subvolume(path)
        async with self.ctx.lock:
            groups = await qgroups(where.target)
            if groups is None:
                if limit_bytes is None:
                    return {"changed": False, "limit_bytes": None}
                await btrfs("quota", "enable", where.target)
                await btrfs("quota", "rescan", "-w", where.target, deadline_s=600)
                groups = await qgroups(where.target) or {}
            subvol_id = (await subvolume_info(where.path))["id"]
            current = groups.get(subvol_id, {}).get("limit_bytes")
            if current == limit_bytes:
                return {"changed": False, "limit_bytes": limit_bytes}
            await btrfs("qgroup", "limit", "none" if limit_bytes is None else str(limit_bytes), where.path)
        return {"changed": True, "limit_bytes": limit_bytes}

    # ------------------------------------------------------------ maintenance
    @implements(vol.DEFRAG)
    async def defrag(self, path: str, recursive: bool = False) -> dict[str, Any]:
        """Defragment a file or directory (``recursive``: everything below it). changed is true:
        btrfs rewrites what is fragmented and does not say whether anything was. Raises NotFound,
        InvalidParams (not btrfs), ToolFailed."""
        where = BtrfsPath(path)
        await btrfs("filesystem", "defragment", *(["-r"] if recursive else []), where.path, deadline_s=3600)
        return {"changed": True}

    @implements(vol.RESIZE_MAX)
    async def resize_max(self, path: str, devid: int | None = None) -> dict[str, Any]:
        """Grow device ``devid`` (default: the filesystem's only or first device) to the size of its
        block device. Idempotent: already at the maximum is changed=false. Returns the device's
        new size. Raises NotFound (path, devid), InvalidParams (not btrfs), ToolFailed."""
        where = BtrfsPath(path)
        async with self.ctx.lock:
            before = btrfs_text.parse_show(await btrfs("filesystem", "show", "--raw", where.target))["devices"]
            ids = {d["devid"]: d for d in before}
            chosen = devid if devid is not None else min(ids)
            if chosen not in ids:
                raise NotFound("btrfs device", str(chosen))
            await btrfs("filesystem", "resize", f"{chosen}:max", where.target, deadline_s=600)
            after = btrfs_text.parse_show(await btrfs("filesystem", "show", "--raw", where.target))["devices"]
        size = next(d["size_bytes"] for d in after if d["devid"] == chosen)
        return {"changed": size != ids[chosen]["size_bytes"], "size_bytes": size, "devid": chosen}

    # ------------------------------------------------------------ raid
    @implements(vol.CREATE_BTRFS_RAID)
    async def create_btrfs_raid(self, devices: list[str], data_profile: str = "raid1",
                                metadata_profile: str = "raid1", label: str | None = None) -> dict[str, Any]:
        """One btrfs over ``devices`` with the given profiles.

        Idempotent: when exactly these devices already form one btrfs (same label, when
        given) it is changed=false. Raises NotFound, Refused (guard, checked for every
        device first), NotSupported, Conflict (a device holds something else), ToolFailed.
        """
        filesystems.check_label("btrfs", label)
        async with self.ctx.lock:
            st, names = await self.ctx.guarded(devices, "devices")
            filesystems.check_maker("btrfs")
            found = [st.probe(n) for n in names]
            uuids = {p.fs_uuid for p in found}
            if all(p.fs_type == "btrfs" and not p.error for p in found) and len(uuids) == 1 \
                    and label in (None, found[0].fs_label):
                others = [n for n in st.devices if n not in names and st.probe(n).fs_uuid in uuids]
                if not others:
                    return {"changed": False, "uuid": found[0].fs_uuid, "devices": devices}
            for path, p in zip(devices, found):
                if p.holds_data:
                    raise Conflict("block device", path, f"holds {p.what}")
            paths = [f"/dev/{n}" for n in names]
            await filesystems.make("btrfs", paths, label, ["-d", data_profile, "-m", metadata_profile])
            made = await probe.blkid(paths[:1])
        uuid = made.get(paths[0])
        return {"changed": True, "uuid": uuid.fs_uuid if uuid else None, "devices": devices}
