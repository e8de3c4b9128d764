"""The backend port: what serves net.* and vol.* behind the dispatcher.

Native (the kernel and system tools), proxy (upstream MOS daemons) and the tests' fake
all implement ``Backend``.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..registry import MethodSpec
from ..rpc import Caller


class Backend(Protocol):
    mode: str  # "native" or "proxy"

    async def start(self) -> None:
        """Open handles and reconcile recorded state; raises on a fatal start-up problem."""

    async def close(self) -> None:
        """Release every handle; idempotent."""

    async def call(self, spec: MethodSpec, params: dict[str, Any], caller: Caller) -> Any:
        """Carry out one validated, authorized call; raises OsdError."""

    async def health(self) -> dict[str, dict[str, Any]]:
        """Per namespace ("net", "vol"): {"ok": bool, "status": str, "backend": str, ...}."""
