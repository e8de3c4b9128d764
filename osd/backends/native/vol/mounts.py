"""vol.mount / vol.unmount / vol.list_mounts / vol.usage, and the mounts the daemon manages (SPEC §4).

Every mount made through the daemon is recorded (state file ``mounts.json``: target ->
source as given, fs_type, options, persist, and for a /dev/... source the filesystem's
UUID). At start, a recorded mount with persist=true that is missing from mountinfo is
mounted again when its filesystem is found, and pruned with a log line when it is not; a
persist=false record that is no longer mounted is dropped.

Why the UUID: a kernel device name is not an identity. After a reboot /dev/sdb may be
another disk, and a freed /dev/loop3 is the next loop device anybody attaches. A recorded
UUID is checked before mounting a /dev/... source again; when the name now holds another
filesystem (or none), the filesystem is looked for by its UUID under whatever name it
has now.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .... import tools
from ....errors import Conflict, InvalidParams, NotFound, OsdError
from ....methods import vol
from ....state import StateFile
from ..impl import Implementations, Service
from . import blockdev, filesystems, mountinfo
from .blockdev import Storage, mount_device_names
from .context import VolContext

log = logging.getLogger("osd.vol.mounts")
implements = Implementations()


class MountRecords:
    """The managed mounts, by target; every change is saved atomically before it is reported."""

    def __init__(self, state_dir: str) -> None:
        self.file = StateFile(state_dir, "mounts")
        self.entries: dict[str, dict[str, Any]] = {}

    def load(self) -> None:
        """Raises StateError naming the file when it is unreadable."""
        self.entries = dict(self.file.load().get("mounts", {}))

    def put(self, target: str, entry: dict[str, Any]) -> None:
        """Record ``entry`` at ``target``. Raises KernelError when the state file cannot be
        written; the records are then unchanged."""
        self._save({**self.entries, target: entry})

    def drop(self, target: str) -> bool:
        """Forget ``target``; False when it was not recorded. Raises KernelError like put()."""
        if target not in self.entries:
            return False
        self._save({t: e for t, e in self.entries.items() if t != target})
        return True

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        self.file.save({"mounts": entries})
        self.entries = entries


def mount_entry(mount: mountinfo.Mount, managed: bool) -> dict[str, Any]:
    return {"target": mount.target, "source": mount.source, "fs_type": mount.fs_type, "options": mount.options,
            "super_options": mount.super_options, "root": mount.root, "mount_id": mount.mount_id,
            "parent_id": mount.parent_id, "managed": managed}


async def _mount(st: Storage, name: str, target: str, fs_type: str | None, options: str | None) -> str:
    """Mount device ``name`` at ``target``; the filesystem type used. Raises NotFound, NotSupported, ToolFailed."""
    found = fs_type or st.fs_type(name)
    if found is None:
        raise NotFound("filesystem", f"/dev/{name}")
    if found == "swap":
        raise InvalidParams(f"/dev/{name} holds swap, which is not mounted", "/source")
    filesystems.require_kernel(found)
    if found == "btrfs":
        # Without udev nobody registers the members of a multi-device btrfs with the kernel.
        await tools.run(["btrfs", "device", "scan"], deadline_s=60, ok=(0, 1))
    argv = ["mount", "-t", found]
    if options:
        argv += ["-o", options]
    await tools.run([*argv, f"/dev/{name}", target], deadline_s=120)
    return found


def _recorded_filesystem(st: Storage, entry: dict[str, Any]) -> tuple[str | None, str]:
    """The kernel name of the device holding a recorded mount's filesystem, and a note; or
    None and why it cannot be found."""
    source, uuid = entry["source"], entry.get("fs_uuid")
    name = blockdev.find_source(st, source)
    there = st.probe(name).fs_uuid if name is not None else None
    if uuid is None or there == uuid:
        return name, "" if name is not None else f"its source {source} is gone"
    moved = blockdev.find_source(st, f"UUID={uuid}")
    if moved is not None:
        return moved, f"filesystem UUID {uuid} found on /dev/{moved}, no longer on {source}"
    if name is None:
        return None, f"its source {source} is gone"
    if there is None:  # unreadable or blank just now: no proof it is another filesystem
        return name, f"the UUID on {source} could not be read; mounting it by name"
    return None, f"its source {source} now holds another filesystem than UUID {uuid}, which is nowhere"


class MountService(Service):
    namespace = "vol"
    implementations = implements

    def __init__(self, ctx: VolContext) -> None:
        self.ctx = ctx
        self.records = MountRecords(ctx.state_dir)

    async def start(self) -> None:
        self.records.load()
        await self.reconcile()

    async def reconcile(self) -> None:
        """Re-mount persisted mounts missing from mountinfo; prune those whose source is gone."""
        mounts = {m.target for m in mountinfo.read_mounts()}
        missing = {t: e for t, e in self.records.entries.items() if t not in mounts}
        if not missing:
            return
        st = await self.ctx.scan()
        for target, entry in missing.items():
            if not entry.get("persist", True):
                log.info("forgetting mount %s: it was not persisted and is no longer mounted", target)
                self.records.drop(target)
                continue
            try:
                name, problem = _recorded_filesystem(st, entry)
            except OsdError as exc:  # a tag that now names two filesystems: no guess, no prune
                log.warning("could not re-mount %s on %s: %s (kept; vol drift reports it)",
                            entry["source"], target, exc.message)
                continue
            if name is None:
                log.warning("pruned persisted mount %s: %s", target, problem)
                self.records.drop(target)
                continue
            try:
                await _mount(st, name, target, entry.get("fs_type"), entry.get("options"))
                log.info("re-mounted %s on %s%s", entry["source"], target, f" ({problem})" if problem else "")
            except OsdError as exc:
                log.warning("could not re-mount %s on %s: %s (kept; vol drift reports it)",
                            entry["source"], target, exc.message)

    async def drift(self) -> list[dict[str, Any]]:
        """Recorded mounts missing from mountinfo (actual null)."""
        mounts = {m.target for m in mountinfo.read_mounts()}
        return [{"kind": "mount", "name": target, "expected": entry, "actual": None}
                for target, entry in sorted(self.records.entries.items()) if target not in mounts]

    # ------------------------------------------------------------ read
    @implements(vol.LIST_MOUNTS)
    async def list_mounts(self) -> list[dict[str, Any]]:
        """Every mount of the daemon's mount namespace, in kernel order; read-only."""
        return [mount_entry(m, m.target in self.records.entries) for m in mountinfo.read_mounts()]

    @implements(vol.USAGE)
    async def usage(self, path: str) -> dict[str, Any]:
        """statvfs of ``path``; raises NotFound when it does not exist."""
        try:
            sv = os.statvfs(path)
        except FileNotFoundError:
            raise NotFound("path", path) from None
        except OSError as exc:
            raise InvalidParams(f"{path}: {exc.strerror}", "/path") from exc
        mount = mountinfo.mount_of(path, mountinfo.read_mounts())
        return {"size_bytes": sv.f_blocks * sv.f_frsize, "used_bytes": (sv.f_blocks - sv.f_bfree) * sv.f_frsize,
                "available_bytes": sv.f_bavail * sv.f_frsize, "inodes": sv.f_files,
                "inodes_used": sv.f_files - sv.f_ffree, "inodes_free": sv.f_ffree,
                "mount_point": mount.target if mount else None, "fs_type": mount.fs_type if mount else None}

    # ------------------------------------------------------------ write
    @implements(vol.MOUNT)
    async def mount(self, source: str, target: str, fs_type: str | None = None, options: str | None = None,
                    persist: bool = True) -> dict[str, Any]:
        """Mount ``source`` at the existing directory ``target`` and record it.

        Idempotent: the same source already mounted there is changed=false (a new persist
        flag is still recorded). Raises NotFound (target or source missing), InvalidParams
        (target not a directory), Conflict (something else mounted there, or a LABEL=/UUID=
        tag naming more than one filesystem), NotSupported (the kernel lacks the filesystem),
        ToolFailed.
        """
        real = os.path.realpath(target)
        if not os.path.exists(real):
            raise NotFound("directory", target)
        if not os.path.isdir(real):
            raise InvalidParams(f"{target} is not a directory", "/target")
        async with self.ctx.lock:
            st = await self.ctx.scan()
            current = mountinfo.mount_at(real, st.mounts)
            mounted = mount_device_names(current, st.btrfs) if current is not None else set()
            # Mounted there already from a device the source names: the same mount, even if
            # the tag has come to name another filesystem too since.
            name = next((n for n in blockdev.matching_devices(st, source) if n in mounted), None)
            if name is None:
                name = blockdev.find_source(st, source)
            if name is None:
                raise NotFound("block device", source)
            entry = {"source": source, "fs_type": fs_type, "options": options, "persist": persist}
            uuid = st.probe(name).fs_uuid
            if source.startswith("/dev/") and uuid:
                entry["fs_uuid"] = uuid
            if current is not None:
                if name not in mounted:
                    raise Conflict("mount", real, f"{current.source} is mounted there")
                changed = self.records.entries.get(real) != entry
                if changed:
                    self.records.put(real, entry)
                return {"changed": changed, "target": real, "source": source, "persist": persist}
            await _mount(st, name, real, fs_type, options)
            try:
                self.records.put(real, entry)
            except BaseException:
                await tools.run(["umount", real], deadline_s=60)
                raise
        return {"changed": True, "target": real, "source": source, "persist": persist}

    @implements(vol.UNMOUNT)
    async def unmount(self, target: str, lazy: bool = False) -> dict[str, Any]:
        """Unmount ``target`` (the topmost mount there) and forget its record.

        Idempotent: nothing mounted and nothing recorded there is changed=false. Raises
        ToolFailed (for example: busy, without lazy).
        """
        real = os.path.realpath(target)
        async with self.ctx.lock:
            mounted = mountinfo.mount_at(real, mountinfo.read_mounts()) is not None
            if mounted:
                await tools.run(["umount", *(["-l"] if lazy else []), real], deadline_s=120)
            forgot = self.records.drop(real)
        return {"changed": mounted or forgot}
