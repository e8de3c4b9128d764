"""FakeBackend: the backend port without a kernel, for unit and API tests of the daemon's own logic.

Every call is recorded and echoed back as {method, params, identity}, except these
behaviours, chosen by ``net.bridge.add``'s ``name`` so tests can provoke them:
``sleepN`` sleeps N milliseconds, ``boom`` raises an unexpected exception, ``nonjson``
returns an object JSON cannot encode, ``missing`` raises NotFound. ``net.status`` returns
the call log.
"""

from __future__ import annotations

import asyncio
from typing import Any

from osd.errors import NotFound
from osd.registry import MethodSpec
from osd.rpc import Caller

SECRET = "secret-internal-detail-7f3a"


class FakeBackend:
    mode = "native"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def call(self, spec: MethodSpec, params: dict[str, Any], caller: Caller) -> Any:
        self.calls.append({"method": spec.name, "params": params, "identity": caller.identity})
        if spec.name == "net.status":
            return {"calls": self.calls}
        name = params.get("name", "") if spec.name == "net.bridge.add" else ""
        if name.startswith("sleep"):
            await asyncio.sleep(int(name[5:]) / 1000)
        elif name == "boom":
            raise RuntimeError(SECRET)
        elif name == "nonjson":
            return {"value": object()}
        elif name == "missing":
            raise NotFound("bridge", name)
        return {"method": spec.name, "params": params, "identity": caller.identity}

    async def health(self) -> dict[str, dict[str, Any]]:
        return {ns: {"ok": True, "status": "ok", "backend": "fake"} for ns in ("net", "vol")}
