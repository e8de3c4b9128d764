"""/proc/self/mountinfo and /proc/swaps, parsed with their octal escapes undone."""

from __future__ import annotations

import dataclasses
import os
import re

MOUNTINFO = "/proc/self/mountinfo"
SWAPS = "/proc/swaps"

# The kernel escapes space, tab, newline and backslash in paths as \ooo (fs/proc_namespace.c).
_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """A mountinfo or /proc/swaps field with its \\ooo escapes decoded."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclasses.dataclass(frozen=True)
class Mount:
    """One line of mountinfo (proc(5)); ``major:minor`` is 0:N for btrfs and other anonymous devices."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    target: str
    options: str
    fs_type: str
    source: str
    super_options: str

    def option(self, key: str) -> str | None:
        """The value of ``key=value`` in the superblock options (btrfs ``subvol``), or None."""
        for item in self.super_options.split(","):
            name, _, value = item.partition("=")
            if name == key:
                return value
        return None


def parse_mountinfo(text: str) -> list[Mount]:
    """Every mount in ``text`` in kernel order (later entries sit on top of earlier ones)."""
    mounts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(" "), tail.split(" ")
        if not sep or len(fields) < 6 or len(rest) < 3:
            raise ValueError(f"malformed mountinfo line: {line!r}")
        major, _, minor = fields[2].partition(":")
        mounts.append(Mount(
            mount_id=int(fields[0]), parent_id=int(fields[1]), major=int(major), minor=int(minor),
            root=unescape(fields[3]), target=unescape(fields[4]), options=fields[5],
            fs_type=unescape(rest[0]), source=unescape(rest[1]), super_options=unescape(rest[2]),
        ))
    return mounts


def read_mounts(path: str = MOUNTINFO) -> list[Mount]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def parse_swaps(text: str) -> list[str]:
    """The active swap areas' file names (devices or files), header skipped."""
    lines = text.splitlines()[1:]
    return [unescape(line.split()[0]) for line in lines if line.strip()]


def read_swaps(path: str = SWAPS) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse_swaps(f.read())
    except FileNotFoundError:  # a kernel without swap support
        return []


def mount_at(target: str, mounts: list[Mount]) -> Mount | None:
    """The mount visible at exactly ``target`` (the topmost one when several are stacked)."""
    found = None
    for mount in mounts:
        if mount.target == target:
            found = mount
    return found


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount that holds ``path`` (resolved): the longest target prefix, topmost when stacked."""
    real = os.path.realpath(path)
    best: Mount | None = None
    for mount in mounts:
        t = mount.target
        if real == t or real.startswith(t.rstrip("/") + "/"):
            if best is None or len(t) >= len(best.target):
                best = mount
    return best
