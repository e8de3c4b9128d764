"""net.neighbors: the ARP (IPv4) and NDP (IPv6) neighbour tables."""

from __future__ import annotations

from typing import Any

from ....methods import net
from ..impl import Implementations, Service
from .kernel import Kernel

implements = Implementations()


class Neighbors(Service):
    namespace = "net"
    implementations = implements

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    @implements(net.NEIGHBORS)
    async def neighbors(self, interface: str | None = None, family: str | None = None) -> list[dict[str, Any]]:
        """Neighbour entries, of one interface and/or family if given: {family, address,
        lladdr (or None), dev, state (NUD states in lowercase, joined by ",")}. Read-only.

        Raises NotFound("interface", interface) for an unknown interface.
        """
        return await self.kernel.neighbors(interface, family)
