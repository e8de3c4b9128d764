"""The registry is the catalogue: names, rights, tiers, params; rpc.discover is valid OpenRPC."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from osd import methods
from osd.errors import InvalidParams
from osd.registry import Registry

REPO = Path(__file__).resolve().parents[2]
VENDORED = Path(__file__).resolve().parent / "spec"
SHARED = Path(os.environ.get("OSD_SPEC_DIR", REPO.parent / "shared" / "spec"))
SPEC = SHARED if (SHARED / "methods.toml").exists() else VENDORED
CATALOGUE = tomllib.loads((SPEC / "methods.toml").read_text())
REGISTRY: Registry = methods.registry()


def _validator() -> Any:
    loader = importlib.util.spec_from_file_location("validate_openrpc", SPEC / "validate_openrpc.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (SHARED / "methods.toml").exists(), reason=f"no shared spec at {SHARED}")
def test_vendored_spec_matches_shared() -> None:
    for name in ("methods.toml", "validate_openrpc.py", "openrpc-meta-schema.json"):
        assert filecmp.cmp(SHARED / name, VENDORED / name, shallow=False), f"tests/contract/spec/{name} is stale"


def test_same_method_names() -> None:
    assert sorted(m["name"] for m in CATALOGUE["method"]) == sorted(s.name for s in REGISTRY)
    assert len(REGISTRY) == 74


@pytest.mark.parametrize("entry", CATALOGUE["method"], ids=lambda m: m["name"])
def test_method_matches_catalogue(entry: dict[str, Any]) -> None:
    spec = REGISTRY.get(entry["name"])
    assert str(spec.right) == entry["right"]
    assert spec.tier.value == entry["tier"]
    assert spec.summary == entry["summary"]
    assert sorted(spec.required) == sorted(entry.get("required", []))
    assert sorted(spec.optional) == sorted(entry.get("optional", []))


@pytest.mark.parametrize("spec", list(REGISTRY), ids=lambda s: s.name)
def test_params_have_real_types_and_are_enforced(spec) -> None:  # noqa: ANN001
    for name, schema in spec.properties.items():
        assert {"type", "anyOf", "enum"} & set(schema), f"{spec.name}.{name} has no type"
    if spec.required:
        with pytest.raises(InvalidParams) as err:
            REGISTRY.validate(spec, {})
        assert err.value.data["path"] == f"/{spec.required[0]}"
    with pytest.raises(InvalidParams) as err:
        REGISTRY.validate(spec, {"not_a_param": 1})
    assert err.value.data["path"] in ("/not_a_param", f"/{spec.required[0]}" if spec.required else "")


@pytest.mark.parametrize("method, params, path", [
    ("net.bridge.add", {"name": "br0\n"}, "/name"),  # Python's $ also matches before a final newline
    ("net.firewall.add_rule", {"port": "80-81\n", "proto": "tcp"}, "/port"),
    ("net.vm.create_tap", {"name": "tap0", "bridge": "br0", "mac": "02:00:00:00:00:01\n"}, "/mac"),
    ("vol.md_detail", {"device": "/dev/md0\n"}, "/device"),
    ("net.firewall.add_rule", {"port": 80.0, "proto": "tcp"}, "/port"),  # a backend would get a float
    ("net.routes.add", {"dst": "10.0.0.0/8", "dev": "eth0", "metric": 100.0}, "/metric"),
])
def test_anchors_and_integers_are_strict(method: str, params: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidParams) as err:
        REGISTRY.validate(REGISTRY.get(method), params)
    assert err.value.data["path"] == path
    fixed = {k: (v.rstrip("\n") if isinstance(v, str) else int(v) if isinstance(v, float) else v)
             for k, v in params.items()}
    assert REGISTRY.validate(REGISTRY.get(method), fixed) == fixed


def test_rpc_discover_is_valid_openrpc_with_rights_and_tiers() -> None:
    doc = json.loads(json.dumps(REGISTRY.openrpc()))
    assert _validator().errors(doc) == []
    assert doc["openrpc"] == "1.3.2"
    by_name = {m["name"]: m for m in doc["methods"]}
    for entry in CATALOGUE["method"]:
        method = by_name[entry["name"]]
        assert method["x-right"] == entry["right"] and method["x-tier"] == entry["tier"]
        assert {p["name"] for p in method["params"] if p["required"]} == set(entry.get("required", []))


def test_renamed_registry_serves_upstream_names() -> None:
    renamed = REGISTRY.renamed({"net": "mosnet", "vol": "storage"})
    names = {s.name for s in renamed}
    assert "mosnet.interfaces" in names and "storage.list_disks" in names and "rpc.discover" in names
    assert not any(n.startswith(("net.", "vol.")) for n in names)
    assert _validator().errors(json.loads(json.dumps(renamed.openrpc()))) == []


def test_proxy_upstreams_match_the_catalogue_meta() -> None:
    from osd import config
    from osd.backends.proxy import UPSTREAM_NAMESPACES

    meta = CATALOGUE["meta"]
    assert UPSTREAM_NAMESPACES == {"net": meta["upstream_net"]["namespace"], "vol": meta["upstream_vol"]["namespace"]}
    assert config.DEFAULT_UPSTREAM_NET == meta["upstream_net"]["socket"]
    assert config.DEFAULT_UPSTREAM_VOL == meta["upstream_vol"]["socket"]


def test_native_backend_implements_every_method_but_the_mos_tier() -> None:
    from osd import config
    from osd.backends.native import create

    handlers = set(create(config.load())._handlers)
    expected = {s.name for s in REGISTRY if s.namespace in ("net", "vol") and s.tier.value != "mos"}
    assert handlers == expected
