"""xtest profiles: the shipped ones load and classify the catalogue; every kind of bad profile is refused."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from osd.xtest import profile as profiles
from osd.xtest.profile import ProfileError, ProfileNotFound, load
from osd.xtest.scenarios import CASES, SCENARIOS
from support.profiles import ALL_TIERS, CATALOGUE, MOS, base, write

@pytest.mark.parametrize("name", ["host", "stock-distro-vm"])
def test_shipped_profiles_load_and_classify_every_method(name: str) -> None:
    assert name in profiles.shipped()
    profile = load(name, cases=CASES)
    assert set(profile.classification) == set(CATALOGUE)
    assert profile.allow_tiers == set(ALL_TIERS)  # every tier but mos
    assert all(profile.classification[m] == "expect_unsupported" for m in MOS)
    tomllib.loads(Path(profile.path).read_text())  # plain TOML 1.0


def test_host_profile_expects_md_vlan_and_vfat_mounts_unsupported() -> None:
    host = load("host", cases=CASES)
    assert {"vol.create_md_array", "vol.md_detail", "vol.stop_md_array", "vol.list_md_arrays",
            "vol.mount:vfat", "net.bridge.add:vlan_filtering"} <= set(host.expect_unsupported)
    assert host.scratch.loop_disks >= 3 and not host.scratch.disks


def test_vm_profile_expects_everything_but_mos_to_work() -> None:
    vm = load("stock-distro-vm", cases=CASES)
    assert set(vm.must_succeed) == set(CATALOGUE) - set(MOS)
    assert vm.scratch.disks == ("/dev/vdb", "/dev/vdc", "/dev/vdd")


def test_every_catalogue_method_has_a_scenario() -> None:
    covered = {m for s in SCENARIOS for m in s.methods}
    assert set(CATALOGUE) <= covered
    assert all(case.partition(":")[0] in CATALOGUE for case in CASES)


def test_a_valid_profile_and_its_variants(tmp_path: Path) -> None:
    assert load(write(tmp_path, base()), cases=CASES).scratch.loop_disks == 2
    skipped_as_array = base(must_succeed=[m for m in CATALOGUE if m not in MOS], expect_unsupported={},
                            skipped_methods=MOS)
    assert load(write(tmp_path, skipped_as_array), cases=CASES).skipped["net.ovs"] == "skipped by the profile"


def test_a_path_or_a_name(tmp_path: Path) -> None:
    with pytest.raises(ProfileNotFound, match="no shipped profile 'nope'"):
        load("nope")
    with pytest.raises(ProfileNotFound, match="no such file"):
        load(str(tmp_path / "absent.toml"))


def without(name: str) -> list[str]:
    return [m for m in CATALOGUE if m not in MOS and m != name]


@pytest.mark.parametrize("changes, message", [
    ({"must_succeed": without("vol.mount")}, r"1 catalogue methods are not classified .*vol\.mount"),
    ({"must_succeed": [m for m in CATALOGUE if m not in MOS] + ["net.status"]}, "lists 'net.status' twice"),
    ({"skipped_methods": {"net.status": "x"}}, "net.status is classified twice: in must_succeed and skipped_methods"),
    ({"must_succeed": without("net.vlan") + ["net.vlans"]}, "unknown method 'net.vlans'"),
    ({"allow_tiers": ["read", "scratch", "shared", "disruptive", "destructive"]},
     "vol.create_md_array is in must_succeed but its tier 'raid' is not in allow_tiers"),
    ({"allow_tiers": ["read", "everything"]}, "unknown tier 'everything'"),
    ({"must_succed": []}, "unknown key 'must_succed'"),
    ({"scratch": {"name_prefix": "xt", "disk": ["/dev/vdb"]}}, r"\[scratch\]: unknown key 'disk'"),
    ({"scratch": {"name_prefix": "toolong"}}, "name_prefix must be 1-5 characters"),
    ({"scratch": {"name_prefix": "xt", "disks": ["vdb"]}}, "'vdb' is not a block device path"),
    ({"scratch": {"name_prefix": "xt", "mount_point": "mnt"}}, "mount_point must be an absolute path"),
    ({"scratch": {"name_prefix": "xt", "loop_disks": 9}}, "loop_disks must be an integer from 0 to 8"),
    ({"expect_unsupported": {**{m: "MOS" for m in MOS}, "vol.mount:nfs": "nfs"}}, "unknown case 'vol.mount:nfs'"),
    ({"expect_unsupported": {**{m: "MOS" for m in MOS}, "vol.mount:vfat": "vfat"},
      "skipped_methods": {"vol.mount:vfat": "no"}}, "vol.mount:vfat is in both expect_unsupported and skipped"),
    ({"must_succeed": without("vol.mount"), "expect_unsupported": {**{m: "MOS" for m in MOS}, "vol.mount": "x",
                                                                  "vol.mount:vfat": "vfat"}},
     "case 'vol.mount:vfat' refines vol.mount, which is not in must_succeed"),
    ({"must_succeed": [*without("vol.mount"), "vol.mount:vfat"]}, "cases go in expect_unsupported"),
    ({"expect_unsupported": {**{m: "MOS" for m in MOS}, "net.datapath": "datapath"}},
     "is part of the method's name"),
    ({"expect_unsupported": {**{m: "MOS" for m in MOS}, "net.flows": " "}}, "non-empty text"),
    ({"must_be_registered": ["net.nothing*"]}, "'net.nothing\\*' matches no method"),
    ({"must_be_unregistered": ["net.ovs*"]}, "in both must_be_registered and must_be_unregistered"),
    ({"must_be_registered": ["rpc.*", "vol.*"], "must_be_unregistered": ["net.ovs"]},
     "net.ovs must be unregistered, so it can only be in skipped_methods"),
    ({"scratch": None}, r"\[scratch\] is required"),
])
def test_invalid_profiles_name_the_problem(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    doc = {k: v for k, v in base(**changes).items() if v is not None}
    with pytest.raises(ProfileError, match=message):
        load(write(tmp_path, doc), cases=CASES)


def test_bad_toml_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("must_succeed = [\n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load(str(path))
