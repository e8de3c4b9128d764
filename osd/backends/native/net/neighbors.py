"""net.neighbors: the ARP (IPv4) and NDP (IPv6) neighbour tables."""

from __future__ import annotations

from typing import Any

from ....methods import net
from ..impl import Implementations
from .kernel import Kernel, Message
from .links import FAMILIES
from .routes import FAMILY_NUMBERS

implements = Implementations()

# linux/neighbour.h: NUD_* bits, in bit order
NUD_STATES = ("incomplete", "reachable", "stale", "delay", "probe", "failed", "noarp", "permanent")


def neighbor_entry(msg: Message, names: dict[int, str]) -> dict[str, Any]:
    """{family, address, lladdr, dev, state}; state names every NUD bit set, joined by ","."""
    state = msg["state"]
    return {
        "family": FAMILIES[msg["family"]],
        "address": msg.get("dst"),
        "lladdr": msg.get("lladdr"),
        "dev": names.get(msg["ifindex"], str(msg["ifindex"])),
        "state": ",".join(name for bit, name in enumerate(NUD_STATES) if state >> bit & 1) or "none",
    }


class Neighbors:
    namespace = "net"
    implementations = implements

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "status": "ok"}

    @implements(net.NEIGHBORS)
    async def neighbors(self, interface: str | None = None, family: str | None = None) -> list[dict[str, Any]]:
        """Neighbour entries, of one interface and/or family if given. Read-only.

        Raises NotFound("interface", interface) for an unknown interface.
        """
        index = (await self.kernel.require_link(interface))["index"] if interface is not None else None
        kwargs = {"family": FAMILY_NUMBERS[family]} if family else {}
        msgs = await self.kernel.dump("dump neighbours", "neigh", **kwargs)
        names = await self.kernel.names()
        return [neighbor_entry(msg, names) for msg in msgs
                if msg["family"] in FAMILIES and msg.get("dst") is not None
                and (index is None or msg["ifindex"] == index)]
