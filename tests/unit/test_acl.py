"""ACL file: format, validation with named errors, rights through nested groups."""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path

import pytest

from osd.acl import Acl, AclError
from osd.registry import Right

EXAMPLE = Path(__file__).resolve().parents[2] / "acl.example.toml"
KEY = "ab" * 32


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "acl.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_example_file_loads_and_grants_through_member_groups(tmp_path: Path) -> None:
    acl = Acl.load(write(tmp_path, EXAMPLE.read_text(), 0o644))
    example = tomllib.loads(EXAMPLE.read_text())
    admin_key = example["group"][0]["users"][1]
    assert acl.right_of({admin_key}, anonymous=False) is Right.ADMIN
    assert acl.right_of({"uid:0"}, anonymous=True) is Right.ADMIN
    assert acl.right_of({"token:ci"}, anonymous=False) is Right.WRITE
    # admins are members of operators, operators of monitoring: the highest right wins
    assert acl.right_of({"unixgroup:netops", "user:prometheus"}, anonymous=True) is Right.WRITE
    assert acl.right_of({"user:prometheus"}, anonymous=False) is Right.READ
    assert acl.right_of({"uid:1000"}, anonymous=True) is Right.READ
    assert acl.right_of({"uid:1000"}, anonymous=False) is Right.NONE
    assert acl.anonymous_remote is Right.NONE


def test_every_key_of_the_format_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    from osd.acl import _KEYS

    for table, keys in _KEYS.items():
        for key in keys:
            assert f"#   {key}" in text or f"# [[{key}]]" in text or f"# [{key}]" in text, (table, key)


def test_builtin_policy() -> None:
    acl = Acl.builtin()
    assert acl.right_of({"uid:0", "user:root"}, anonymous=True) is Right.ADMIN
    assert acl.right_of({"uid:65534"}, anonymous=True) is Right.READ
    assert acl.right_of({KEY, "uid:1000"}, anonymous=False) is Right.READ


def test_tokens_are_matched_by_sha256() -> None:
    digest = hashlib.sha256(b"s3cret").hexdigest()
    acl = Acl.parse({"token": [{"name": "ci", "sha256": digest}]})
    assert acl.token_name("s3cret") == "ci"
    assert acl.token_name("s3cre") is None
    assert acl.token_name(digest) is None


@pytest.mark.parametrize("text, problem", [
    ("colour = 1", "unknown key 'colour' in top level"),
    ("[[group]]\nname = 'a'\nmembers = []", "unknown key 'members' in [[group]] #1"),
    ("[policy]\nanonymous = 'read'", "unknown key 'anonymous' in [policy]"),
    ("[[ace]]\nright = 'read'\ngroups = ['ghosts']", "undefined group 'ghosts'"),
    ("[[group]]\nname = 'a'\nmember_groups = ['b']", "member_groups names undefined group 'b'"),
    ("[[group]]\nname='a'\nmember_groups=['b']\n[[group]]\nname='b'\nmember_groups=['a']",
     "cycle in member_groups: a -> b -> a"),
    ("[[group]]\nname='a'\nmember_groups=['a']", "cycle in member_groups: a -> a"),
    ("[[group]]\nname='a'\n[[group]]\nname='a'", "group 'a' declared twice"),
    ("[[group]]\nname='a'\nusers=['root']", "'root' is not a principal"),
    ("[[group]]\nname='a'\nusers=['token:nope']", "names undeclared token 'token:nope'"),
    ("[[ace]]\nright = 'superuser'\ngroups = []", "unknown right 'superuser'"),
    ("[[ace]]\ngroups = []", "right is required"),
    ("[[token]]\nname = 'ci'\nsha256 = 'xyz'", "sha256 must be 64 lowercase hex"),
    ("[policy]\nanonymous_local = 3", "anonymous_local: must be a string"),
    ("group = 'x'", "[[group]] must be an array of tables"),
    ("[[group]]\nname = 'a'\nusers = 'uid:0'", "users must be an array of strings"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_files_are_refused_with_the_problem_named(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(AclError) as err:
        Acl.load(path)
    assert str(path) in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_file_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, "", mode)
    with pytest.raises(AclError, match="writable by other users"):
        Acl.load(path)


@pytest.mark.root
def test_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "", 0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(AclError, match="owner uid 65534"):
        Acl.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AclError, match="cannot read"):
        Acl.load(tmp_path / "nope.toml")
