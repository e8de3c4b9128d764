"""net.routes, net.routes.add and net.routes.delete: the kernel's routing tables."""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import socket
from typing import Any

from ....errors import Conflict, InvalidParams, KernelError
from ....methods import net
from ..impl import Implementations, Service
from .kernel import Kernel, errno_of

implements = Implementations()

TABLES = {"main": 254, "local": 255, "default": 253}
FAMILY_NUMBERS = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
# The kernel gives an IPv6 route metric 1024 when none is asked for, an IPv4 route 0.
DEFAULT_METRIC = {"inet": 0, "inet6": 1024}


def table_number(table: int | str | None) -> int:
    """A table param (number, or main/local/default) as a number; main when absent."""
    if table is None:
        return TABLES["main"]
    return TABLES[table] if isinstance(table, str) else table


@dataclasses.dataclass(frozen=True)
class RouteSpec:
    """A route named by a net.routes.add/delete request, checked beyond what the schema can.

    Raises InvalidParams when dst, gateway and family disagree on the address family, or
    dst has host bits set (198.51.100.7/24).
    """

    dst: str
    gateway: str | None = None
    metric: int | None = None
    table: int = TABLES["main"]
    family: str | None = None

    def __post_init__(self) -> None:
        families = {}
        if self.dst != "default":
            try:
                network = ipaddress.ip_network(self.dst, strict=True)
            except ValueError as exc:
                raise InvalidParams(f"{self.dst} is not a network: {exc}", "/dst") from None
            families["/dst"] = "inet" if network.version == 4 else "inet6"
        if self.gateway is not None:
            families["/gateway"] = "inet" if ipaddress.ip_address(self.gateway).version == 4 else "inet6"
        if self.family is not None:
            families["/family"] = self.family
        if len(set(families.values())) > 1:
            detail = ", ".join(f"{path[1:]} is {fam}" for path, fam in families.items())
            raise InvalidParams(f"address families disagree: {detail}", next(iter(families)))
        object.__setattr__(self, "family", next(iter(families.values()), "inet"))

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        if self.dst == "default":
            return ipaddress.ip_network("0.0.0.0/0" if self.family == "inet" else "::/0")
        return ipaddress.ip_network(self.dst)

    @property
    def effective_metric(self) -> int:
        return self.metric if self.metric else DEFAULT_METRIC[str(self.family)]

    def netlink(self, oif: int | None) -> dict[str, Any]:
        """pyroute2 route() keywords naming this route."""
        network = self.network
        kwargs: dict[str, Any] = {"family": FAMILY_NUMBERS[str(self.family)], "dst_len": network.prefixlen,
                                  "table": self.table}
        if network.prefixlen:
            kwargs["dst"] = str(network.network_address)
        if self.gateway is not None:
            kwargs["gateway"] = self.gateway
        if oif is not None:
            kwargs["oif"] = oif
        if self.metric is not None:
            kwargs["priority"] = self.metric
        return kwargs

    def describe(self) -> str:
        via = f" via {self.gateway}" if self.gateway else ""
        return f"{self.dst}{via} table {self.table}"


class Routes(Service):
    """Reads and changes routes; writes are idempotent."""

    namespace = "net"
    implementations = implements

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    @implements(net.ROUTES)
    async def routes(self, family: str | None = None, table: int | str | None = None) -> list[dict[str, Any]]:
        """Routes of one table (main when absent), IPv4 then IPv6, in kernel order: {family,
        dst ("default" or CIDR), gateway, dev, metric, protocol, scope, table (number), type},
        plus nexthops [{gateway, dev, weight}] for a multipath route. Read-only."""
        return await self._routes(family, table_number(table))

    async def _routes(self, family: str | None, table: int) -> list[dict[str, Any]]:
        return await self.kernel.routes(family, table)

    @implements(net.ROUTES_ADD)
    async def add(self, dst: str, gateway: str | None = None, dev: str | None = None, metric: int | None = None,
                  table: int | str | None = None, family: str | None = None) -> dict[str, Any]:
        """Add a unicast route (protocol static). Idempotent: the same route already there is
        changed false; another route with the same dst and metric in the table is Conflict.

        Raises InvalidParams (families disagree), NotFound (dev), Conflict, KernelError
        (e.g. ENETUNREACH for a gateway no route reaches).
        """
        spec = RouteSpec(dst, gateway, metric, table_number(table), family)
        oif = (await self.kernel.require_link(dev))["index"] if dev is not None else None
        if await self._existing(spec, dev):
            return {"changed": False}
        kwargs = spec.netlink(oif)
        kwargs.update(proto="static", type="unicast")
        if spec.family == "inet":
            # as `ip route add` does: a route with no gateway reaches its dst on the link
            kwargs["scope"] = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
        try:
            await self.kernel.request(f"add route {spec.describe()}", "route", "add", **kwargs)
        except KernelError as exc:
            if errno_of(exc) != errno.EEXIST:
                raise
            if await self._existing(spec, dev):  # added by someone else meanwhile
                return {"changed": False}
            raise Conflict("route", spec.describe(), "another route has this dst and metric") from exc
        return {"changed": True}

    async def _existing(self, spec: RouteSpec, dev: str | None) -> bool:
        """True when the requested route is already there; raises Conflict when another
        route holds its place (same dst and metric in that table)."""
        prefix = spec.network.with_prefixlen if spec.dst != "default" else "default"
        same_place = [route for route in await self._routes(spec.family, spec.table)
                      if route["dst"] == prefix and route["metric"] == spec.effective_metric]
        for route in same_place:
            if (route["type"] == "unicast" and "nexthops" not in route
                    and _same_address(route["gateway"], spec.gateway) and (dev is None or route["dev"] == dev)):
                return True
        if same_place:
            other = same_place[0]
            raise Conflict("route", spec.describe(),
                           f"table already has {other['type']} {other['dst']} metric {other['metric']}"
                           f" via {other['gateway'] or '-'} dev {other['dev'] or '-'}")
        return False

    @implements(net.ROUTES_DELETE)
    async def delete(self, dst: str, gateway: str | None = None, dev: str | None = None, metric: int | None = None,
                     table: int | str | None = None, family: str | None = None) -> dict[str, Any]:
        """Delete the first route matching dst and whatever else is given (kernel semantics).
        Idempotent: no such route is changed false.

        Raises InvalidParams (families disagree), NotFound (dev), KernelError.
        """
        spec = RouteSpec(dst, gateway, metric, table_number(table), family)
        oif = (await self.kernel.require_link(dev))["index"] if dev is not None else None
        # scope "nowhere" matches a route of any scope; 0 would match only global ones
        kwargs = {**spec.netlink(oif), "scope": RT_SCOPE_NOWHERE}
        try:
            await self.kernel.request(f"delete route {spec.describe()}", "route", "del", **kwargs)
        except KernelError as exc:
            if errno_of(exc) == errno.ESRCH:
                return {"changed": False}
            raise
        return {"changed": True}


def _same_address(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return ipaddress.ip_address(a) == ipaddress.ip_address(b)

