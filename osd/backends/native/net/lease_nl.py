"""The kernel side of DHCPv4 leases: apply one to an interface, withdraw it, check it is there.

A lease becomes an IPv4 address whose kernel lifetime is the lease's remaining time (so the
kernel drops it when the lease runs out, even if the daemon is not running) and its routes
(the default route via the lease's router, or the routes of option 121 when the server
sends it) with protocol ``dhcp`` and metric 1000 + ifindex (dhcpcd's convention: each
interface's DHCP routes have their own metric, so replacing one never touches a route
somebody else made, nor another interface's).

The rtnetlink socket is the one the net services share (kernel.py), which turns every
NetlinkError into KernelError(errno, op).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from ....errors import KernelError
from .dhcp4 import LeaseInfo, Route
from .kernel import Kernel, errno_of

RTPROT_DHCP = 16
RT_TABLE_MAIN = 254
RTNH_F_ONLINK = 4
RT_SCOPE_LINK = 253
IFF_UP = 0x1
FOREVER = 0xFFFFFFFF
METRIC_BASE = 1000

log = logging.getLogger("osd.net.lease")

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
    async def present(self, index: int, lease: LeaseInfo) -> tuple[bool, list[Route]]:
        """(the lease's address is on the interface, the lease's routes that are in place)."""
        installed = await self._installed(index) if lease.routes else {}
        return await self._has_address(index, lease), [route for route in lease.routes
                                                       if installed.get(route[0], "") == route[1]]

    async def apply(self, index: int, lease: LeaseInfo, previous: LeaseInfo | None) -> bool:
        """Put ``lease`` on the interface, then remove what ``previous`` had that it lacks.

        Returns whether the interface's address or routes changed (False when only lifetimes
        were refreshed). When a route cannot be set (or the call is cancelled), what this
        call did is undone: routes it replaced are put back, routes and an address it added
        are removed; then the error is raised. Idempotent.
        """
        had_addr = await self._has_address(index, lease)
        before = await self._installed(index)
        network = ipaddress.ip_network(f"{lease.address}/{lease.prefixlen}", strict=False)
        extra = {"broadcast": str(network.broadcast_address)} if lease.prefixlen <= 30 else {}
        valid = lifetime(lease)
        touched: list[Route] = []
        try:
            await self.kernel.request(f"add address {lease.address}/{lease.prefixlen}", "addr", "replace",
                                      index=index, address=lease.address, prefixlen=lease.prefixlen,
                                      valid_lft=valid, preferred_lft=valid, **extra)
            # on-link routes first: a gateway may be reachable only through one of them
            for route in sorted(lease.routes, key=lambda route: route[1] is not None):
                touched.append(route)
                await self._set_route(index, route, network)
        except BaseException:
            undo = asyncio.ensure_future(self._undo(index, lease, touched, before, network, had_addr))
            await asyncio.shield(undo)  # cancelled or not, the undo runs to its end
            raise
        if previous is not None:
            if (previous.address, previous.prefixlen) != (lease.address, lease.prefixlen):
                await self._del_addr(index, previous.address, previous.prefixlen)
            kept = {destination for destination, _ in lease.routes}  # replaced in place already
            for route in previous.routes:
                if route[0] not in kept:
                    await self._del_route(index, route)
        missing = any(before.get(destination, "") != gateway for destination, gateway in lease.routes)
        moved = previous is not None and previous.config() != lease.config()
        return moved or missing or not had_addr

    async def withdraw(self, index: int, lease: LeaseInfo) -> None:
        """Remove the lease's routes and address; what is already gone is fine."""
        for route in sorted(lease.routes, key=lambda route: route[1] is None):  # gateways first
            await self._del_route(index, route)
        await self._del_addr(index, lease.address, lease.prefixlen)

    async def _has_address(self, index: int, lease: LeaseInfo) -> bool:
        return any(addr.get("IFA_LOCAL") == lease.address and addr["prefixlen"] == lease.prefixlen
                   for addr in await self.kernel.dump("dump addresses", "addr", index=index, family=socket.AF_INET))

    async def _installed(self, index: int) -> dict[str, str | None]:
        """destination -> gateway (None: on-link) of the routes with osd's DHCP metric on the
        interface, in the main table: the routes a lease of this interface can have put there."""
        return {f"{route.get('RTA_DST', '0.0.0.0')}/{route['dst_len']}": route.get("RTA_GATEWAY")
                for route in await self.kernel.dump("dump routes", "route", family=socket.AF_INET,
                                                    table=RT_TABLE_MAIN)
                if route.get("RTA_OIF") == index and route.get("RTA_PRIORITY") == metric(index)}

    async def _undo(self, index: int, lease: LeaseInfo, touched: list[Route], before: dict[str, str | None],
                    network: Any, had_addr: bool) -> None:
        """Best effort: each step that fails is logged, and the next one still runs."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        for route in reversed(touched):
            destination = route[0]
            if destination in before:
                old = (destination, before[destination])
                steps.append((f"put back route {destination}", lambda old=old: self._set_route(index, old, network)))
            else:
                steps.append((f"remove route {destination}", lambda route=route: self._del_route(index, route)))
        if not had_addr:
            steps.append((f"remove address {lease.address}",
                          lambda: self._del_addr(index, lease.address, lease.prefixlen)))
        for what, step in steps:
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - the first failure is the one reported
                log.error("dhcp4 %s: could not %s after a failed apply: %s", lease.interface, what, exc)

    async def _set_route(self, index: int, route: Route, network: ipaddress.IPv4Network | Any) -> None:
        destination, gateway = route
        if gateway is None:
            await self.kernel.request(f"add route {destination} on-link", "route", "replace", dst=destination,
                                      oif=index, scope=RT_SCOPE_LINK, priority=metric(index), proto=RTPROT_DHCP,
                                      table=RT_TABLE_MAIN)
            return
        # A router outside the leased subnet (a /32 lease, say) is reached on-link.
        onlink = {} if ipaddress.ip_address(gateway) in network else {"flags": RTNH_F_ONLINK}
        await self.kernel.request(f"add route {destination} via {gateway}", "route", "replace", dst=destination,
                                  gateway=gateway, oif=index, priority=metric(index), proto=RTPROT_DHCP,
                                  table=RT_TABLE_MAIN, **onlink)

    async def _del_route(self, index: int, route: Route) -> None:
        """Delete exactly this route: its gateway, or, on-link, its link scope (the kernel
        matches a delete without either against any route to the destination)."""
        destination, gateway = route
        match = {"gateway": gateway} if gateway is not None else {"scope": RT_SCOPE_LINK}
        try:
            await self.kernel.request(f"delete route {destination} via {gateway or 'on-link'}", "route", "del",
                                      dst=destination, oif=index, priority=metric(index), table=RT_TABLE_MAIN,
                                      **match)
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
