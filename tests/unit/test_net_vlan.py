"""net.vlan's shaping of VLAN links and bridge VLAN tables, on messages pyroute2 encodes and decodes.

This host's kernel has neither 802.1q nor bridge VLAN filtering (the system test sees empty
lists; the VM lab checks a real VLAN link), so the attribute paths are checked here on
messages built the way the kernel sends them: RTM_NEWLINK with IFLA_LINKINFO/IFLA_INFO_DATA
for a VLAN link, and AF_BRIDGE messages with IFLA_AF_SPEC/IFLA_BRIDGE_VLAN_INFO.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from osd.backends.native.net.links import Links

AF_BRIDGE = 7


def message(index: int, attrs: list[Any], family: int = socket.AF_UNSPEC) -> ifinfmsg:
    """An ifinfmsg as it comes off the wire: encoded, then decoded from its bytes."""
    sent = ifinfmsg()
    sent["family"], sent["index"], sent["attrs"] = family, index, attrs
    sent.encode()
    received = ifinfmsg(sent.data)
    received.decode()
    return received


def linkinfo(kind: str, data: list[Any]) -> tuple[str, dict[str, Any]]:
    return ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind), ("IFLA_INFO_DATA", {"attrs": data})]})


class FakeKernel:
    def __init__(self) -> None:
        self.links = [
            {"name": "eth0", "index": 2, "kind": "ether", "master": None},
            {"name": "br0", "index": 3, "kind": "bridge", "master": None},
            {"name": "port1", "index": 4, "kind": "veth", "master": "br0"},
            {"name": "eth0.5", "index": 5, "kind": "vlan", "master": None},
            {"name": "eth0.6", "index": 6, "kind": "vlan", "master": None},
            {"name": "br1", "index": 7, "kind": "bridge", "master": None},
        ]
        self.details = {
            3: message(3, [("IFLA_IFNAME", "br0"), linkinfo("bridge", [("IFLA_BR_VLAN_FILTERING", 1)])]),
            5: message(5, [("IFLA_IFNAME", "eth0.5"), ("IFLA_LINK", 2), linkinfo("vlan", [("IFLA_VLAN_ID", 5)])]),
            6: message(6, [("IFLA_IFNAME", "eth0.6"), ("IFLA_LINK", 2),
                           linkinfo("vlan", [("IFLA_VLAN_ID", 6), ("IFLA_VLAN_PROTOCOL", 0x88A8)])]),
            7: message(7, [("IFLA_IFNAME", "br1"), linkinfo("bridge", [("IFLA_BR_VLAN_FILTERING", 0)])]),
        }

    async def interfaces(self, name: str | None = None) -> list[dict[str, Any]]:
        return self.links

    async def link_by_index(self, index: int) -> ifinfmsg | None:
        return self.details.get(index)

    async def vlans(self, op: str) -> list[ifinfmsg]:
        def vlan_info(*entries: tuple[int, int]) -> tuple[str, dict[str, Any]]:
            return ("IFLA_AF_SPEC", {"attrs": [("IFLA_BRIDGE_VLAN_INFO", {"flags": f, "vid": v}) for f, v in entries]})

        return [
            message(3, [("IFLA_IFNAME", "br0"), vlan_info((0x2 | 0x4, 1))], AF_BRIDGE),
            message(4, [("IFLA_IFNAME", "port1"), ("IFLA_MASTER", 3), vlan_info((0x2 | 0x4, 1), (0, 10))],
                    AF_BRIDGE),
        ]


def test_vlan_links_and_bridge_tables() -> None:
    result = asyncio.run(Links(FakeKernel()).vlan())  # type: ignore[arg-type]
    assert result["links"] == [
        {"name": "eth0.5", "parent": "eth0", "id": 5, "protocol": "802.1Q"},
        {"name": "eth0.6", "parent": "eth0", "id": 6, "protocol": "802.1ad"},
    ]
    assert result["bridges"] == [{"bridge": "br0", "ports": [
        {"port": "br0", "vlans": [{"vid": 1, "pvid": True, "untagged": True}]},
        {"port": "port1", "vlans": [{"vid": 1, "pvid": True, "untagged": True},
                                    {"vid": 10, "pvid": False, "untagged": False}]},
    ]}]  # fmt: skip
