"""What a lab has created, on disk, so that the lab of a runner killed outright can be undone.

Each lab keeps one record, ``/run/osd-xtest/<run>.json`` (tmpfs: forgotten at reboot, like
what it lists), rewritten atomically after every creation and removed once its teardown
has undone everything. A record whose owner (pid and start time, since a pid alone may be
reused) is no longer alive belongs to a runner that was killed (SIGKILL, OOM, a CI
timeout): the next run undoes it from what it lists, by identity, never by pattern.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..state import write_atomic

RECORDS = Path("/run/osd-xtest")


def identity(pid: int) -> list[int] | None:
    """[pid, start time in clock ticks] of a live process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # a zombie has finished
        return None
    return [pid, int(fields[19])]


class LabRecord:
    """One lab's record; saving is best effort (a runner without /run access keeps none)."""

    def __init__(self, run: str) -> None:
        self.path: Path | None = RECORDS / f"{run}.json"
        self.owner = identity(os.getpid())

    def save(self, contents: dict[str, Any]) -> None:
        if self.path is None:
            return
        try:
            write_atomic(self.path, json.dumps({"owner": self.owner, **contents}).encode())
        except OSError:
            self.path = None

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[bool]:
    """Whether this process may undo the lab recorded at ``path``: an exclusive flock on the
    record, held for the block. Several runs on one machine each collect orphans at start;
    without the claim two of them undid one lab at once and each tripped over the other's
    deletions. False: another run holds it, or has already removed the record."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:  # the lock is on what was opened: still the record, or removed by its collector?
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        yield current
    finally:
        os.close(fd)


def orphans() -> list[tuple[Path, dict[str, Any]]]:
    """Records whose owner is dead, with their contents; unreadable ones are left alone."""
    found = []
    for path in sorted(RECORDS.glob("*.json")) if RECORDS.is_dir() else ():
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        owner = doc.get("owner")
        if isinstance(owner, list) and len(owner) == 2 and identity(int(owner[0])) != owner:
            found.append((path, doc))
    return found
