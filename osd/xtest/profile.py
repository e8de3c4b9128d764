"""Conformance profiles: which methods must work, which must answer -32010, which are skipped.

A profile is a TOML file (the shipped ones live in ``profiles/``)::

    description = "..."
    allow_tiers = ["read", "scratch", ...]       # tiers of methods.toml the runner may call
    must_be_registered = ["*"]                    # rpc.discover must list these (globs allowed)
    must_be_unregistered = []                     # rpc.discover must not list these
    must_succeed = ["net.bridge.add", ...]        # their scenario must pass
    [expect_unsupported]                          # must answer -32010 whose data.reason has the text
    "vol.create_md_array" = "MD RAID"
    "vol.mount:vfat" = "vfat"                     # METHOD:CASE narrows it to one case of a scenario
    [skipped_methods]                             # not run, with the reason (or an array of names)
    "net.ovs" = "MOS only"
    [scratch]
    name_prefix = "xt"                            # bridges, taps, subvolumes are named from it
    mount_point = "/mnt/osd-xtest"                # default: a directory in the run's work dir
    disks = ["/dev/vdb"]                          # scratch block devices (live daemon)
    loop_disks = 3                                # --spawn: loop devices the runner makes
    loop_size_mb = 512

Every catalogue method is classified exactly once across must_succeed, expect_unsupported
and skipped_methods. A METHOD:CASE key refines a method of must_succeed (one case of its
scenario, e.g. the vfat mount) and may appear once, in expect_unsupported or
skipped_methods. ``load`` raises ProfileError naming the first problem found.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from .. import methods
from ..registry import Registry, Tier

PROFILES = Path(__file__).resolve().parent / "profiles"
TIERS = tuple(t.value for t in Tier)

MUST_SUCCEED, EXPECT_UNSUPPORTED, SKIPPED = "must_succeed", "expect_unsupported", "skipped_methods"
_KEYS = {"description", "allow_tiers", "must_be_registered", "must_be_unregistered", MUST_SUCCEED,
         EXPECT_UNSUPPORTED, SKIPPED, "scratch"}
_SCRATCH_KEYS = {"name_prefix", "mount_point", "disks", "loop_disks", "loop_size_mb"}
# Interface names are at most 15 characters: prefix (<= 5) + run tag (4) + suffix (<= 6).
NAME_PREFIX = re.compile(r"[a-z][a-z0-9]{0,4}")
DISK = re.compile(r"/dev/[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*")


class ProfileError(Exception):
    """The profile is unusable; the message names the file and the problem."""


class ProfileNotFound(ProfileError):
    """No shipped profile has that name and no file has that path."""


@dataclasses.dataclass(frozen=True)
class Scratch:
    name_prefix: str
    mount_point: str | None = None
    disks: tuple[str, ...] = ()
    loop_disks: int = 0
    loop_size_mb: int = 512


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    path: str
    description: str
    allow_tiers: frozenset[str]
    must_be_registered: frozenset[str]
    must_be_unregistered: frozenset[str]
    classification: Mapping[str, str]   # method -> MUST_SUCCEED | EXPECT_UNSUPPORTED | SKIPPED
    expect_unsupported: Mapping[str, str]  # method or method:case -> reason fragment
    skipped: Mapping[str, str]             # method or method:case -> reason
    scratch: Scratch

    @property
    def must_succeed(self) -> tuple[str, ...]:
        return tuple(m for m, c in self.classification.items() if c == MUST_SUCCEED)


def shipped() -> list[str]:
    """Names of the profiles shipped with osd."""
    return sorted(p.stem for p in PROFILES.glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """A shipped profile's file by name, or the file at a path; raises ProfileNotFound."""
    if "/" not in name_or_path and not name_or_path.endswith(".toml"):
        path = PROFILES / f"{name_or_path}.toml"
        if path.is_file():
            return path
        raise ProfileNotFound(f"no shipped profile {name_or_path!r} (shipped: {', '.join(shipped())}); "
                              "give a path to use your own")
    path = Path(name_or_path)
    if not path.is_file():
        raise ProfileNotFound(f"profile {name_or_path}: no such file")
    return path


def load(name_or_path: str, *, cases: Collection[str] = (), registry: Registry | None = None) -> Profile:
    """The validated profile; ``cases`` are the METHOD:CASE keys the scenarios know.

    Raises ProfileNotFound, or ProfileError naming the file and the first problem.
    """
    path = resolve(name_or_path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ProfileError(f"profile {path}: cannot read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path}: not valid TOML: {exc}") from exc
    try:
        return _validate(doc, path, set(cases), registry or methods.registry())
    except ValueError as exc:
        raise ProfileError(f"profile {path}: {exc}") from None


# ---------------------------------------------------------------- validation
def _strings(doc: Mapping[str, Any], key: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key} must be an array of non-empty strings")
    seen: set[str] = set()
    for item in value:
        if item in seen:
            raise ValueError(f"{key} lists {item!r} twice")
        seen.add(item)
    return value


def _reasons(doc: Mapping[str, Any], key: str, *, array_allowed: bool) -> dict[str, str]:
    value = doc.get(key, {})
    if array_allowed and isinstance(value, list):
        return {name: "skipped by the profile" for name in _strings(doc, key)}
    if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
        kind = "an array of method names or a table" if array_allowed else "a table"
        raise ValueError(f"{key} must be {kind} of method -> non-empty text")
    return dict(value)


def _patterns(doc: Mapping[str, Any], key: str, names: list[str]) -> frozenset[str]:
    matched: set[str] = set()
    for pattern in _strings(doc, key):
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise ValueError(f"{key}: {pattern!r} matches no method of the catalogue")
        matched.update(hits)
    return frozenset(matched)


def _scratch(table: Any) -> Scratch:
    if not isinstance(table, dict):
        raise ValueError("[scratch] is required: a table with at least name_prefix")
    unknown = sorted(set(table) - _SCRATCH_KEYS)
    if unknown:
        raise ValueError(f"[scratch]: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_SCRATCH_KEYS))})")
    prefix = table.get("name_prefix")
    if not isinstance(prefix, str) or not NAME_PREFIX.fullmatch(prefix):
        raise ValueError("[scratch] name_prefix must be 1-5 characters, a lowercase letter then letters or "
                         f"digits (names are prefix + 4-character run tag + suffix, within 15), not {prefix!r}")
    mount_point = table.get("mount_point")
    if mount_point is not None and (not isinstance(mount_point, str) or not mount_point.startswith("/")
                                    or mount_point.rstrip("/") == ""):
        raise ValueError(f"[scratch] mount_point must be an absolute path other than /, not {mount_point!r}")
    disks = _strings(table, "disks")
    for disk in disks:
        if not DISK.fullmatch(disk):
            raise ValueError(f"[scratch] disks: {disk!r} is not a block device path under /dev")
    loops, size = table.get("loop_disks", 0), table.get("loop_size_mb", 512)
    if isinstance(loops, bool) or not isinstance(loops, int) or not 0 <= loops <= 8:
        raise ValueError(f"[scratch] loop_disks must be an integer from 0 to 8, not {loops!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= 8192:
        raise ValueError(f"[scratch] loop_size_mb must be an integer from 64 to 8192, not {size!r}")
    return Scratch(prefix, mount_point.rstrip("/") if mount_point else None, tuple(disks), loops, size)


def _validate(doc: dict[str, Any], path: Path, cases: set[str], registry: Registry) -> Profile:
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description must be a string")
    tiers = _strings(doc, "allow_tiers")
    for tier in tiers:
        if tier not in TIERS:
            raise ValueError(f"allow_tiers: unknown tier {tier!r} (tiers: {', '.join(TIERS)})")
    names = [spec.name for spec in registry]
    registered = _patterns(doc, "must_be_registered", names)
    unregistered = _patterns(doc, "must_be_unregistered", names)
    both = sorted(registered & unregistered)
    if both:
        raise ValueError(f"{both[0]} is in both must_be_registered and must_be_unregistered")

    lists = {MUST_SUCCEED: {m: "" for m in _strings(doc, MUST_SUCCEED)},
             EXPECT_UNSUPPORTED: _reasons(doc, EXPECT_UNSUPPORTED, array_allowed=False),
             SKIPPED: _reasons(doc, SKIPPED, array_allowed=True)}
    classification: dict[str, str] = {}
    case_of: dict[str, str] = {}
    for kind, entries in lists.items():
        for key in entries:
            method, sep, _ = key.partition(":")
            if method not in registry:
                raise ValueError(f"{kind}: unknown method {method!r}")
            if sep:
                if kind == MUST_SUCCEED:
                    raise ValueError(f"{kind}: {key!r}: cases go in expect_unsupported or skipped_methods; "
                                     f"list the method {method!r} itself here")
                if key not in cases:
                    known = sorted(c for c in cases if c.startswith(method + ":"))
                    raise ValueError(f"{kind}: unknown case {key!r} (cases of {method}: "
                                     f"{', '.join(known) or 'none'})")
                if key in case_of:
                    raise ValueError(f"{key} is in both {case_of[key]} and {kind}")
                case_of[key] = kind
            elif method in classification:
                raise ValueError(f"{method} is classified twice: in {classification[method]} and {kind}")
            else:
                classification[method] = kind
    missing = [name for name in names if name not in classification]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"{len(missing)} catalogue methods are not classified (each must be in must_succeed, "
                         f"expect_unsupported or skipped_methods exactly once): {shown}")
    for key, fragment in lists[EXPECT_UNSUPPORTED].items():
        if fragment.strip().lower() in key.partition(":")[0].lower():
            raise ValueError(f"expect_unsupported: the text {fragment!r} for {key} is part of the method's name, so "
                             "any -32010 would match it ('not implemented yet' included); quote the reason instead")
    for key in case_of:
        method = key.partition(":")[0]
        if classification[method] != MUST_SUCCEED:
            raise ValueError(f"case {key!r} refines {method}, which is not in must_succeed")
    for name in names:
        tier = registry.get(name).tier.value
        if classification[name] == MUST_SUCCEED and tier not in tiers:
            raise ValueError(f"{name} is in must_succeed but its tier {tier!r} is not in allow_tiers")
        if name in unregistered and classification[name] != SKIPPED:
            raise ValueError(f"{name} must be unregistered, so it can only be in skipped_methods")

    return Profile(
        name=path.stem, path=str(path), description=description, allow_tiers=frozenset(tiers),
        must_be_registered=registered, must_be_unregistered=unregistered,
        classification={name: classification[name] for name in names},
        expect_unsupported=lists[EXPECT_UNSUPPORTED], skipped=lists[SKIPPED],
        scratch=_scratch(doc.get("scratch")),
    )
