"""The proxy backend (MOS nodes): forwards net.* and vol.* to upstream daemons."""

from __future__ import annotations

from typing import Any

from ...config import Config
from ...server import ServeError


class ProxyBackend:
    mode = "proxy"

    def __init__(self, config: Config) -> None:
        raise ServeError("the proxy backend is not implemented yet")

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, spec: Any, params: dict[str, Any], caller: Any) -> Any: ...

    async def health(self) -> dict[str, dict[str, Any]]:
        return {}
