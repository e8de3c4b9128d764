"""Linux MD RAID as the kernel and mdadm describe it: /proc/mdstat and ``mdadm --detail``, parsed.

Pure text parsing; the samples they are tested on were captured from a real kernel by the
VM lab (tests/unit/samples/md/).
"""

from __future__ import annotations

import re
from typing import Any

MDSTAT = "/proc/mdstat"
NO_MD = "kernel has no MD support (no /proc/mdstat)"

_HEADER = re.compile(r"^(?P<name>md\S*) : (?P<rest>.*)$")
_MEMBER = re.compile(r"^(?P<dev>[^\[\s]+)\[(?P<index>\d+)\](?P<flags>(?:\([A-Z]\))*)$")
_STATUS = re.compile(r"\[(?P<want>\d+)/(?P<have>\d+)\]\s+\[(?P<map>[U_]+)\]")
_BLOCKS = re.compile(r"^(?P<blocks>\d+) blocks")
_PROGRESS = re.compile(r"(?P<action>resync|recovery|check|repair|reshape)\s*=\s*(?P<percent>[\d.]+)%")
_PENDING = re.compile(r"(?P<action>resync|recovery|check|repair|reshape)\s*=\s*(?P<what>DELAYED|PENDING)")
_FLAGS = {"F": "faulty", "S": "spare", "W": "write-mostly", "R": "replacement", "J": "journal"}


def _member(token: str) -> dict[str, Any] | None:
    m = _MEMBER.match(token)
    if not m:
        return None
    flags = [_FLAGS.get(f, f) for f in re.findall(r"\(([A-Z])\)", m.group("flags"))]
    role = next((f for f in flags if f in ("spare", "journal", "replacement")), "member")
    state = "faulty" if "faulty" in flags else "write-mostly" if "write-mostly" in flags else "ok"
    return {"device": f"/dev/{m.group('dev')}", "role": role, "state": state, "index": int(m.group("index"))}


def parse_mdstat(text: str) -> list[dict[str, Any]]:
    """Every array in /proc/mdstat: {device, level, state, members, sync, size_bytes, raid_devices,
    active_devices}; ``sync`` is None when no resync/recovery/check/reshape is running or pending."""
    arrays: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            tokens = header.group("rest").split()
            state = tokens.pop(0) if tokens else "unknown"
            while tokens and tokens[0].startswith("("):  # (auto-read-only), (read-only)
                state += " " + tokens.pop(0)
            level = tokens.pop(0) if tokens and _member(tokens[0]) is None else None
            members = [m for m in map(_member, tokens) if m is not None]
            current = {"device": f"/dev/{header.group('name')}", "level": level or "unknown", "state": state,
                       "members": sorted(members, key=lambda m: m["index"]), "sync": None,
                       "size_bytes": None, "raid_devices": None, "active_devices": None}
            arrays.append(current)
            continue
        if not line.startswith((" ", "\t")):
            current = None  # "unused devices:" or the next array
        if current is None:
            continue
        body = line.strip()
        blocks = _BLOCKS.match(body)
        if blocks:
            current["size_bytes"] = int(blocks.group("blocks")) * 1024
        status = _STATUS.search(body)
        if status:
            current["raid_devices"], current["active_devices"] = int(status.group("want")), int(status.group("have"))
            if "_" in status.group("map"):
                current["state"] += ", degraded"
        progress = _PROGRESS.search(body)
        if progress:
            current["sync"] = {"action": progress.group("action"), "percent": float(progress.group("percent"))}
        pending = _PENDING.search(body)
        if pending:
            current["sync"] = {"action": pending.group("action"), "percent": 0.0,
                               "status": pending.group("what").lower()}
    return arrays


def read_mdstat(path: str = MDSTAT) -> str | None:
    """The text of /proc/mdstat, or None when the kernel has no MD support."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------- mdadm --detail
_INT_KEYS = {"Raid Devices": "raid_devices", "Total Devices": "total_devices", "Active Devices": "active_devices",
             "Working Devices": "working_devices", "Failed Devices": "failed_devices",
             "Spare Devices": "spare_devices"}
_TEXT_KEYS = {"Version": "version", "Raid Level": "level", "State": "state", "Consistency Policy": "consistency_policy",
              "UUID": "uuid", "Layout": "layout", "Chunk Size": "chunk_size", "Persistence": "persistence"}
_SIZE_KEYS = {"Array Size": "size_bytes", "Used Dev Size": "used_dev_size_bytes"}
_SYNC_KEYS = {"Resync Status": "resync", "Rebuild Status": "recovery", "Reshape Status": "reshape",
              "Check Status": "check"}


def parse_detail(text: str) -> dict[str, Any]:
    """``mdadm --detail DEV`` output as {device, level, state, size_bytes, ..., sync, members}.

    Members are the table rows: {number, major, minor, raid_device, state, device}; a
    removed slot has number, raid_device or device None where mdadm prints '-' or nothing.
    """
    lines = text.splitlines()
    if not lines or not lines[0].rstrip().endswith(":"):
        raise ValueError("not mdadm --detail output")
    detail: dict[str, Any] = {"device": lines[0].rstrip()[:-1], "sync": None, "members": []}
    in_table = False
    for line in lines[1:]:
        if not line.strip():
            continue
        if line.split()[:2] == ["Number", "Major"]:
            in_table = True
            continue
        if in_table:
            detail["members"].append(_row(line.split()))
            continue
        key, sep, value = line.partition(" : ")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key in _INT_KEYS:
            detail[_INT_KEYS[key]] = int(value)
        elif key in _TEXT_KEYS:
            detail[_TEXT_KEYS[key]] = value.rstrip(", ")
        elif key in _SIZE_KEYS:
            detail[_SIZE_KEYS[key]] = int(value.split()[0]) * 1024
        elif key in _SYNC_KEYS:
            detail["sync"] = {"action": _SYNC_KEYS[key], "percent": float(value.split("%")[0])}
        elif key == "Events":
            detail["events"] = int(value) if value.isdigit() else value
        elif key == "Name":
            detail["name"] = value.split()[0]
    return detail


def _row(cols: list[str]) -> dict[str, Any]:
    def num(token: str) -> int | None:
        return int(token) if token.lstrip("-").isdigit() and token != "-" else None

    device = cols[-1] if cols[-1].startswith("/dev/") else None
    state_cols = cols[4:-1] if device else cols[4:]
    return {"number": num(cols[0]), "major": num(cols[1]), "minor": num(cols[2]), "raid_device": num(cols[3]),
            "state": " ".join(state_cols), "device": device}


def parse_export(text: str) -> dict[str, Any]:
    """``mdadm --detail --export DEV``: {level, devices, metadata, uuid, name, members: {device: role}}."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    members = {v: values.get(k[:-len("_DEV")] + "_ROLE", "") for k, v in values.items()
               if k.startswith("MD_DEVICE_") and k.endswith("_DEV")}
    return {"level": values.get("MD_LEVEL"), "devices": int(values.get("MD_DEVICES", "0")),
            "metadata": values.get("MD_METADATA"), "uuid": values.get("MD_UUID"), "name": values.get("MD_NAME"),
            "members": members}
