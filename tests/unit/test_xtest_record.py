"""Lab records on disk: saved, removed, and found as orphans only when their owner is dead."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from osd.xtest import record


def test_records_and_orphans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "RECORDS", tmp_path)
    mine = record.LabRecord("osdx-mine")
    mine.save({"namespaces": ["osdx-daemon-1-abc"]})
    assert json.loads((tmp_path / "osdx-mine.json").read_text()) == {
        "owner": record.identity(os.getpid()), "namespaces": ["osdx-daemon-1-abc"]}
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "osdx-dead.json").write_text(json.dumps({"owner": [dead.pid, 1], "namespaces": []}))
    (tmp_path / "osdx-reused.json").write_text(json.dumps({"owner": [os.getpid(), 1], "namespaces": []}))
    (tmp_path / "garbled.json").write_text("{")
    assert [p.name for p, _ in record.orphans()] == ["osdx-dead.json", "osdx-reused.json"]  # a pid alone lies
    mine.remove()
    assert not (tmp_path / "osdx-mine.json").exists()


def test_no_record_where_it_cannot_be_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(record, "RECORDS", blocker / "records")  # a path under a file: not creatable
    lab = record.LabRecord("x")
    lab.save({})
    assert lab.path is None
    lab.remove()


def test_one_collector_at_a_time_claims_an_orphan(tmp_path: Path) -> None:
    path = tmp_path / "osdx-dead.json"
    path.write_text("{}")
    with record.claimed(path) as first:
        with record.claimed(path) as second:  # another open file description: another collector
            assert first is True and second is False
    with record.claimed(path) as again:  # released with the block
        assert again is True
        path.unlink()  # its collector removed it
    with record.claimed(path) as gone:
        assert gone is False
