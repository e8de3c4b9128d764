"""Atomic versioned state files: round trip, refusal of corrupt or foreign files, no temp leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest

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
