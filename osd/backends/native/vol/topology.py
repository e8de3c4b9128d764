"""vol.feasible_topologies: which storage layouts this node's unused disks allow, and why (not)."""

from __future__ import annotations

import dataclasses
from typing import Any

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Template:
    name: str
    disks: int
    min_bytes: int       # per disk
    needs: str           # "btrfs" or "md"


# Minimum sizes measured with btrfs-progs 6.2 (LAB.md): 109 MiB single, 125 MiB per raid member.
TEMPLATES = (
    Template("single", 1, 109 * MIB, "btrfs"),
    Template("btrfs-raid1", 2, 125 * MIB, "btrfs"),
    Template("btrfs-raid1c3", 3, 125 * MIB, "btrfs"),
    Template("btrfs-raid10", 4, 125 * MIB, "btrfs"),
    Template("md-raid1", 2, 64 * MIB, "md"),
)


def feasible(candidates: list[tuple[str, int]], missing: dict[str, str | None]) -> list[dict[str, Any]]:
    """Each template with ``feasible``, ``reason`` and the candidate disks large enough for it.

    ``candidates`` are (path, size_bytes) of whole disks that are blank, unused and allowed
    by the guard; ``missing`` maps "btrfs"/"md" to why that kind cannot be built here (None: it can).
    """
    answers = []
    for t in TEMPLATES:
        fit = [path for path, size in candidates if size >= t.min_bytes]
        if missing.get(t.needs):
            ok, reason = False, str(missing[t.needs])
        elif len(fit) >= t.disks:
            ok, reason = True, f"{len(fit)} blank, unused disk(s) of at least {t.min_bytes // MIB} MiB"
        else:
            ok = False
            reason = (f"needs {t.disks} blank, unused disk(s) of at least {t.min_bytes // MIB} MiB; "
                      f"found {len(fit)}")
        answers.append({"name": t.name, "feasible": ok, "reason": reason, "disks": fit,
                        "min_disks": t.disks, "min_disk_bytes": t.min_bytes})
    return answers
