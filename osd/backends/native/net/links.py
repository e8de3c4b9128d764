"""net.interfaces and net.vlan: links and their addresses, VLAN links and bridge VLAN tables."""

from __future__ import annotations

from typing import Any

from ....methods import net
from ..impl import Implementations, Service
from .kernel import Kernel, Message

implements = Implementations()

VLAN_PROTOCOLS = {0x8100: "802.1Q", 0x88A8: "802.1ad"}
# linux/if_bridge.h: struct bridge_vlan_info flags
BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED = 0x2, 0x4


class Links(Service):
    """Read-only views of the kernel's links."""

    namespace = "net"
    implementations = implements

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    @implements(net.INTERFACES)
    async def interfaces(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every link (or the one named) with its addresses, in ifindex order: {name, index,
        kind, mac, mtu, state, carrier, addresses [{family, address, prefixlen}], master}.

        Raises NotFound("interface", name) for an unknown name, KernelError otherwise.
        """
        return await self.kernel.interfaces(name)

    @implements(net.VLAN)
    async def vlan(self) -> dict[str, Any]:
        """VLAN links ({name, parent, id, protocol}) and the VLAN tables of VLAN-filtering
        bridges ({bridge, ports: [{port, vlans: [{vid, pvid, untagged}]}]}, the bridge itself
        among its ports, as `bridge vlan show` lists it). A kernel without 802.1q or bridge
        VLAN filtering has neither, and answers empty lists. Read-only.
        """
        links = await self.kernel.interfaces()
        names = {link["index"]: link["name"] for link in links}
        vlan_links, filtering = [], {}
        for link in links:
            if link["kind"] not in ("vlan", "bridge"):
                continue
            msg = await self.kernel.link_by_index(link["index"])  # settings the fast reader skips
            if msg is None:
                continue  # gone meanwhile
            if link["kind"] == "vlan":
                vlan_links.append({"name": link["name"], "parent": names.get(msg.get("link"), str(msg.get("link"))),
                                   "id": msg.get(("linkinfo", "data", "vlan_id")),
                                   "protocol": _vlan_protocol(msg.get(("linkinfo", "data", "vlan_protocol")))})
            elif msg.get(("linkinfo", "data", "br_vlan_filtering")):
                filtering[link["index"]] = link["name"]
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
