"""GPT partitions: the free extents of a disk, and adding one partition so the kernel sees it.

The table is written with sfdisk (fast, scriptable; sgdisk only for an sgdisk type code
that has no GUID here) without asking the kernel to re-read it, then ``partx -u`` tells
the kernel about the new partition through BLKPG. That works both on kernels that scan
partition tables and on those that do not (loop devices here), and on a disk whose other
partitions are in use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
from typing import Any

from .... import tools
from ....errors import InvalidParams, KernelError, OsdError
from . import sysfs
from .blockdev import GPT_TYPES

MIB = 1 << 20
# Common sgdisk type codes with their GUIDs; any other code is handed to sgdisk itself.
SGDISK_CODES = {"8300": "linux", "8200": "swap", "ef00": "efi", "fd00": "raid", "8e00": "lvm", "8302": "home"}
GPT_ENTRIES_BYTES = 128 * 128  # the standard partition entry array


@dataclasses.dataclass(frozen=True)
class Table:
    """A disk's partition table in logical sectors (``label`` None: the disk has none yet)."""

    label: str | None
    sector: int
    first_lba: int
    last_lba: int
    partitions: tuple[tuple[int, int, int], ...]  # (number, start, size)


def blank_table(size_bytes: int, sector: int) -> Table:
    """The usable area a new GPT would offer on a disk of ``size_bytes``."""
    entries = -(-GPT_ENTRIES_BYTES // sector)
    total = size_bytes // sector
    return Table(None, sector, 2 + entries, total - 2 - entries, ())


def free_extents(table: Table, align_bytes: int = MIB) -> list[dict[str, int]]:
    """Unpartitioned extents of at least ``align_bytes``, starts aligned to it: [{start_bytes, size_bytes}]."""
    align = max(1, align_bytes // table.sector)
    gaps, cursor = [], table.first_lba
    for _, start, size in sorted(table.partitions, key=lambda p: p[1]):
        if start > cursor:
            gaps.append((cursor, start - 1))
        cursor = max(cursor, start + size)
    if cursor <= table.last_lba:
        gaps.append((cursor, table.last_lba))
    extents = []
    for first, last in gaps:
        first = -(-first // align) * align
        sectors = last - first + 1
        if sectors >= align:
            extents.append({"start_bytes": first * table.sector, "size_bytes": sectors * table.sector})
    return extents


def parse_sfdisk(text: str) -> Table:
    """``sfdisk -J DISK`` output as a Table."""
    doc = json.loads(text)["partitiontable"]
    parts = []
    for p in doc.get("partitions", []):
        node = p["node"]
        digits = len(node) - len(node.rstrip("0123456789"))
        parts.append((int(node[-digits:]) if digits else 0, int(p["start"]), int(p["size"])))
    return Table(doc.get("label"), int(doc.get("sectorsize", 512)), int(doc["firstlba"]), int(doc["lastlba"]),
                 tuple(parts))


async def read_table(disk_path: str, pt_type: str | None, size_bytes: int, sector: int) -> Table:
    """The table of a disk (``pt_type`` from its probe; None: a blank table is assumed)."""
    if pt_type is None:
        return blank_table(size_bytes, sector)
    result = await tools.run(["sfdisk", "-J", disk_path], deadline_s=30)
    return parse_sfdisk(result.stdout)


def choose_extent(table: Table, size_bytes: int | None) -> tuple[int, int]:
    """(start sector, size in sectors) of the new partition: the first free extent that fits it.

    Raises InvalidParams when no extent is large enough.
    """
    extents = free_extents(table)
    if size_bytes is not None:
        size_bytes = -(-size_bytes // MIB) * MIB
    for extent in extents:
        if size_bytes is None or extent["size_bytes"] >= size_bytes:
            want = extent["size_bytes"] if size_bytes is None else size_bytes
            return extent["start_bytes"] // table.sector, want // table.sector
    largest = max((e["size_bytes"] for e in extents), default=0)
    if size_bytes is None:
        raise InvalidParams("the disk has no free extent of at least 1 MiB", "/disk")
    raise InvalidParams(f"size_bytes {size_bytes} exceeds the largest free extent ({largest} bytes)", "/size_bytes")


def type_guid(part_type: str | None) -> tuple[str | None, str | None]:
    """(GUID for sfdisk, sgdisk code to apply afterwards) for a create_partition ``type``."""
    value = (part_type or "linux").lower()
    if value in GPT_TYPES:
        return GPT_TYPES[value], None
    if value in SGDISK_CODES:
        return GPT_TYPES[SGDISK_CODES[value]], None
    if len(value) == 4:
        return GPT_TYPES["linux"], value
    return value, None


async def _kernel_partition(disk: str, number: int, start_bytes: int) -> str | None:
    """The kernel name of partition ``number`` of ``disk`` once it starts at ``start_bytes``, or None."""
    for dev in sysfs.scan(only=disk).values():
        if dev.disk == disk and dev.number == number and dev.start_bytes == start_bytes:
            return dev.name
    return None


async def add(disk: str, table: Table, start: int, size: int, part_type: str | None,
              label: str | None) -> dict[str, Any]:
    """Write one partition, make the kernel see it, and wipe stale signatures inside it.

    Returns {path, number, start_bytes, size_bytes}. On a failure after the table was
    written the partition is removed again (and a table created here is wiped), then the
    error is raised.
    """
    path = f"/dev/{disk}"
    guid, code = type_guid(part_type)
    quiet = ["--no-reread", "--no-tell-kernel", "-q"]
    line = f"start={start}, size={size}, type={guid}\n"
    if table.label is None:
        if any(d.disk == disk for d in sysfs.scan(only=disk).values()):
            # partitions the kernel still has from an earlier table (a reused loop device)
            await tools.run(["partx", "-d", path], deadline_s=30)
        await tools.run(["sfdisk", *quiet, path], input=f"label: gpt\n{line}".encode(), deadline_s=60)
    else:
        await tools.run(["sfdisk", *quiet, "--append", path], input=line.encode(), deadline_s=60)
    number = None
    try:
        written = parse_sfdisk((await tools.run(["sfdisk", "-J", path], deadline_s=30)).stdout)
        number = next(n for n, s, _ in written.partitions if s == start)
        if label is not None:
            await tools.run(["sfdisk", "--no-reread", "--no-tell-kernel", "--part-label", path, str(number), label],
                            deadline_s=60)
        if code is not None:
            await tools.run(["sgdisk", "-t", f"{number}:{code}", path], deadline_s=60)
        await tools.run(["partx", "-u", path], deadline_s=30)
        name = await _kernel_partition(disk, number, start * table.sector)
        if name is None:  # partx -u may leave a number alone that the kernel still has from earlier
            await tools.run(["partx", "-a", "--nr", str(number), path], deadline_s=30)
            name = await _kernel_partition(disk, number, start * table.sector)
        if name is None:
            raise KernelError(errno.ENXIO, f"partx -u {path}: partition {number} did not appear")
        node = f"/dev/{name}"
        for _ in range(100):  # devtmpfs creates the node right after the kernel adds the partition
            if os.path.exists(node):
                break
            await asyncio.sleep(0.02)
        await tools.run(["wipefs", "-a", "-q", node], deadline_s=60)
    except BaseException:
        await _undo(path, number, table.label is None)
        raise
    return {"path": node, "number": number, "start_bytes": start * table.sector, "size_bytes": size * table.sector}


async def _undo(path: str, number: int | None, new_table: bool) -> None:
    """Best effort: remove what add() wrote; the original error is what the caller sees."""
    steps: list[list[str]] = []
    if number is not None:
        steps.append(["partx", "-d", "--nr", str(number), path])
        steps.append(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "--delete", path, str(number)])
    if new_table:
        steps.append(["wipefs", "-a", "-q", path])
    for argv in steps:
        try:
            await tools.run(argv, deadline_s=30)
        except OsdError:
            pass
