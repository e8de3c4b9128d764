"""The native vol.* services: block devices, mounts, btrfs, its maintenance jobs and MD RAID.

    sysfs, probe, mountinfo   what the kernel and libblkid say (no udev needed)
    blockdev                  one Storage picture built from them
    guard                     which devices destructive calls may touch
    partitions, filesystems   GPT partitions and mkfs
    disks, mounts, btrfs, maintenance, mdraid   the services carrying the methods
"""

from __future__ import annotations

from typing import Any

from ....config import Config
from .btrfs import BtrfsService
from .context import VolContext
from .disks import DiskService
from .maintenance import MaintenanceService
from .mdraid import MdService
from .mounts import MountService


def services(config: Config) -> list[Any]:
    """Every vol service, sharing one context (config, guard, write lock)."""
    ctx = VolContext(config)
    mounts = MountService(ctx)
    return [mounts, DiskService(ctx, mounts.records), BtrfsService(ctx), MaintenanceService(ctx), MdService(ctx)]
