"""Linux MD RAID through mdadm and /proc/mdstat; every method answers NotSupported without MD in the kernel."""

from __future__ import annotations

import os
from typing import Any

from .... import tools
from ....errors import Conflict, InvalidParams, NotFound, NotSupported
from ....methods import vol
from ..impl import Implementations, Service
from . import filesystems, md, sysfs
from .context import VolContext

implements = Implementations()


async def mdstat_text() -> str | None:
    """The text of /proc/mdstat, or None when the kernel has no MD support.

    On a stock distribution MD is a module (md_mod) that nothing loads at boot, and
    /proc/mdstat appears only once it is loaded. An installed but unloaded md_mod means
    MD is supported and no array exists yet: mdadm's first open of /dev/mdN makes the
    kernel load it (block-major-9 alias), so the daemon needs no CAP_SYS_MODULE.
    """
    text = md.read_mdstat()
    if text is None and filesystems.module_available("md_mod"):
        return ""
    return text


async def mdstat() -> str:
    """The text of /proc/mdstat; raises NotSupported when the kernel has no MD support."""
    text = await mdstat_text()
    if text is None:
        raise NotSupported(md.NO_MD)
    return text


def _next_md() -> str:
    used = set(os.listdir(f"{sysfs.SYSFS}/block"))
    n = 0
    while f"md{n}" in used or os.path.exists(f"/dev/md{n}"):
        n += 1
    return f"/dev/md{n}"


class MdService(Service):
    namespace = "vol"
    implementations = implements

    def __init__(self, ctx: VolContext) -> None:
        self.ctx = ctx

    def _array(self, st: Any, device: str) -> str:
        name = self.ctx.device_name(st, device)
        if not os.path.isdir(f"{sysfs.SYSFS}/block/{name}/md"):
            raise InvalidParams(f"{device} is not an MD array", "/device")
        return name

    @implements(vol.LIST_MD_ARRAYS)
    async def list_md_arrays(self) -> list[dict[str, Any]]:
        """Arrays from /proc/mdstat. Raises NotSupported without MD support. Read-only."""
        return md.parse_mdstat(await mdstat())

    @implements(vol.MD_DETAIL)
    async def md_detail(self, device: str) -> dict[str, Any]:
        """``mdadm --detail``, parsed. Raises NotSupported, NotFound, InvalidParams (not an array). Read-only."""
        await mdstat()
        st = await self.ctx.scan(probe=False)
        self._array(st, device)
        return md.parse_detail((await tools.run(["mdadm", "--detail", device], deadline_s=30)).stdout)

    @implements(vol.CREATE_MD_ARRAY)
    async def create_md_array(self, devices: list[str], level: str = "raid1",
                              name: str | None = None) -> dict[str, Any]:
        """A new array over ``devices``; the guard checks every device before anything else, so on a
        kernel without MD a refused device is still -32006.

        Idempotent: when exactly these devices already form one active array of ``level`` it is
        changed=false. Raises NotFound, Refused, NotSupported, Conflict (a device holds
        something), ToolFailed.
        """
        async with self.ctx.lock:
            st, names = await self.ctx.guarded(devices, "devices")
            text = await mdstat()
            tools.require("mdadm", "mdadm")
            for array in md.parse_mdstat(text):
                members = {m["device"] for m in array["members"]}
                if members == {f"/dev/{n}" for n in names} and array["level"] == level:
                    return {"changed": False, "device": array["device"]}
            for path, n in zip(devices, names):
                p = st.probe(n)
                if p.holds_data:
                    raise Conflict("block device", path, f"holds {p.what}")
            target = _next_md()
            argv = ["mdadm", "--create", target, "--run", "--metadata=1.2", f"--level={level.removeprefix('raid')}",
                    f"--raid-devices={len(devices)}"]
            if name is not None:
                argv.append(f"--name={name}")
            await tools.run([*argv, *(f"/dev/{n}" for n in names)], deadline_s=120)
        return {"changed": True, "device": target}

    @implements(vol.STOP_MD_ARRAY)
    async def stop_md_array(self, device: str) -> dict[str, Any]:
        """Stop an array. Idempotent: an array that is not running is changed=false. Raises
        NotSupported, InvalidParams (not an array), ToolFailed (for example: in use)."""
        await mdstat()
        async with self.ctx.lock:
            st = await self.ctx.scan(probe=False)
            try:
                self._array(st, device)
            except NotFound:
                return {"changed": False}
            await tools.run(["mdadm", "--stop", device], deadline_s=60)
        return {"changed": True}
