"""What is on a block device (filesystem, partition table, partition entry): from blkid or udev.

Both sources speak libblkid's vocabulary: ``blkid -p -o export`` prints TYPE, LABEL,
PTTYPE, PART_ENTRY_NAME..., and udev's blkid builtin stores the same values as ID_FS_TYPE,
ID_FS_LABEL_ENC, ID_PART_TABLE_TYPE, ID_PART_ENTRY_NAME... Both become one ``Probe``, so
an answer is the same with or without udevd.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import Iterable, Mapping

from .... import tools

PARALLEL_RUNS = 4


@dataclasses.dataclass(frozen=True)
class Probe:
    """libblkid's findings on one device; ``error`` is set when it could not be read at all."""

    fs_type: str | None = None
    fs_label: str | None = None
    fs_uuid: str | None = None
    fs_usage: str | None = None      # filesystem, other (swap), raid (md member), crypto
    pt_type: str | None = None       # gpt, dos
    pt_uuid: str | None = None
    part_number: int | None = None
    part_name: str | None = None
    part_type: str | None = None
    part_uuid: str | None = None
    error: str | None = None

    @property
    def holds_data(self) -> bool:
        """True when something is on the device (a filesystem, swap, an array member, a partition
        table) or when it could not be probed, which is treated the same way."""
        return bool(self.fs_type or self.pt_type or self.error)

    @property
    def what(self) -> str:
        """What the device holds, for error messages."""
        if self.error:
            return f"contents unknown ({self.error})"
        if self.fs_type:
            label = f" labelled {self.fs_label!r}" if self.fs_label else ""
            return f"a {self.fs_type} signature{label}"
        if self.pt_type:
            return f"a {self.pt_type} partition table"
        return "nothing"


def from_tags(tags: Mapping[str, str]) -> Probe:
    """A Probe from libblkid tag names (TYPE, LABEL, PTTYPE, PART_ENTRY_NUMBER, ...)."""
    number = tags.get("PART_ENTRY_NUMBER")
    return Probe(
        fs_type=tags.get("TYPE") or None,
        fs_label=tags.get("LABEL") or None,
        fs_uuid=tags.get("UUID") or None,
        fs_usage=tags.get("USAGE") or None,
        pt_type=tags.get("PTTYPE") or None,
        pt_uuid=tags.get("PTUUID") or None,
        part_number=int(number) if number and number.isdigit() else None,
        part_name=tags.get("PART_ENTRY_NAME") or None,
        part_type=(tags.get("PART_ENTRY_TYPE") or "").lower() or None,
        part_uuid=tags.get("PART_ENTRY_UUID") or None,
    )


# ---------------------------------------------------------------- blkid
_ERROR = re.compile(r"^(?:blkid: error: )?(/dev/\S+?):\s*(.+)$")


def parse_export(stdout: str) -> dict[str, Probe]:
    """``blkid -p -d -o export DEV...`` output: DEVNAME -> Probe, for the devices it printed."""
    found: dict[str, Probe] = {}
    for block in re.split(r"\n\s*\n", stdout.strip()):
        tags = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "DEVNAME" in tags:
            found[tags["DEVNAME"]] = from_tags(tags)
    return found


def parse_errors(stderr: str) -> dict[str, str]:
    """Device -> message for the devices blkid complained about on stderr."""
    errors = {}
    for line in stderr.splitlines():
        m = _ERROR.match(line.strip())
        if m:
            errors[m.group(1)] = m.group(2)
    return errors


async def blkid(paths: Iterable[str]) -> dict[str, Probe]:
    """Low-level probe (-p, no cache) of every path; a blank device is absent from the result.

    blkid stops at the first device it finds nothing on (blank), cannot read, or finds an
    ambivalent result on, so the run is repeated from the device after that one: one run
    for a host without blank disks, one more per blank or unreadable device. A device that
    stopped a run and was not reported blank (exit 2 without a message) gets ``error`` and
    counts as holding data. -d keeps labels raw (UTF-8 as is). Raises NotSupported without
    blkid.
    """
    paths = list(paths)
    # Probing waits on device reads more than on the CPU: a few runs side by side finish sooner.
    runs = max(1, min(PARALLEL_RUNS, len(paths) // 8))
    found: dict[str, Probe] = {}
    for part in await asyncio.gather(*(_blkid_in_turn(paths[i::runs]) for i in range(runs))):
        found.update(part)
    return found


async def _blkid_in_turn(paths: list[str]) -> dict[str, Probe]:
    remaining = paths
    found: dict[str, Probe] = {}
    while remaining:
        result = await tools.run(["blkid", "-p", "-d", "-o", "export", *remaining], ok=range(256), deadline_s=30)
        printed = parse_export(result.stdout)
        found.update(printed)
        stop = next((i for i, path in enumerate(remaining) if path not in printed), None)
        if stop is None:
            break
        path = remaining[stop]
        message = parse_errors(result.stderr).get(path)
        if message or result.returncode != 2:
            found[path] = Probe(error=message or f"blkid exited with {result.returncode}")
        remaining = remaining[stop + 1:]
    return found


# ---------------------------------------------------------------- udev
_HEX = re.compile(rb"\\x([0-9a-fA-F]{2})")


def decode_udev(value: str) -> str:
    """udev's ``\\xNN`` encoding (ID_FS_LABEL_ENC, ID_PART_ENTRY_NAME) undone, as UTF-8."""
    raw = _HEX.sub(lambda m: bytes([int(m.group(1), 16)]), value.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", errors="replace")


def from_udev(props: Mapping[str, str]) -> Probe:
    """A Probe from a udev database entry's properties (ID_FS_*, ID_PART_TABLE_*, ID_PART_ENTRY_*)."""
    tags: dict[str, str] = {}
    # udev copies the disk's ID_PART_TABLE_* onto each of its partitions: on a partition they
    # describe the parent, not a table inside it (blkid -p shows only PART_ENTRY_* there).
    is_partition = props.get("DEVTYPE") == "partition"
    for key, value in props.items():
        if key.startswith("ID_FS_") and not key.endswith("_ENC"):
            tags[key[len("ID_FS_"):]] = value
        elif key.startswith("ID_PART_TABLE_") and not is_partition:
            tags["PT" + key[len("ID_PART_TABLE_"):]] = value
        elif key.startswith("ID_PART_ENTRY_"):
            tags[key[len("ID_"):]] = value
    # The plain ID_FS_LABEL has unsafe characters replaced by '_'; the _ENC form is exact.
    if "ID_FS_LABEL_ENC" in props:
        tags["LABEL"] = decode_udev(props["ID_FS_LABEL_ENC"])
    if "PART_ENTRY_NAME" in tags:
        tags["PART_ENTRY_NAME"] = decode_udev(tags["PART_ENTRY_NAME"])
    return from_tags(tags)


def udev_probes(names: Iterable[str]) -> dict[str, Probe]:
    """Probes from the udev database for the devices udev has initialised; the others are left out.

    Empty when udev has no database here (no udevd) or pyudev/libudev is unavailable.
    """
    if not os.path.isdir("/run/udev/data"):
        return {}
    try:
        import pyudev
    except ImportError:
        return {}
    found: dict[str, Probe] = {}
    try:
        context = pyudev.Context()
        for name in names:
            try:
                device = pyudev.Devices.from_name(context, "block", name)
            except pyudev.DeviceNotFoundError:
                continue
            if device.is_initialized:
                found[f"/dev/{name}"] = from_udev(dict(device.properties))
    except (ImportError, OSError):  # libudev itself missing or unreadable
        return {}
    return found
