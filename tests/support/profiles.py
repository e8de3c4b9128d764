"""xtest profiles for tests: a valid profile as a dict, changed as a test needs, written as TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from osd import methods

CATALOGUE = [spec.name for spec in methods.registry()]
MOS = [spec.name for spec in methods.registry() if spec.tier.value == "mos"]
ALL_TIERS = ["read", "scratch", "shared", "disruptive", "destructive", "raid"]


def base(**changes: Any) -> dict[str, Any]:
    """A valid profile: the mos tier expected unsupported (and not allowed), the rest must succeed."""
    doc: dict[str, Any] = {
        "description": "test",
        "allow_tiers": ALL_TIERS,
        "must_be_registered": ["*"],
        "must_succeed": [m for m in CATALOGUE if m not in MOS],
        "expect_unsupported": {m: "MOS nodes" for m in MOS},
        "skipped_methods": {},
        "scratch": {"name_prefix": "xt", "loop_disks": 2},
    }
    doc.update(changes)
    return doc


def only(must_succeed: list[str], expect_unsupported: dict[str, str] | None = None, **changes: Any) -> dict[str, Any]:
    """A profile that runs just these methods and skips every other one.

    ``expect_unsupported`` defaults to the mos tier (not allowed, so reported not-run).
    """
    expected = {m: "MOS nodes" for m in MOS} if expect_unsupported is None else expect_unsupported
    skipped = {m: "not part of this test" for m in CATALOGUE if m not in must_succeed and m not in expected}
    return base(must_succeed=must_succeed, expect_unsupported=expected, skipped_methods=skipped, **changes)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def write(directory: Path, doc: dict[str, Any], name: str = "p.toml") -> str:
    """The profile as a TOML file (dict values become tables); its path."""
    text = "".join(f"{k} = {_value(v)}\n" for k, v in doc.items() if not isinstance(v, dict))
    for table, entries in ((k, v) for k, v in doc.items() if isinstance(v, dict)):
        text += f"[{table}]\n" + "".join(f'"{k}" = {_value(v)}\n' for k, v in entries.items())
    path = directory / name
    path.write_text(text)
    return str(path)
