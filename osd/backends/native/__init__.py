"""The native backend: net.* and vol.* carried out on this host's kernel and tools."""

from __future__ import annotations

from typing import Any

from ...config import Config
from ...errors import NotSupported
from ...registry import MethodSpec, Tier
from ...rpc import Caller

MOS_ONLY = "Open vSwitch methods exist only on MOS nodes; this daemon runs the native backend"


class NativeBackend:
    """Dispatches each method to the service object that implements it."""

    mode = "native"

    def __init__(self, config: Config, services: list[Any] | None = None) -> None:
        self.config = config
        self.services: list[Any] = services if services is not None else []
        self._handlers: dict[str, Any] = {}
        for service in self.services:
            for name, fn in type(service).implementations.items():
                self._handlers[name] = fn.__get__(service)

    async def start(self) -> None:
        for service in self.services:
            await service.start()

    async def close(self) -> None:
        for service in reversed(self.services):
            await service.close()

    async def call(self, spec: MethodSpec, params: dict[str, Any], caller: Caller) -> Any:
        handler = self._handlers.get(spec.name)
        if handler is None:
            if spec.tier is Tier.MOS:
                raise NotSupported(MOS_ONLY)
            raise NotSupported(f"{spec.name} is not implemented yet")
        return await handler(**params)

    async def health(self) -> dict[str, dict[str, Any]]:
        report: dict[str, dict[str, Any]] = {
            ns: {"ok": True, "status": "ok", "backend": "native"} for ns in ("net", "vol")
        }
        for service in self.services:
            report[service.namespace] = {"backend": "native", **await service.health()}
        return report


def create(config: Config) -> NativeBackend:
    """The native backend with every service this host can run."""
    return NativeBackend(config, services=[])
