"""The kernel side of DHCPv4 leases: apply one to an interface, withdraw it, check it is there.

A lease becomes an IPv4 address whose kernel lifetime is the lease's remaining time (so the
kernel drops it when the lease runs out, even if the daemon is not running) and a default
route via the lease's router with protocol ``dhcp`` and metric 1000 + ifindex (dhcpcd's
convention: each interface's DHCP default route has its own metric, so replacing it never
touches a default route somebody else made, nor another interface's).

The rtnetlink socket is the one the net services share (kernel.py), which turns every
NetlinkError into KernelError(errno, op).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from ....errors import KernelError
from .dhcp4 import LeaseInfo
from .kernel import Kernel, errno_of

RTPROT_DHCP = 16
RT_TABLE_MAIN = 254
RTNH_F_ONLINK = 4
IFF_UP = 0x1
FOREVER = 0xFFFFFFFF
METRIC_BASE = 1000

GONE = (errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT)


def metric(index: int) -> int:
    """The metric of the DHCP default route osd keeps on interface ``index``."""
    return METRIC_BASE + index


def lifetime(lease: LeaseInfo) -> int:
    """The kernel lifetime for the lease's address: whole seconds left (at least 1), or forever."""
    remaining = lease.remaining_s()
    if remaining is None:
        return FOREVER
    return max(1, int(remaining))


class LeaseKernel:
    """Lease work on the shared rtnetlink socket (kernel.py); raises KernelError, NotFound."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    # ------------------------------------------------------------ links
    async def index(self, name: str) -> int:
        """The index of interface ``name``; raises NotFound, KernelError."""
        return int((await self.kernel.require_link(name))["index"])

    async def bring_up(self, index: int) -> bool:
        """Set the link up; True when it was down (so a caller can undo it). Raises KernelError."""
        link = await self.kernel.link_by_index(index)
        if link is None or link["flags"] & IFF_UP:
            return False
        await self.kernel.request("set link up", "link", "set", index=index, state="up")
        return True

    async def set_down(self, index: int) -> None:
        await self.kernel.request("set link down", "link", "set", index=index, state="down")

    # ------------------------------------------------------------ DHCPv4 leases
    async def present(self, index: int, lease: LeaseInfo) -> tuple[bool, bool]:
        """(the lease's address is on the interface, its default route is in place)."""
        has_addr = any(addr.get("IFA_LOCAL") == lease.address and addr["prefixlen"] == lease.prefixlen
                       for addr in await self.kernel.dump("dump addresses", "addr", index=index,
                                                          family=socket.AF_INET))
        if lease.router is None:
            return has_addr, True
        has_route = any(route["dst_len"] == 0 and route.get("RTA_GATEWAY") == lease.router
                        and route.get("RTA_OIF") == index and route.get("RTA_PRIORITY") == metric(index)
                        for route in await self.kernel.dump("dump routes", "route", family=socket.AF_INET,
                                                            table=RT_TABLE_MAIN))
        return has_addr, has_route

    async def apply(self, index: int, lease: LeaseInfo, previous: LeaseInfo | None) -> bool:
        """Put ``lease`` on the interface, then remove what ``previous`` had that it lacks.

        Returns whether the interface's address or default route changed (False when only
        lifetimes were refreshed). When the route cannot be set, an address that was not
        there before is removed again and KernelError is raised. Idempotent.
        """
        had_addr, had_route = await self.present(index, lease)
        network = ipaddress.ip_network(f"{lease.address}/{lease.prefixlen}", strict=False)
        extra = {"broadcast": str(network.broadcast_address)} if lease.prefixlen <= 30 else {}
        valid = lifetime(lease)
        await self.kernel.request(f"add address {lease.address}/{lease.prefixlen}", "addr", "replace",
                                  index=index, address=lease.address, prefixlen=lease.prefixlen,
                                  valid_lft=valid, preferred_lft=valid, **extra)
        if lease.router is not None:
            try:
                await self._set_route(index, lease.router, network)
            except KernelError:
                if not had_addr:
                    await self._del_addr(index, lease.address, lease.prefixlen)
                raise
        if previous is not None:
            if (previous.address, previous.prefixlen) != (lease.address, lease.prefixlen):
                await self._del_addr(index, previous.address, previous.prefixlen)
            if previous.router is not None and previous.router != lease.router:
                await self._del_route(index, previous.router)
        moved = previous is not None and previous.config() != lease.config()
        return moved or not had_addr or not had_route

    async def withdraw(self, index: int, lease: LeaseInfo) -> None:
        """Remove the lease's address and default route; what is already gone is fine."""
        if lease.router is not None:
            await self._del_route(index, lease.router)
        await self._del_addr(index, lease.address, lease.prefixlen)

    async def _set_route(self, index: int, router: str, network: ipaddress.IPv4Network | Any) -> None:
        # A router outside the leased subnet (a /32 lease, say) is reached on-link.
        onlink = {} if ipaddress.ip_address(router) in network else {"flags": RTNH_F_ONLINK}
        await self.kernel.request(f"add default route via {router}", "route", "replace", dst="0.0.0.0/0",
                                  gateway=router, oif=index, priority=metric(index), proto=RTPROT_DHCP,
                                  table=RT_TABLE_MAIN, **onlink)

    async def _del_route(self, index: int, router: str) -> None:
        try:
            await self.kernel.request(f"delete default route via {router}", "route", "del", dst="0.0.0.0/0",
                                      gateway=router, oif=index, priority=metric(index), table=RT_TABLE_MAIN)
        except KernelError as exc:
            if errno_of(exc) not in GONE:
                raise

    async def _del_addr(self, index: int, address: str, prefixlen: int) -> None:
        try:
            await self.kernel.request(f"delete address {address}/{prefixlen}", "addr", "del", index=index,
                                      address=address, prefixlen=prefixlen)
        except KernelError as exc:
            if errno_of(exc) not in GONE:
                raise
