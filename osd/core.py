"""The daemon's own methods (rpc.*) and the routing of every other call to the backend.

With ``--rename net=mosnet`` the daemon serves ``mosnet.*`` names for its native ``net.*``
methods (so a native osd can stand in for an upstream daemon); the backend always sees the
catalogue's own names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import methods
from .backends import Backend
from .registry import MethodSpec, Registry
from .rpc import Caller, Dispatcher


class Core:
    def __init__(self, backend: Backend, *, renames: Mapping[str, str] | None = None, max_batch: int = 100) -> None:
        self.backend = backend
        catalogue = methods.registry()
        self.registry: Registry = catalogue.renamed(renames or {})
        # served name -> the catalogue's spec (identical objects when nothing is renamed)
        self._original = {served.name: spec for served, spec in zip(self.registry, catalogue)}
        self._discover = self.registry.openrpc()
        self.dispatcher = Dispatcher(self.registry, self.invoke, max_batch=max_batch)

    async def invoke(self, spec: MethodSpec, params: dict[str, Any], caller: Caller) -> Any:
        if spec.name == "rpc.discover":
            return self._discover
        if spec.name == "rpc.health":
            return await self.health()
        return await self.backend.call(self._original[spec.name], params, caller)

    async def health(self) -> dict[str, Any]:
        namespaces = await self.backend.health()
        ok = all(ns.get("ok", False) for ns in namespaces.values())
        return {"status": "ok" if ok else "degraded", "mode": self.backend.mode, "namespaces": namespaces}
