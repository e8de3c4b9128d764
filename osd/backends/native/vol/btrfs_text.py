"""btrfs-progs output, parsed: subvolume lists, qgroups, df, usage, device stats, scrub and balance status.

Every parser takes the text printed by ``btrfs`` (btrfs-progs 6.x, LC_ALL=C, sizes with -b
or --raw) and returns plain data; none runs anything.
"""

from __future__ import annotations

import re
from typing import Any

_SUBVOL = re.compile(
    r"^ID\s+(?P<id>\d+)\s+gen\s+\d+(?:\s+cgen\s+\d+)?(?:\s+parent\s+(?P<parent>\d+))?\s+top level\s+(?P<top>\d+)"
    r"(?:\s+parent_uuid\s+(?P<parent_uuid>\S+))?(?:\s+received_uuid\s+\S+)?(?:\s+uuid\s+(?P<uuid>\S+))?"
    r"\s+path\s(?P<path>.*)$"
)


def parse_subvolume_list(text: str) -> list[dict[str, Any]]:
    """``btrfs subvolume list [-p] [-u] [-q] PATH``: [{id, parent, uuid, parent_uuid, path}], paths
    relative to the filesystem's top level."""
    found = []
    for line in text.splitlines():
        m = _SUBVOL.match(line.rstrip("\r\n"))
        if not m:
            continue
        parent = m.group("parent") or m.group("top")

        def uuid(v: str | None) -> str | None:
            return None if v in (None, "-") else v

        found.append({"id": int(m.group("id")), "parent": int(parent), "uuid": uuid(m.group("uuid")),
                      "parent_uuid": uuid(m.group("parent_uuid")), "path": m.group("path").removeprefix("<FS_TREE>/")})
    return found


def parse_qgroups(text: str) -> dict[int, dict[str, int | None]]:
    """``btrfs qgroup show -re --raw PATH``: level-0 qgroups by subvolume id ->
    {referenced_bytes, exclusive_bytes, limit_bytes (max referenced, None for none)}."""
    found: dict[int, dict[str, int | None]] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 4 or not re.fullmatch(r"0/\d+", cols[0]):
            continue
        limit = None if cols[3] == "none" else int(cols[3])
        found[int(cols[0][2:])] = {"referenced_bytes": int(cols[1]), "exclusive_bytes": int(cols[2]),
                                   "limit_bytes": limit}
    return found


_DF = re.compile(r"^(?P<type>\w+), (?P<profile>[\w]+): total=(?P<total>\d+), used=(?P<used>\d+)$")


def _chunk_type(name: str) -> str:
    return name.lower()


def parse_df(text: str) -> list[dict[str, Any]]:
    """``btrfs filesystem df -b PATH``: [{type, profile, total_bytes, used_bytes}], names lower-cased
    (data, metadata, system, globalreserve; single, dup, raid1, ...) like mkfs.btrfs's profile names."""
    found = []
    for line in text.splitlines():
        m = _DF.match(line.strip())
        if m:
            found.append({"type": _chunk_type(m.group("type")), "profile": m.group("profile").lower(),
                          "total_bytes": int(m.group("total")), "used_bytes": int(m.group("used"))})
    return found


_SECTION = re.compile(r"^(?P<type>\w+),(?P<profile>\w+): Size:(?P<size>\d+), Used:(?P<used>\d+)")
_KEYS = {"Device size": "device_size_bytes", "Device allocated": "device_allocated_bytes",
         "Device unallocated": "device_unallocated_bytes", "Device missing": "device_missing_bytes",
         "Device slack": "device_slack_bytes", "Used": "used_bytes", "Free (estimated)": "free_estimated_bytes",
         "Free (statfs, df)": "free_statfs_bytes", "Data ratio": "data_ratio", "Metadata ratio": "metadata_ratio",
         "Global reserve": "global_reserve_bytes", "Multiple profiles": "multiple_profiles"}


def parse_usage(text: str) -> dict[str, Any]:
    """``btrfs filesystem usage -b PATH``: {overall: {...}, allocations: [{type, profile, size_bytes,
    used_bytes, devices: [{device, bytes}]}], unallocated: [{device, bytes}]}."""
    overall: dict[str, Any] = {}
    allocations: list[dict[str, Any]] = []
    unallocated: list[dict[str, Any]] = []
    devices: list[dict[str, Any]] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped == "Overall:":
            continue
        section = _SECTION.match(stripped)
        if section:
            devices = []
            allocations.append({"type": _chunk_type(section.group("type")), "profile": section.group("profile").lower(),
                                "size_bytes": int(section.group("size")), "used_bytes": int(section.group("used")),
                                "devices": devices})
            continue
        if stripped == "Unallocated:":
            devices = unallocated
            continue
        key, sep, value = stripped.partition(":")
        if sep and key in _KEYS and devices is None:
            first = value.split()[0] if value.split() else ""
            overall[_KEYS[key]] = (first == "yes" if key == "Multiple profiles"
                                   else float(first) if "ratio" in key else int(first))
            continue
        cols = stripped.split()
        if devices is not None and len(cols) == 2 and cols[1].isdigit():
            devices.append({"device": cols[0], "bytes": int(cols[1])})
    return {"overall": overall, "allocations": allocations, "unallocated": unallocated}


_STAT_NAMES = ("write_io_errs", "read_io_errs", "flush_io_errs", "corruption_errs", "generation_errs")


def parse_device_stats_table(text: str) -> list[dict[str, Any]]:
    """``btrfs device stats -T PATH``: [{devid, device, write_io_errs, read_io_errs, flush_io_errs,
    corruption_errs, generation_errs}]."""
    found = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 7 or not cols[0].isdigit():
            continue
        counters = [int(c) for c in cols[-5:]]
        found.append({"devid": int(cols[0]), "device": " ".join(cols[1:-5]), **dict(zip(_STAT_NAMES, counters))})
    return found


def parse_show(text: str) -> dict[str, Any]:
    """``btrfs filesystem show --raw PATH``: {label, uuid, devices: [{devid, size_bytes, used_bytes, device}]}."""
    info: dict[str, Any] = {"label": None, "uuid": None, "devices": []}
    for line in text.splitlines():
        m = re.match(r"^Label: (?:'(?P<label>.*)'|none)\s+uuid: (?P<uuid>\S+)", line.strip())
        if m:
            info["label"], info["uuid"] = m.group("label"), m.group("uuid")
        m = re.match(r"^devid\s+(\d+) size (\d+) used (\d+) path (.+)$", line.strip())
        if m:
            info["devices"].append({"devid": int(m.group(1)), "size_bytes": int(m.group(2)),
                                    "used_bytes": int(m.group(3)), "device": m.group(4)})
    return info


def parse_scrub_status(text: str) -> dict[str, Any]:
    """``btrfs scrub status -R PATH``: {status, started, duration, counters...}; status is
    'never' when no scrub has run on this filesystem."""
    info: dict[str, Any] = {"status": "never"}
    names = {"Scrub started": "started", "Scrub resumed": "started", "Status": "status", "Duration": "duration"}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        value = value.strip()
        if not sep:
            continue
        if key in names:
            info[names[key]] = value
        elif re.fullmatch(r"[a-z_]+", key) and value.isdigit():
            info[key] = int(value)
    return info


_BALANCE_PROGRESS = re.compile(
    r"(?P<done>\d+) out of about (?P<total>\d+) chunks balanced \((?P<considered>\d+) considered\),"
    r"\s+(?P<left>\d+)% left")


def parse_balance_status(text: str) -> dict[str, Any]:
    """``btrfs balance status PATH``: {status: none|running|paused|cancel requested, ...progress}."""
    info: dict[str, Any] = {"status": "none"}
    first = text.strip().splitlines()[0] if text.strip() else ""
    if " is running" in first:
        info["status"] = "running"
    elif " is paused" in first:
        info["status"] = "paused"
    if "cancel requested" in text:
        info["status"] = "cancel requested"
    m = _BALANCE_PROGRESS.search(text)
    if m:
        info.update(chunks_balanced=int(m.group("done")), chunks_total=int(m.group("total")),
                    chunks_considered=int(m.group("considered")), percent_left=int(m.group("left")))
    return info


def parse_subvolume_show(text: str) -> dict[str, Any]:
    """``btrfs subvolume show PATH``: {id, uuid, parent_uuid, parent_id, readonly}."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            values.setdefault(key.strip(), value.strip())

    def uuid(key: str) -> str | None:
        found = values.get(key, "-")
        return None if found in ("-", "") else found

    return {"id": int(values.get("Subvolume ID", "0")), "uuid": uuid("UUID"), "parent_uuid": uuid("Parent UUID"),
            "parent_id": int(values["Parent ID"]) if values.get("Parent ID", "").isdigit() else None,
            "readonly": "readonly" in values.get("Flags", "")}
