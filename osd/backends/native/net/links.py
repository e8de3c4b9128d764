"""net.interfaces and net.vlan: links and their addresses, VLAN links and bridge VLAN tables."""

from __future__ import annotations

import socket
from typing import Any

from ....methods import net
from ..impl import Implementations
from .kernel import Kernel, Message, kind_of

implements = Implementations()

FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}
IFF_LOWER_UP = 0x10000
# The hardware type of a link without IFLA_INFO_KIND, named as `ip` names its link_type.
ARPHRD = {1: "ether", 32: "infiniband", 512: "ppp", 768: "ipip", 772: "loopback", 776: "sit",
          778: "gre", 65534: "none"}  # fmt: skip
VLAN_PROTOCOLS = {0x8100: "802.1Q", 0x88A8: "802.1ad"}
# linux/if_bridge.h: struct bridge_vlan_info flags
BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED = 0x2, 0x4


def interface(msg: Message, names: dict[int, str], addresses: list[dict[str, Any]]) -> dict[str, Any]:
    """One net.interfaces entry from a link message; ``names`` resolves the master's index."""
    master = msg.get("master")
    return {
        "name": msg.get("ifname"),
        "index": msg["index"],
        "kind": kind_of(msg) or ARPHRD.get(msg["ifi_type"], f"[{msg['ifi_type']}]"),
        "mac": msg.get("address"),
        "mtu": msg.get("mtu"),
        "state": str(msg.get("operstate") or "unknown").lower(),
        "carrier": bool(msg["flags"] & IFF_LOWER_UP),
        "addresses": addresses,
        "master": names.get(master) if master else None,
    }


def address(msg: Message) -> tuple[int, dict[str, Any]] | None:
    """(ifindex, {family, address, prefixlen}) of an address message; None unless IPv4/IPv6.

    The address is IFA_LOCAL when present (it differs from IFA_ADDRESS only on a
    point-to-point link, where `ip` shows the local one too), else IFA_ADDRESS.
    """
    family = FAMILIES.get(msg["family"])
    if family is None:
        return None
    return msg["index"], {"family": family, "address": msg.get("local") or msg.get("address"),
                          "prefixlen": msg["prefixlen"]}


class Links:
    """Read-only views of the kernel's links."""

    namespace = "net"
    implementations = implements

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "status": "ok"}

    @implements(net.INTERFACES)
    async def interfaces(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every link (or the one named) with its addresses, in ifindex order.

        Raises NotFound("interface", name) for an unknown name, KernelError otherwise.
        """
        if name is None:
            links = await self.kernel.dump("dump links", "link")
            addrs = await self.kernel.dump("dump addresses", "addr")
            names = {msg["index"]: msg.get("ifname") for msg in links}
        else:
            link = await self.kernel.require_link(name)
            links = [link]
            addrs = await self.kernel.dump(f"dump addresses of {name}", "addr", index=link["index"])
            master = link.get("master")
            owner = await self.kernel.link_by_index(master) if master else None
            names = {master: owner.get("ifname")} if owner is not None else {}
        by_index: dict[int, list[dict[str, Any]]] = {}
        for msg in addrs:
            entry = address(msg)
            if entry is not None:
                by_index.setdefault(entry[0], []).append(entry[1])
        result = [interface(msg, names, by_index.get(msg["index"], [])) for msg in links]
        return sorted(result, key=lambda link: link["index"])

    @implements(net.VLAN)
    async def vlan(self) -> dict[str, Any]:
        """VLAN links ({name, parent, id, protocol}) and the VLAN tables of VLAN-filtering bridges.

        A kernel without 802.1q or bridge VLAN filtering has neither, and answers empty lists.
        """
        links = await self.kernel.dump("dump links", "link")
        names = {msg["index"]: msg.get("ifname") for msg in links}
        vlan_links = [
            {
                "name": msg.get("ifname"),
                "parent": names.get(msg.get("link"), str(msg.get("link"))),
                "id": msg.get(("linkinfo", "data", "vlan_id")),
                "protocol": _vlan_protocol(msg.get(("linkinfo", "data", "vlan_protocol"))),
            }
            for msg in links if kind_of(msg) == "vlan"
        ]
        filtering = {msg["index"]: msg.get("ifname") for msg in links
                     if kind_of(msg) == "bridge" and msg.get(("linkinfo", "data", "br_vlan_filtering"))}
        bridges: dict[int, list[dict[str, Any]]] = {index: [] for index in filtering}
        if filtering:
            for msg in await self.kernel.vlans("dump bridge VLAN tables"):
                bridge = msg["index"] if msg["index"] in filtering else msg.get("master")
                if bridge in bridges:
                    bridges[bridge].append({"port": msg.get("ifname"), "vlans": _vlan_table(msg)})
        return {"links": vlan_links,
                "bridges": [{"bridge": filtering[index], "ports": ports} for index, ports in bridges.items()]}


def _vlan_protocol(value: Any) -> str:
    if isinstance(value, int):
        return VLAN_PROTOCOLS.get(value, hex(value))
    return str(value) if value is not None else "802.1Q"


def _vlan_table(msg: Message) -> list[dict[str, Any]]:
    """[{vid, pvid, untagged}] from IFLA_AF_SPEC's IFLA_BRIDGE_VLAN_INFO attributes."""
    spec = msg.get("af_spec")
    if spec is None:
        return []
    table = []
    for info in spec.get_attrs("IFLA_BRIDGE_VLAN_INFO"):
        flags = info["flags"]
        table.append({"vid": info["vid"], "pvid": bool(flags & BRIDGE_VLAN_INFO_PVID),
                      "untagged": bool(flags & BRIDGE_VLAN_INFO_UNTAGGED)})
    return table

