"""The xtest report: counts, the RESULT line, the text table, and an atomic write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from osd import state
from osd.xtest import report


def entry(ns: str, outcome: str, detail: str = "") -> dict:
    return {"namespace": ns, "outcome": outcome, "detail": detail}


def test_counts_and_render() -> None:
    methods = {"net.a": entry("net", "passed"), "net.b": entry("net", "failed", "check failed:\n  x  lists y"),
               "vol.c": entry("vol", "unsupported"), "rpc.d": entry("rpc", "skipped"), "net.e": entry("net", "not-run")}
    total, per = report.counts(methods)
    assert total == {"passed": 1, "failed": 1, "unsupported": 1, "skipped": 1, "not-run": 1}
    assert per["net"] == {"passed": 1, "failed": 1, "unsupported": 0, "skipped": 0, "not-run": 1}
    doc = {"profile": {"name": "host"}, "daemon": {"mode": "spawn", "socket": "/s", "version": "0.1.0"},
           "methods": methods, "counts": total, "namespaces": per, "failed": ["net.b"],
           "registration": {"ok": True, "registered": 74}, "leftovers": ["bridges: undo x failed"],
           "teardown": [], "result": "FAIL"}
    text = report.render(doc).splitlines()
    assert text[0] == "osd xtest: profile host against spawn daemon /s (osd 0.1.0)"
    assert text[3].split() == ["net", "1", "1", "0", "0", "1"]
    assert "  net.b: check failed: x lists y" in text
    assert "  bridges: undo x failed" in text
    assert text[-1] == "RESULT: FAIL (1 failed)"


@pytest.mark.parametrize("doc, line", [
    ({"result": "PASS"}, "RESULT: PASS"),
    ({"result": "FAIL", "failed": ["a", "b"]}, "RESULT: FAIL (2 failed)"),
    ({"result": "FAIL", "failed": [], "registration": {"missing": ["x"], "unexpected": []}},
     "RESULT: FAIL (0 failed, 1 registration problem)"),
    ({"result": "INTERRUPTED", "failed": ["a"]}, "RESULT: INTERRUPTED (1 failed)"),
    ({"result": "UNREACHABLE", "error": "cannot reach the daemon: refused"},
     "RESULT: UNREACHABLE (cannot reach the daemon: refused)"),
])
def test_result_line(doc: dict, line: str) -> None:
    assert report.result_line(doc) == line


def test_the_report_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    report.write(path, {"result": "PASS"})
    assert json.loads(path.read_text()) == {"result": "PASS"}

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state.os, "replace", crash)
    with pytest.raises(OSError):
        report.write(path, {"result": "FAIL"})
    assert json.loads(path.read_text()) == {"result": "PASS"}
    assert os.listdir(tmp_path) == ["report.json"]  # the temporary file is gone too
