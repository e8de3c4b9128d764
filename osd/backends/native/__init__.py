"""The native backend: net.* and vol.* carried out on this host's kernel and tools.

It is a set of services, each a class with an ``Implementations`` table (see impl.py)
and this shape::

    namespace: str                       # "net" or "vol"
    implementations: Implementations     # spec name -> method
    async def start(self) -> None        # load state, reconcile with the kernel
    async def close(self) -> None
    async def health(self) -> dict       # {"ok": bool, "status": str, ...}
    async def drift(self) -> list[dict]  # optional: managed objects that differ from the kernel
    async def checks(self) -> list[dict] # optional: [{name, ok, detail}] for net.health

Several services may share a namespace; no method may be implemented twice.
"""

from __future__ import annotations

from typing import Any

from ...config import Config
from ...errors import NotSupported
from ...methods import net as net_methods  # `net` is the subpackage of net services
from ...methods import vol as vol_methods
from ...registry import MethodSpec, Tier
from ...rpc import Caller
from .impl import Implementations, Service
from .net import services as net_services
from .net.conntrack import ConntrackService
from .net.firewall import NetfilterService
from .vol import services as vol_services

MOS_ONLY = "Open vSwitch methods exist only on MOS nodes; this daemon runs the native backend"


class NativeBackend:
    """Dispatches each method to the service object that implements it."""

    mode = "native"

    def __init__(self, config: Config, services: list[Any]) -> None:
        self.config = config
        self.services = [*services, Overview(services)]
        self._handlers: dict[str, Any] = {}
        for service in self.services:
            for name, fn in type(service).implementations.items():
                if name in self._handlers:
                    raise TypeError(f"{name} is implemented by two services")
                self._handlers[name] = fn.__get__(service)
        # Only services with a health() of their own can be unhealthy; rpc.health asks just them.
        self._reporting = [s for s in self.services if type(s).health is not Service.health]
        missing = [spec.name for spec in (*net_methods.ALL, *vol_methods.ALL)
                   if spec.tier is not Tier.MOS and spec.name not in self._handlers]
        if missing:
            raise TypeError(f"native backend lacks {', '.join(missing)}")

    async def start(self) -> None:
        started = []
        try:
            for service in self.services:
                await service.start()
                started.append(service)
        except BaseException:
            for service in reversed(started):
                await service.close()
            raise

    async def close(self) -> None:
        for service in reversed(self.services):
            await service.close()

    async def call(self, spec: MethodSpec, params: dict[str, Any], caller: Caller) -> Any:
        handler = self._handlers.get(spec.name)
        if handler is None:  # only the MOS tier: every other method is checked at construction
            raise NotSupported(MOS_ONLY)
        return await handler(**params)

    async def health(self) -> dict[str, dict[str, Any]]:
        report: dict[str, dict[str, Any]] = {ns: {"ok": True, "status": "ok", "backend": "native"}
                                             for ns in ("net", "vol")}
        for service in self._reporting:
            status = await service.health()
            entry = report[service.namespace]
            entry["ok"] = entry["ok"] and status.get("ok", False)
            if not status.get("ok", False):
                entry["status"] = status.get("status", "failed")
        return report


implements = Implementations()


class Overview(Service):
    """net.verify and net.health: gathered from every service that offers drift() or checks()."""

    namespace = "net"
    implementations = implements

    def __init__(self, services: list[Any]) -> None:
        self._services = services

    @implements(net_methods.VERIFY)
    async def verify(self) -> dict[str, Any]:
        """Every managed object compared with the kernel; read-only."""
        drift = [item for s in self._services if hasattr(s, "drift") for item in await s.drift()]
        return {"ok": not drift, "drift": drift}

    @implements(net_methods.HEALTH)
    async def net_health(self) -> dict[str, Any]:
        """Every service's checks; failed when a check fails, degraded when there is drift."""
        checks = [check for s in self._services if hasattr(s, "checks") for check in await s.checks()]
        drift = (await self.verify())["drift"]
        checks.append({"name": "managed objects match the kernel", "ok": not drift,
                       "detail": f"{len(drift)} drifted" if drift else "no drift"})
        failed = [c for c in checks[:-1] if not c["ok"]]
        status = "failed" if failed else "degraded" if drift else "ok"
        return {"status": status, "checks": checks}


def create(config: Config) -> NativeBackend:
    """The native backend with every service of this host."""
    return NativeBackend(config, services=[*net_services(config), NetfilterService(config), ConntrackService(),
                                           *vol_services(config)])
