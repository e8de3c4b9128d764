"""The safety guard (SPEC §3): which block devices a destructive or raid call may touch.

It decides from a fresh ``Storage`` picture, before anything is run, so a refused call
changes nothing. A device is refused (-32006) when it backs the root filesystem, is mounted,
has a mounted partition, is active swap (or has a partition that is), is a member of an
active MD array or otherwise held by another device (device mapper), matches
``[vol] protected_devices``, or, when ``[vol] allowed_devices`` is set, matches none of it.
A pattern that names a disk covers its partitions too.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable

from ....config import VolConfig
from ....errors import Refused
from . import sysfs
from .blockdev import Storage


def busy_reason(st: Storage, name: str) -> str | None:
    """Why ``name`` is in use (root, mounted, swap, array member, held), or None; config is not consulted."""
    if name in st.root:
        return "backs the root filesystem"
    dev = st.devices.get(name)
    family = [name] + ([p.name for p in st.partitions_of(name)] if dev is not None and dev.disk is None else [])
    for member in family:
        subject = "" if member == name else f"its partition /dev/{member} is "
        if member in st.mounted:
            return f"{subject}mounted at {st.mounted[member][0]}"
        if member in st.swaps:
            return f"{subject}active swap"
        for holder in st.devices[member].holders if member in st.devices else ():
            if holder.startswith("md"):
                return f"{subject}a member of the active MD array /dev/{holder}"
            return f"{subject}held by /dev/{holder}"
    return None


def _names(patterns: Iterable[str]) -> tuple[list[str], set[str]]:
    """Patterns split into globs and the kernel names of the ones that name an existing device."""
    globs, names = [], set()
    for pattern in patterns:
        globs.append(pattern)
        if not any(c in pattern for c in "*?["):
            found = sysfs.name_of(pattern)
            if found:
                names.add(found)
    return globs, names


def _matches(patterns: Iterable[str], st: Storage, name: str, path: str) -> bool:
    globs, pattern_names = _names(patterns)
    dev = st.devices.get(name)
    family = {name} | ({dev.disk} if dev is not None and dev.disk else set())
    if family & pattern_names:
        return True
    spellings = {f"/dev/{n}" for n in family} | {path, os.path.realpath(path)}
    return any(fnmatch.fnmatchcase(s, g) for s in spellings for g in globs)


class Guard:
    def __init__(self, config: VolConfig) -> None:
        self.config = config

    def refusal(self, st: Storage, name: str, path: str) -> str | None:
        """The reason a destructive call on ``name`` (asked for as ``path``) is refused, or None."""
        reason = busy_reason(st, name)
        if reason:
            return reason
        if _matches(self.config.protected_devices, st, name, path):
            return "matches [vol] protected_devices"
        if self.config.allowed_devices is not None and not _matches(self.config.allowed_devices, st, name, path):
            return "not in [vol] allowed_devices"
        return None

    def check(self, st: Storage, targets: Iterable[tuple[str, str]]) -> None:
        """Raise Refused for the first of ``targets`` ((kernel name, requested path) pairs) that is refused."""
        for name, path in targets:
            reason = self.refusal(st, name, path)
            if reason:
                raise Refused(path, reason)
