"""What every vol service shares: the config, the guard, one write lock and device resolution."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Sequence

from ....config import Config
from ....errors import InvalidParams, NotFound
from . import blockdev, sysfs
from .blockdev import Storage
from .guard import Guard


class VolContext:
    def __init__(self, config: Config) -> None:
        self.vol = config.vol
        self.state_dir = config.server.state_dir
        self.guard = Guard(config.vol)
        # One write at a time: a destructive call's guard check and its action must see the same host.
        self.lock = asyncio.Lock()

    async def scan(self, *, probe: bool = True, partitions_only: bool = False) -> Storage:
        """A fresh storage picture (see blockdev.scan); raises NotSupported without blkid."""
        return await blockdev.scan(probe_devices=probe, partitions_only=partitions_only)

    @staticmethod
    def device_name(st: Storage, path: str, param: str = "device") -> str:
        """The kernel name of the block device at ``path``.

        Raises NotFound when nothing is there (or a device without medium: an unattached loop
        device) and InvalidParams when ``path`` is not a block device.
        """
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise NotFound("block device", path) from None
        except OSError as exc:
            raise InvalidParams(f"{path}: {exc.strerror}", f"/{param}") from exc
        if not stat.S_ISBLK(mode):
            raise InvalidParams(f"{path} is not a block device", f"/{param}")
        name = sysfs.name_of(path)
        if name is None or name not in st.devices:
            raise NotFound("block device", path)
        return name

    async def guarded(self, paths: Sequence[str], param: str = "device") -> tuple[Storage, list[str]]:
        """A fresh picture and the kernel names of ``paths``, after the guard accepted every one.

        Raises NotFound / InvalidParams for a path that is not a usable block device and
        Refused (-32006) for one the guard refuses; nothing has been changed when it raises.
        Call it with ``self.lock`` held.
        """
        st = await self.scan()
        names = [self.device_name(st, path, param) for path in paths]
        if len(set(names)) != len(names):
            raise InvalidParams("the same device is named twice", f"/{param}")
        self.guard.check(st, zip(names, paths))
        return st, names
