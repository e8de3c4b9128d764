"""Atomic versioned state files: round trip, refusal of corrupt or foreign files, no temp leftovers,
and a failed write reported as an osd error."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from osd.backends.native.net.firewall import NetfilterService
from osd.backends.native.vol.mounts import MountRecords
from osd.config import Config, ServerConfig
from osd.errors import KernelError
from osd.state import StateError, StateFile


def test_round_trip_and_absent_file(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "sub", "net")
    assert state.load() == {}
    state.save({"taps": {"t0": {"bridge": "br0"}}})
    assert state.load() == {"taps": {"t0": {"bridge": "br0"}}}
    state.save({"taps": {}})
    assert state.load() == {"taps": {}}
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["net.json"]


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ('{"format": "osd-state", "kind": "vol", "version": 1, "data": {}}', "not an osd net state file"),
    ('{"format": "osd-state", "kind": "net", "version": 99, "data": {}}', "version 99"),
    ('{"format": "osd-state", "kind": "net", "version": 1, "data": []}', "'data' must be an object"),
])
def test_unusable_file_stops_with_its_name(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "net.json").write_text(content)
    with pytest.raises(StateError) as err:
        StateFile(tmp_path, "net").load()
    assert str(tmp_path / "net.json") in str(err.value) and problem in str(err.value)
    assert (tmp_path / "net.json").read_text() == content  # never replaced


def test_failed_write_leaves_old_content_and_no_temp_file(tmp_path: Path) -> None:
    state = StateFile(tmp_path, "vol")
    state.save({"mounts": {"/a": 1}})
    with pytest.raises(TypeError):
        state.save({"mounts": {"/b": object()}})
    assert state.load() == {"mounts": {"/a": 1}}
    assert [p.name for p in tmp_path.iterdir()] == ["vol.json"]


def unwritable_dir(tmp_path: Path) -> Path:
    """A state directory that cannot be created, even by root: its parent is a regular file."""
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "state"


def test_a_failed_write_is_an_osd_error_naming_the_file(tmp_path: Path) -> None:
    state = StateFile(unwritable_dir(tmp_path), "net")
    with pytest.raises(KernelError) as err:
        state.save({})
    assert err.value.data == {"errno": errno.ENOTDIR, "strerror": os.strerror(errno.ENOTDIR),
                              "op": f"write {state.path}"}


def test_services_report_a_failed_state_write_as_kernel_error_and_keep_their_records(tmp_path: Path) -> None:
    """Before, vol.mount's record and the firewall's record let the OSError through (-32603)."""
    config = Config(server=ServerConfig(state_dir=str(unwritable_dir(tmp_path))))
    records = MountRecords(config.server.state_dir)
    with pytest.raises(KernelError):
        records.put("/mnt/x", {"source": "/dev/loop9"})
    assert records.entries == {}
    firewall = NetfilterService(config)
    with pytest.raises(KernelError):
        asyncio.run(firewall.add_rule(port=22, proto="tcp"))
    assert firewall._entries == {}
