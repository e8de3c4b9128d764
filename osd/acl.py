"""The access-control list: groups, ACEs, tokens and policy, validated at load.

File format (TOML 1.0; ``acl.example.toml`` documents every key)::

    [[group]]  name, users = [principal...], member_groups = [group...]
    [[ace]]    right = "read"|"write"|"admin", groups = [group...]
    [[token]]  name, sha256 = hex of sha256(token)
    [policy]   anonymous_local, anonymous_remote = "none"|"read"|"write"|"admin"

Principals: a 64-hex ed25519 public key, ``token:<name>``, ``uid:<n>``, ``user:<name>``,
``unixgroup:<name>``. ``member_groups`` of G lists groups whose members are members of G too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .registry import Right

_PRINCIPAL = re.compile(r"^([0-9a-f]{64}|token:[A-Za-z0-9_.-]+|uid:[0-9]+|user:[A-Za-z0-9_.-]+|unixgroup:[A-Za-z0-9_.-]+)$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KEYS = {
    "": {"group", "ace", "token", "policy"},
    "group": {"name", "users", "member_groups"},
    "ace": {"right", "groups"},
    "token": {"name", "sha256"},
    "policy": {"anonymous_local", "anonymous_remote"},
}


class AclError(Exception):
    """The ACL file is unusable; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Acl:
    source: str  # the file path, or "built-in"
    principal_rights: Mapping[str, Right]  # every principal named in a group -> its highest right
    tokens: Mapping[str, str]  # sha256 hex -> token name
    anonymous_local: Right
    anonymous_remote: Right
    floor: Right = Right.NONE  # the least right of every caller (the built-in policy's "everyone reads")

    @classmethod
    def builtin(cls) -> "Acl":
        """No ACL file: uid 0 is admin, every other caller reads."""
        return cls("built-in", {"uid:0": Right.ADMIN}, {}, Right.READ, Right.NONE, floor=Right.READ)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Acl":
        """Parse and validate an ACL file; raises AclError naming the problem."""
        path = Path(path)
        try:
            st = path.stat()
            raw = path.read_bytes()
        except OSError as exc:
            raise AclError(f"ACL {path}: cannot read: {exc.strerror}") from exc
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_uid not in (0, os.geteuid()):
            raise AclError(
                f"ACL {path}: writable by other users (mode {stat.S_IMODE(st.st_mode):04o}, owner uid "
                f"{st.st_uid}); it must be owned by root or the daemon's user and not group/world-writable"
            )
        try:
            doc = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise AclError(f"ACL {path}: not valid TOML: {exc}") from exc
        try:
            return cls.parse(doc, str(path))
        except AclError as exc:
            raise AclError(f"ACL {path}: {exc}") from None

    @classmethod
    def parse(cls, doc: Mapping[str, Any], source: str = "<memory>") -> "Acl":
        _check_keys(doc, "", "top level")
        groups = _groups(doc.get("group", []))
        tokens = _tokens(doc.get("token", []))
        for name, (users, _) in groups.items():
            for user in users:
                if user.startswith("token:") and user[6:] not in tokens.values():
                    raise AclError(f"group {name!r} names undeclared token {user!r}")
        rights = _group_rights(doc.get("ace", []), groups)
        members = _effective_members(groups)
        principal_rights: dict[str, Right] = {}
        for group, right in rights.items():
            for principal in members[group]:
                principal_rights[principal] = max(principal_rights.get(principal, Right.NONE), right)
        policy = _table(doc.get("policy", {}), "policy", "[policy]")
        return cls(
            source,
            principal_rights,
            tokens,
            _right(policy.get("anonymous_local", "read"), "[policy] anonymous_local"),
            _right(policy.get("anonymous_remote", "none"), "[policy] anonymous_remote"),
        )

    def right_of(self, principals: Iterable[str], anonymous: bool) -> Right:
        """The highest right of any principal; at least the anonymous policy for anonymous callers."""
        right = max(self.anonymous_local, self.floor) if anonymous else self.floor
        for principal in principals:
            granted = self.principal_rights.get(principal)
            if granted is not None and granted > right:
                right = granted
        return right

    def token_name(self, token: str) -> str | None:
        """The declared name of a bearer token, or None when unknown."""
        return self.tokens.get(hashlib.sha256(token.encode()).hexdigest())

    def describe(self) -> str:
        return (
            f"{self.source}: {len(self.principal_rights)} principals, {len(self.tokens)} tokens, "
            f"anonymous_local={self.anonymous_local}" + (f", everyone at least {self.floor}" if self.floor else "")
        )


def _table(value: Any, kind: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise AclError(f"{where} must be a table")
    _check_keys(value, kind, where)
    return value


def _check_keys(table: Mapping[str, Any], kind: str, where: str) -> None:
    unknown = sorted(set(table) - _KEYS[kind])
    if unknown:
        raise AclError(f"unknown key {unknown[0]!r} in {where} (allowed: {', '.join(sorted(_KEYS[kind]))})")


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise AclError(f"{where} must be an array of tables")
    return value


def _strings(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AclError(f"{where} {key} must be an array of strings")
    return value


def _right(value: Any, where: str) -> Right:
    if not isinstance(value, str):
        raise AclError(f"{where}: must be a string (none, read, write or admin)")
    try:
        return Right.parse(value)
    except ValueError as exc:
        raise AclError(f"{where}: {exc}") from None


def _groups(entries: Any) -> dict[str, tuple[list[str], list[str]]]:
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for i, entry in enumerate(_list(entries, "[[group]]")):
        where = f"[[group]] #{i + 1}"
        entry = _table(entry, "group", where)
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise AclError(f"{where}: name must be 1-64 characters of letters, digits, '_', '.', '-'")
        where = f"group {name!r}"
        if name in groups:
            raise AclError(f"{where} declared twice")
        users = _strings(entry, "users", where)
        for user in users:
            if not _PRINCIPAL.match(user):
                raise AclError(
                    f"{where}: {user!r} is not a principal (64-hex ed25519 key, token:NAME, uid:N, user:NAME, "
                    "unixgroup:NAME)"
                )
        groups[name] = (users, _strings(entry, "member_groups", where))
    for name, (_, member_groups) in groups.items():
        for member in member_groups:
            if member not in groups:
                raise AclError(f"group {name!r}: member_groups names undefined group {member!r}")
    return groups


def _tokens(entries: Any) -> dict[str, str]:
    """sha256 hex -> token name."""
    tokens: dict[str, str] = {}
    for i, entry in enumerate(_list(entries, "[[token]]")):
        where = f"[[token]] #{i + 1}"
        entry = _table(entry, "token", where)
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not _NAME.match(name):
            raise AclError(f"{where}: name must be 1-64 characters of letters, digits, '_', '.', '-'")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise AclError(f"token {name!r}: sha256 must be 64 lowercase hex characters (sha256 of the token)")
        if name in tokens.values():
            raise AclError(f"token {name!r} declared twice")
        if digest in tokens:
            raise AclError(f"token {name!r} has the same sha256 as token {tokens[digest]!r}")
        tokens[digest] = name
    return tokens


def _group_rights(entries: Any, groups: Mapping[str, Any]) -> dict[str, Right]:
    rights: dict[str, Right] = {}
    for i, entry in enumerate(_list(entries, "[[ace]]")):
        where = f"[[ace]] #{i + 1}"
        entry = _table(entry, "ace", where)
        if "right" not in entry:
            raise AclError(f"{where}: right is required")
        right = _right(entry["right"], where)
        for group in _strings(entry, "groups", where):
            if group not in groups:
                raise AclError(f"{where}: undefined group {group!r}")
            rights[group] = max(rights.get(group, Right.NONE), right)
    return rights


def _effective_members(groups: Mapping[str, tuple[list[str], list[str]]]) -> dict[str, set[str]]:
    """Every group's principals, including those of its member_groups; raises AclError on a cycle."""
    members: dict[str, set[str]] = {}

    def visit(name: str, path: list[str]) -> set[str]:
        if name in path:
            cycle = " -> ".join(path[path.index(name):] + [name])
            raise AclError(f"cycle in member_groups: {cycle}")
        if name not in members:
            users, member_groups = groups[name]
            found = set(users)
            for member in member_groups:
                found |= visit(member, path + [name])
            members[name] = found
        return members[name]

    for name in groups:
        visit(name, [])
    return members
