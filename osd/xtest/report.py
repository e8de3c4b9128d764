"""The conformance report: one JSON document, written atomically, and its text summary.

Report keys: ``format``/``version``, ``profile``, ``daemon`` (socket, mode, backend,
version, log), ``started``/``finished`` (UTC, ISO 8601), ``registration``, ``methods``
(per method: namespace, tier, classification, outcome, detail, calls, duration_s, cases),
``scenarios``, ``counts`` (per outcome), ``namespaces`` (per namespace and outcome),
``failed``, ``leftovers``, ``teardown``, ``collected`` (labs of killed runs undone first),
``result`` and ``exit_code``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ..state import write_atomic
from .engine import Outcome

FORMAT, VERSION = "osd-xtest-report", 1
OUTCOMES = tuple(o.value for o in Outcome)
NAMESPACES = ("net", "vol", "rpc")


def counts(methods: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Methods per outcome, overall and per namespace."""
    total = dict.fromkeys(OUTCOMES, 0)
    per: dict[str, dict[str, int]] = {ns: dict.fromkeys(OUTCOMES, 0) for ns in NAMESPACES}
    for entry in methods.values():
        total[entry["outcome"]] += 1
        per.setdefault(entry["namespace"], dict.fromkeys(OUTCOMES, 0))[entry["outcome"]] += 1
    return total, per


def result_line(report: Mapping[str, Any]) -> str:
    """``RESULT: PASS``, ``RESULT: FAIL (n failed)`` and the like."""
    result = report["result"]
    failed = len(report.get("failed", ()))
    registration = report.get("registration") or {}
    problems = len(registration.get("missing", ())) + len(registration.get("unexpected", ()))
    if result == "PASS":
        return "RESULT: PASS"
    if result == "UNREACHABLE":
        return f"RESULT: UNREACHABLE ({report.get('error', 'the daemon could not be reached')})"
    parts = [f"{failed} failed"]
    if problems:
        parts.append(f"{problems} registration problem{'s' if problems > 1 else ''}")
    return f"RESULT: {result} ({', '.join(parts)})"


def write(path: str | os.PathLike[str], report: Mapping[str, Any]) -> None:
    """Write the report atomically (a reader sees the old file or the whole new one); raises OSError."""
    write_atomic(path, (json.dumps(report, indent=2) + "\n").encode())


def render(report: Mapping[str, Any]) -> str:
    """The per-namespace table, the failed methods with one-line reasons, and the RESULT line."""
    lines: list[str] = []
    profile, daemon = report["profile"], report.get("daemon", {})
    lines.append(f"osd xtest: profile {profile['name']} against {daemon.get('mode', '?')} daemon "
                 f"{daemon.get('socket', '?')} (osd {daemon.get('version', '?')})")
    per = report.get("namespaces") or {}
    if per:
        header = f"{'namespace':10}" + "".join(f"{o:>13}" for o in OUTCOMES)
        lines += ["", header]
        for ns, row in [*per.items(), ("total", report["counts"])]:
            lines.append(f"{ns:10}" + "".join(f"{row.get(o, 0):>13}" for o in OUTCOMES))
    registration = report.get("registration") or {}
    if registration:
        if registration.get("ok"):
            lines.append(f"\nregistration: ok ({registration.get('registered', 0)} methods in rpc.discover)")
        else:
            lines.append("\nregistration problems:")
            lines += [f"  {m}: must be registered, rpc.discover does not list it" for m in registration["missing"]]
            lines += [f"  {m}: must not be registered, rpc.discover lists it" for m in registration["unexpected"]]
    failed = report.get("failed") or []
    if failed:
        lines.append(f"\nfailed methods ({len(failed)}):")
        for name in failed:
            lines.append(f"  {name}: {_one_line(report['methods'][name]['detail'])}")
    for key, title in (("leftovers", "left behind"), ("teardown", "teardown problems")):
        if report.get(key):
            lines.append(f"\n{title}:")
            lines += [f"  {_one_line(item)}" for item in report[key]]
    if report.get("report_path"):
        lines.append(f"\nreport: {report['report_path']}")
    lines.append(result_line(report))
    return "\n".join(lines)


def _one_line(text: str, width: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."
