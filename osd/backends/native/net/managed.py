"""The bridges and taps osd created, recorded in STATE_DIR/net-links.json across restarts.

Records are plain JSON objects keyed by interface name::

    {"bridges": {"br0": {"stp": false, "mtu": null, "vlan_filtering": false}},
     "taps": {"vm1": {"bridge": "br0", "mac": "02:..", "mtu": null, "owner_uid": 1000,
                      "multi_queue": false}}}

Every change is written atomically (osd.state) before it counts: when the write fails,
the records in memory stay as they were, so the caller can undo its kernel change.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ....state import StateError, StateFile
from ..impl import Implementations, Service

TABLES = ("bridges", "taps")
Record = dict[str, Any]


def given(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the None ones: what a request or record leaves open matches anything."""
    return {key: value for key, value in values.items() if value is not None}


def differences(wanted: dict[str, Any], actual: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(expected, actual) restricted to the keys of ``wanted`` whose actual value differs."""
    keys = [key for key, value in wanted.items() if actual.get(key) != value]
    return {key: wanted[key] for key in keys}, {key: actual.get(key) for key in keys}


class Managed(Service):
    """The records, loaded at start; ``lock`` serialises every check-then-change on them."""

    namespace = "net"
    implementations = Implementations()

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self._file = StateFile(state_dir, "net-links")
        self._tables: dict[str, dict[str, Record]] = {table: {} for table in TABLES}
        self.lock = asyncio.Lock()

    @property
    def bridges(self) -> dict[str, Record]:
        return self._tables["bridges"]

    @property
    def taps(self) -> dict[str, Record]:
        return self._tables["taps"]

    async def start(self) -> None:
        """Load the records; raises StateError (naming the file) when they are malformed."""
        data = self._file.load()
        for table in TABLES:
            records = data.get(table, {})
            if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
                raise StateError(f"state file {self._file.path}: '{table}' must map names to objects")
            self._tables[table] = dict(records)

    def put(self, table: str, name: str, record: Record | None) -> None:
        """Record ``name`` (or forget it, with None) and persist. Raises KernelError when the
        state file cannot be written; the records are then unchanged."""
        updated = dict(self._tables[table])
        if record is None:
            updated.pop(name, None)
        else:
            updated[name] = record
        self._file.save({**self._tables, table: updated})
        self._tables[table] = updated
