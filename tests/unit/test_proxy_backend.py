"""ProxyBackend's table: every net.* and vol.* method forwarded under its upstream name, nothing else."""

from __future__ import annotations

import pytest

from osd import config, methods
from osd.backends.proxy import ProxyBackend
from osd.server import ServeError


def test_every_namespaced_method_has_its_upstream_name() -> None:
    backend = ProxyBackend(config.load(overrides={"proxy": {"upstream_net": "/run/n.sock", "upstream_vol": "/run/v.sock"}}))
    names = backend._names
    catalogue = [s.name for s in methods.registry() if s.namespace in ("net", "vol")]
    assert sorted(names) == sorted(catalogue)
    assert names["net.vm.create_tap"] == "mosnet.vm.create_tap" and names["vol.list_disks"] == "storage.list_disks"
    assert backend.upstreams["net"].socket == "/run/n.sock" and backend.upstreams["vol"].socket == "/run/v.sock"
    assert len(backend.upstreams["net"].expected) + len(backend.upstreams["vol"].expected) == len(catalogue)


def test_an_upstream_socket_that_is_our_own_is_refused(tmp_path) -> None:  # noqa: ANN001
    own = str(tmp_path / "osd.sock")
    with pytest.raises(ServeError, match="own socket"):
        ProxyBackend(config.load(overrides={"server": {"socket": own}, "proxy": {"upstream_vol": own}}))
