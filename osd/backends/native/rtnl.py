"""The kernel's links, addresses, routes and neighbours over rtnetlink, shaped for net.*.

Every query reads the kernel afresh through a NetlinkSocket, so it sees the network
namespace that socket was created in; linkwatch.InterfaceWatch answers interfaces from
notifications instead. Constants are from the kernel's uapi headers (linux/rtnetlink.h,
if_link.h, if_addr.h, neighbour.h, if_arp.h).
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable
from operator import itemgetter
from types import TracebackType
from typing import Any, Self, TypeVar

from osd.backends.native.netlink import Buffer, Decoder, NetlinkError, NetlinkSocket, attr, attr_u32, walk

__all__ = [
    "LinkNotFound",
    "NetlinkError",
    "Rtnl",
    "address_decoder",
    "address_entry",
    "interfaces",
    "link_decoder",
    "link_entry",
]

RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETNEIGH = 18, 22, 26, 30
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_OPERSTATE, IFLA_LINKINFO = 1, 3, 4, 10, 16, 18
IFLA_INFO_KIND = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
NDA_DST, NDA_LLADDR, NDA_IFINDEX = 1, 2, 8
IFF_LOWER_UP = 0x10000
RT_TABLE_MAIN = 254
IFNAMSIZ = 16
T = TypeVar("T")
_LOOKUPS_BEFORE_DUMP = 32

# Family headers: ifinfomsg, ifaddrmsg, rtmsg, ndmsg; attributes follow at 16 + their size.
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
_RTNEXTHOP = struct.Struct("=HBBi")  # len, flags, hops (weight - 1), ifindex

FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}
_FAMILY_NUMBERS = {name: number for number, name in FAMILIES.items()}
OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")
# Hardware types named as `ip` names them in "link_type"; the kind of a link that has no
# IFLA_INFO_KIND (physical NICs, lo): "ether", "loopback", ...; others "[number]" like ip.
ARPHRD = {1: "ether", 32: "infiniband", 512: "ppp", 768: "ipip", 772: "loopback", 776: "sit",
          778: "gre", 65534: "none"}  # fmt: skip
PROTOCOLS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated",
             9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 16: "dhcp", 42: "babel",
             186: "bgp", 187: "isis", 188: "ospf", 189: "rip"}  # fmt: skip
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
ROUTE_TYPES = ("unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole",
               "unreachable", "prohibit", "throw", "nat", "xresolve")  # fmt: skip
NUD_STATES = ("incomplete", "reachable", "stale", "delay", "probe", "failed", "noarp", "permanent")


class LinkNotFound(NetlinkError):
    """No link has this name (ENODEV); `name` is the name asked for."""

    def __init__(self, name: str, op: str) -> None:
        super().__init__(errno.ENODEV, op, f"no link named {name!r}")
        self.name = name


def _text(raw: bytes) -> str:
    """A kernel string (link names are bytes); undecodable bytes survive as surrogate escapes."""
    return raw.decode(errors="surrogateescape")


def _ifname(name: str, op: str) -> bytes:
    raw = name.encode(errors="surrogateescape")
    if not raw or len(raw) >= IFNAMSIZ or b"\0" in raw:
        raise LinkNotFound(name, op)  # no link can have it; the kernel would say EINVAL
    return raw + b"\0"


def _family(family: str | None) -> int:
    if family is None:
        return socket.AF_UNSPEC
    if family not in _FAMILY_NUMBERS:
        raise ValueError(f"family must be 'inet' or 'inet6', not {family!r}")
    return _FAMILY_NUMBERS[family]


def link_decoder() -> Decoder:
    """A Decoder of RTM_NEWLINK/RTM_DELLINK messages into the rows link_entry reads."""
    return Decoder(32, [(18, "H"), (20, "i"), (24, "I")], [
        ((IFLA_IFNAME,), "z"), ((IFLA_MTU,), "I"), ((IFLA_OPERSTATE,), "B"),
        ((IFLA_MASTER,), "I"), ((IFLA_ADDRESS,), "s"), ((IFLA_LINKINFO, IFLA_INFO_KIND), "z"),
    ])  # fmt: skip


def link_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    """One interface of Rtnl.interfaces from a link_decoder row, with no addresses yet and
    its master as an ifindex (or None)."""
    arphrd, index, flags, name, mtu, oper, master, mac, kind = row
    return {
        "name": _text(name),
        "index": index,
        "kind": _text(kind) if kind else ARPHRD.get(arphrd) or f"[{arphrd}]",
        "mac": mac.hex(":") if mac else None,
        "mtu": mtu,
        "state": OPERSTATES[oper] if oper is not None and oper < len(OPERSTATES) else "unknown",
        "carrier": bool(flags & IFF_LOWER_UP),
        "addresses": [],
        "master": master or None,
    }


def address_decoder() -> Decoder:
    """A Decoder of RTM_NEWADDR/RTM_DELADDR messages into the rows address_entry reads."""
    return Decoder(24, [(16, "B"), (17, "B"), (20, "I")], [((IFA_ADDRESS,), "s"), ((IFA_LOCAL,), "s")])


def address_entry(row: tuple[Any, ...]) -> tuple[int, dict[str, Any]] | None:
    """(ifindex, {family, address, prefixlen}) from an address_decoder row; None unless
    IPv4 or IPv6. The address is IFA_LOCAL when present, else IFA_ADDRESS: they differ
    only for a point-to-point peer, and `ip` shows the local one too."""
    family, prefixlen, index, address, local = row
    if family not in FAMILIES:
        return None
    return index, {
        "family": FAMILIES[family],
        "address": socket.inet_ntop(family, local or address),
        "prefixlen": prefixlen,
    }


class Rtnl:
    """rtnetlink queries over one socket, created in the calling thread's namespace.

    Use as `async with Rtnl() as nl:`. Queries take turns on the socket. All methods only
    read and are idempotent. Kernel refusals raise NetlinkError (errno, op, detail).
    """

    def __init__(self) -> None:
        self._nl = NetlinkSocket()
        # Decoders hold the message layouts they have learned, so they live as long as the
        # socket: a daemon that keeps one Rtnl decodes every dump after the first quickly.
        links, addrs = link_decoder(), address_decoder()
        self._links = lambda buf, off, length: link_entry(links(buf, off, length))
        self._addrs = lambda buf, off, length: address_entry(addrs(buf, off, length))
        self._names = Decoder(32, [(20, "i")], [((IFLA_IFNAME,), "z")])
        self._routes = Decoder(28, [(16, "B"), (17, "B"), (20, "B"), (21, "B"), (22, "B"), (23, "B")], [
            ((RTA_TABLE,), "I"), ((RTA_DST,), "s"), ((RTA_GATEWAY,), "s"), ((RTA_OIF,), "I"),
            ((RTA_PRIORITY,), "I"), ((RTA_MULTIPATH,), "s"),
        ])  # fmt: skip
        self._neighbors = Decoder(28, [(16, "B"), (20, "i"), (24, "H")], [((NDA_DST,), "s"), ((NDA_LLADDR,), "s")])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket. Idempotent."""
        self._nl.close()

    async def interfaces(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every link (or the one named) with its addresses, in ifindex order.

        Each: {name, index, kind, mac, mtu, state, carrier, addresses, master}; kind is the
        link's IFLA_INFO_KIND ("veth", "bridge", "tun", ...) or, without one, its hardware
        type as `ip` names it ("ether", "loopback"); mac is lowercase colon hex or None;
        state is the operstate in lowercase ("up", "down", "unknown", "lowerlayerdown", ...);
        carrier is IFF_LOWER_UP (running with carrier, `ip`'s LOWER_UP); addresses are
        [{family: "inet"|"inet6", address, prefixlen}] in kernel order, each the local
        address (see address_entry); master is the master link's name (the bridge of a
        port) or None.
        A name is looked up by the kernel, not by a dump. Raises LinkNotFound if no link
        has that name.
        """
        links = await self.link_entries(name)
        index = links[0]["index"] if name is not None else 0
        by_index: dict[int, list[dict[str, Any]]] = {}
        for ifindex, entry in await self.address_entries(index):
            by_index.setdefault(ifindex, []).append(entry)
        for link in links:
            link["addresses"] = by_index.get(link["index"], [])
        await self._name_links(links, "master", {link["index"]: link["name"] for link in links})
        links.sort(key=itemgetter("index"))  # already so on kernels that keep links in an xarray
        return links

    async def link_entries(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every link, or the one named, as link_entry makes them. Raises LinkNotFound."""
        if name is None:
            return await self._nl.request("dump links", RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0), self._links)
        return [await self._link_by_name(name, self._links)]

    async def address_entries(self, index: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """(ifindex, address) pairs as address_entry makes them, of one link if index is set."""
        # With strict checking the kernel dumps only this index's addresses; without it,
        # every address comes and the filter drops the others.
        rows = await self._nl.request("dump addresses", RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, index), self._addrs)
        return [row for row in rows if not index or row[0] == index]

    async def _link_by_name(self, name: str, decoder: Callable[[Buffer, int, int], T]) -> T:
        """One link looked up by the kernel by name. Raises LinkNotFound."""
        op = f"get link {name}"
        request = _IFINFOMSG.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, _ifname(name, op))
        try:
            rows = await self._nl.request(op, RTM_GETLINK, request, decoder, dump=False)
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                raise LinkNotFound(name, op) from exc
            raise
        return rows[0]

    async def _name_links(self, entries: list[dict[str, Any]], key: str, known: dict[int, str]) -> None:
        """Replace the link index in entry[key] by the link's name (None when it is gone).

        Indexes not in `known` are looked up one request each when they are few (a lookup
        is a round trip of some tens of microseconds), otherwise by one dump of all links.
        """
        wanted = {entry[key] for entry in entries if entry[key]} - known.keys()
        names = dict(known)
        if len(wanted) > _LOOKUPS_BEFORE_DUMP:
            rows = await self._nl.request("dump links", RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0), self._names)
            names.update((index, _text(name)) for index, name in rows)
        else:
            for index in sorted(wanted):
                op = f"get link {index}"
                try:
                    rows = await self._nl.request(
                        op, RTM_GETLINK, _IFINFOMSG.pack(0, 0, index, 0, 0), self._names, dump=False
                    )
                except NetlinkError as exc:
                    if exc.errno != errno.ENODEV:
                        raise
                    continue
                names[index] = _text(rows[0][1])
        for entry in entries:
            entry[key] = names.get(entry[key])

    async def routes(self, family: str | None = None, table: int = RT_TABLE_MAIN) -> list[dict[str, Any]]:
        """Routes of one table (0: every table), IPv4 then IPv6, in kernel order.

        Each: {family, dst ("default" or CIDR), gateway (or None), dev (or None), metric,
        protocol ("kernel", "boot", "static", "dhcp", "ra", ... or the number as text),
        scope ("global", "link", "host", ...), table (number), type ("unicast", "local",
        "broadcast", ...)}; a multipath route has dev and gateway None and adds
        nexthops [{gateway, dev, weight}]. A table that does not exist has no routes.
        Raises ValueError for an unknown family.
        """
        number = _family(family)
        request = _RTMSG.pack(number, 0, 0, 0, table if table < 256 else 0, 0, 0, 0, 0)
        if table:
            request += attr_u32(RTA_TABLE, table)  # the kernel filters by it under strict checking
        try:
            rows = await self._nl.request("dump routes", RTM_GETROUTE, request, self._routes)
        except NetlinkError as exc:
            if not (table and exc.errno == errno.ENOENT):
                raise
            rows = []  # strict checking: "FIB table does not exist" when asked for one family
        result: list[dict[str, Any]] = []
        for fam, dst_len, rtm_table, proto, scope, rtype, rta_table, dst, gateway, oif, metric, multipath in rows:
            rtable = rta_table if rta_table is not None else rtm_table
            if fam not in FAMILIES or (number and fam != number) or (table and rtable != table):
                continue
            route: dict[str, Any] = {
                "family": FAMILIES[fam],
                "dst": f"{socket.inet_ntop(fam, dst)}/{dst_len}" if dst else "default",
                "gateway": socket.inet_ntop(fam, gateway) if gateway else None,
                "dev": oif,
                "metric": metric or 0,
                "protocol": PROTOCOLS.get(proto, str(proto)),
                "scope": SCOPES.get(scope, str(scope)),
                "table": rtable,
                "type": ROUTE_TYPES[rtype] if rtype < len(ROUTE_TYPES) else str(rtype),
            }
            if multipath:
                route["nexthops"] = _nexthops(fam, multipath)
            result.append(route)
        hops = [hop for route in result for hop in route.get("nexthops", ())]
        await self._name_links(result + hops, "dev", {})
        return result

    async def neighbors(self, interface: str | None = None, family: str | None = None) -> list[dict[str, Any]]:
        """ARP and NDP entries, of one interface if named: {family, address, lladdr, dev, state}.

        lladdr is lowercase colon hex or None (unresolved); state is the NUD state in
        lowercase ("reachable", "stale", "permanent", "noarp", ...; several joined by ",",
        "none" for none). Raises LinkNotFound for an unknown interface, ValueError for an
        unknown family.
        """
        number = _family(family)
        index = (await self._link_by_name(interface, self._names))[0] if interface is not None else 0
        request = _NDMSG.pack(number, 0, 0, 0, 0) + (attr_u32(NDA_IFINDEX, index) if index else b"")
        rows = await self._nl.request("dump neighbours", RTM_GETNEIGH, request, self._neighbors)
        result = []
        for fam, ifindex, state, dst, lladdr in rows:
            if fam not in FAMILIES or dst is None or (number and fam != number) or (index and ifindex != index):
                continue
            result.append({
                "family": FAMILIES[fam],
                "address": socket.inet_ntop(fam, dst),
                "lladdr": lladdr.hex(":") if lladdr else None,
                "dev": ifindex,
                "state": ",".join(n for bit, n in enumerate(NUD_STATES) if state >> bit & 1) or "none",
            })  # fmt: skip
        await self._name_links(result, "dev", {})
        return result


def _nexthops(family: int, raw: bytes) -> list[dict[str, Any]]:
    """Decode RTA_MULTIPATH: rtnexthop headers each followed by their own attributes."""
    hops, off = [], 0
    while off + _RTNEXTHOP.size <= len(raw):
        length, _, weight, ifindex = _RTNEXTHOP.unpack_from(raw, off)
        if length < _RTNEXTHOP.size:
            break
        span = walk(raw, off + _RTNEXTHOP.size, off + length, {RTA_GATEWAY: None}).get((RTA_GATEWAY,))
        gateway = socket.inet_ntop(family, raw[span[0] : span[0] + span[1]]) if span else None
        hops.append({"gateway": gateway, "dev": ifindex or None, "weight": weight + 1})
        off += (length + 3) & ~3
    return hops


async def interfaces(name: str | None = None) -> list[dict[str, Any]]:
    """Rtnl.interfaces on a socket opened for this call, in the caller's namespace."""
    async with Rtnl() as nl:
        return await nl.interfaces(name)
