"""The proxy backend (MOS nodes): net.* and vol.* forwarded to the upstream daemons.

``net.X`` goes to the networking daemon as ``mosnet.X`` and ``vol.X`` to the storage daemon
as ``storage.X`` (methods.toml ``[meta]``), each over its own Unix socket. There is no
per-method code: the catalogue names every method, and its namespace picks the upstream.
By the time a call gets here osd has already authorized the caller and validated the
params; the upstream sees the proxy as its caller (identities are not forwarded).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ... import methods
from ...config import Config
from ...registry import MethodSpec, Tier
from ...rpc import Caller
from ...server import ServeError
from .upstream import Upstream

# The upstream daemons' namespaces, as methods.toml [meta] upstream_net / upstream_vol name them.
UPSTREAM_NAMESPACES = {"net": "mosnet", "vol": "storage"}


class ProxyBackend:
    """Forwards each call to the upstream of its namespace; one namespace failing leaves the other alone."""

    mode = "proxy"

    def __init__(self, config: Config) -> None:
        """Raises ServeError when an upstream socket is the daemon's own (it would call itself)."""
        sockets = {"net": config.proxy.upstream_net, "vol": config.proxy.upstream_vol}
        own = os.path.realpath(config.server.socket)
        for namespace, path in sockets.items():
            if os.path.realpath(path) == own:
                raise ServeError(f"the {namespace}.* upstream socket {path} is this daemon's own socket")
        catalogue = methods.registry()
        # catalogue name -> upstream name, from the same registry that validates the params
        self._names = {spec.name: up.name
                       for spec, up in zip(catalogue, catalogue.renamed(UPSTREAM_NAMESPACES))
                       if spec.namespace in UPSTREAM_NAMESPACES}
        self.upstreams = {
            namespace: Upstream(namespace, prefix, sockets[namespace],
                                deadline_s=config.proxy.deadline_s,
                                connect_timeout_s=config.proxy.connect_timeout_s,
                                expected=[up for name, up in self._names.items() if name.startswith(namespace + ".")])
            for namespace, prefix in UPSTREAM_NAMESPACES.items()
        }

    async def start(self) -> None:
        """Probe both upstreams in the background; never waits for them (they may come later)."""
        for upstream in self.upstreams.values():
            upstream.start()

    async def close(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.close()

    async def call(self, spec: MethodSpec, params: dict[str, Any], caller: Caller) -> Any:
        """The upstream's answer, unchanged; raises UpstreamError, UpstreamUnavailable or Timeout.

        Only read-tier calls may be resent (once, when a pooled connection turns out closed).
        A result may come back as RawJSON (its text, never decoded and re-encoded).
        """
        upstream = self.upstreams[spec.namespace]
        return await upstream.call(self._names[spec.name], params, idempotent=spec.tier is Tier.READ, raw=True)

    async def health(self) -> dict[str, dict[str, Any]]:
        """Each upstream's state; waits at most connect_timeout_s (stale upstreams are probed concurrently)."""
        stale = [upstream for upstream in self.upstreams.values() if upstream.stale()]
        if stale:  # the common case, a recent exchange, creates no task at all
            await asyncio.gather(*(upstream.health() for upstream in stale))
        return {namespace: upstream.report() for namespace, upstream in self.upstreams.items()}
