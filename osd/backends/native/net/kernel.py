"""The rtnetlink sockets the net services share, and the translation of their errors.

- pyroute2's AsyncIPRoute, behind one lock (a second request on a socket whose dump is
  still running answers EBUSY): every change, and reads that need attributes the fast
  reader does not decode (bridge, tun and VLAN settings).
- rtnl.Rtnl (osd's own stdlib reader, ~13x faster than pyroute2 at decoding): routes and
  neighbours, dumped per read.
- linkwatch.InterfaceWatch: interfaces and addresses kept from the kernel's
  notifications, so net.interfaces needs no dump (see its docstring for the changes the
  kernel announces a moment late, like an IPv6 address added with nodad).

Foreign errors never leave this module: pyroute2's NetlinkError, rtnl's NetlinkError and
OSError become KernelError carrying the errno and the operation, plus the kernel's
extended-ack text when it sent one ("Nexthop has invalid gateway"); an unknown link name
is NotFound.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ....errors import KernelError, NotFound
from .. import rtnl
from ..impl import Implementations, Service
from ..linkwatch import InterfaceWatch

log = logging.getLogger("osd.net")

Message = Any  # a decoded pyroute2 netlink message (nlmsg); read with .get()


def errno_of(exc: KernelError) -> int:
    """The errno a KernelError carries."""
    return int((exc.data or {}).get("errno", 0))


class Kernel(Service):
    """The socket as a service: opened at start, closed at close; no methods of its own.

    Every request and dump is atomic with respect to the others (one at a time, answer
    fully read). Raises KernelError(errno, op) for anything the kernel refuses.
    """

    namespace = "net"
    implementations = Implementations()

    def __init__(self) -> None:
        self._ipr: AsyncIPRoute | None = None
        self._rtnl: rtnl.Rtnl | None = None
        self._watch: InterfaceWatch | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Open the sockets, in the daemon's network namespace. Raises KernelError."""
        try:
            # groups=0: this socket reads no broadcasts, so none may pile up in it.
            self._ipr = AsyncIPRoute(groups=0, ext_ack=True)
            self._rtnl = rtnl.Rtnl()
            self._watch = InterfaceWatch()
        except OSError as exc:
            await self.close()
            raise KernelError(exc.errno or errno.EIO, "open rtnetlink sockets") from exc

    async def close(self) -> None:
        for sock in (self._ipr, self._rtnl, self._watch):
            if sock is not None:
                sock.close()
        self._ipr = self._rtnl = self._watch = None

    async def health(self) -> dict[str, Any]:
        ok = self._ipr is not None
        return {"ok": ok, "status": "ok" if ok else "failed"}

    async def checks(self) -> list[dict[str, Any]]:
        """rtnetlink answers a request, and /dev/net/tun exists (taps need it)."""
        try:
            await self.request("get link lo", "link", "get", index=1)
            netlink = {"name": "rtnetlink", "ok": True, "detail": "answers"}
        except KernelError as exc:
            netlink = {"name": "rtnetlink", "ok": False, "detail": exc.message}
        tun = os.path.exists("/dev/net/tun")
        return [netlink, {"name": "/dev/net/tun", "ok": tun, "detail": "present" if tun else "missing: no taps"}]

    async def interfaces(self, name: str | None = None) -> list[dict[str, Any]]:
        """net.interfaces entries (see rtnl.Rtnl.interfaces), from notifications.

        Raises NotFound("interface", name), KernelError."""
        if self._watch is None:
            raise KernelError(errno.ENOTCONN, "read interfaces")
        with _rtnl_errors():
            return await self._watch.interfaces(name)

    async def routes(self, family: str | None, table: int) -> list[dict[str, Any]]:
        """net.routes entries of one table (see rtnl.Rtnl.routes). Raises KernelError."""
        if self._rtnl is None:
            raise KernelError(errno.ENOTCONN, "dump routes")
        with _rtnl_errors():
            return await self._rtnl.routes(family, table)

    async def neighbors(self, interface: str | None, family: str | None) -> list[dict[str, Any]]:
        """net.neighbors entries (see rtnl.Rtnl.neighbors).

        Raises NotFound("interface", interface), KernelError."""
        if self._rtnl is None:
            raise KernelError(errno.ENOTCONN, "dump neighbours")
        with _rtnl_errors():
            return await self._rtnl.neighbors(interface, family)

    @contextlib.asynccontextmanager
    async def _turn(self, op: str) -> AsyncIterator[AsyncIPRoute]:
        if self._ipr is None:
            raise KernelError(errno.ENOTCONN, op)
        async with self._lock:
            try:
                yield self._ipr
            except NetlinkError as exc:
                raise KernelError(exc.code, _described(op, exc)) from exc
            except OSError as exc:
                raise KernelError(exc.errno or errno.EIO, op) from exc

    async def vlans(self, op: str) -> list[Message]:
        """The AF_BRIDGE link dump with VLAN information (bridge and port VLAN tables)."""
        async with self._turn(op) as ipr:
            return [msg async for msg in await ipr.get_vlans()]

    async def dump(self, op: str, what: str, **kwargs: Any) -> list[Message]:
        """Every message of one pyroute2 dump (``what``: link, addr, route), for attributes the
        fast readers do not decode (address flags and lifetimes, IFA_PROTO, IFLA_AF_SPEC)."""
        async with self._turn(op) as ipr:
            return [msg async for msg in await getattr(ipr, what)("dump", **kwargs)]

    async def request(self, op: str, what: str, command: str, **kwargs: Any) -> list[Message]:
        """One request (``ipr.<what>(command, **kwargs)``) and its answer."""
        async with self._turn(op) as ipr:
            return list(await getattr(ipr, what)(command, **kwargs))

    async def link(self, name: str) -> Message | None:
        """The link called ``name``, or None when there is none."""
        return await self._get_link(f"get link {name}", ifname=name)

    async def link_by_index(self, index: int) -> Message | None:
        """The link with this ifindex, or None when there is none."""
        return await self._get_link(f"get link {index}", index=index)

    async def _get_link(self, op: str, **key: Any) -> Message | None:
        try:
            (msg,) = await self.request(op, "link", "get", **key)
        except KernelError as exc:
            if errno_of(exc) == errno.ENODEV:
                return None
            raise
        return msg

    async def master_of(self, msg: Message) -> str | None:
        """The name of a link's master (its bridge), or None."""
        master = msg.get("master")
        owner = await self.link_by_index(master) if master else None
        return owner.get("ifname") if owner is not None else None

    async def require_link(self, name: str, kind: str = "interface") -> Message:
        """The link called ``name``; raises NotFound(kind, name) when there is none."""
        msg = await self.link(name)
        if msg is None:
            raise NotFound(kind, name)
        return msg

    async def require_bridge(self, name: str) -> Message:
        """The bridge called ``name``; raises NotFound("bridge", name) when there is no such bridge."""
        msg = await self.link(name)
        if msg is None or kind_of(msg) != "bridge":
            raise NotFound("bridge", name)
        return msg

    async def remove_quietly(self, name: str) -> None:
        """Delete link ``name`` if it exists, to undo a creation: a failure is logged, since
        the error the caller reports is the one that made it undo."""
        try:
            msg = await self.link(name)
            if msg is not None:
                await self.request(f"delete link {name}", "link", "del", index=msg["index"])
        except KernelError as exc:
            log.error("cannot undo the creation of %s: %s", name, exc.message)


def kind_of(msg: Message) -> str | None:
    """The link's IFLA_INFO_KIND ("bridge", "veth", "tun", ...), or None for a physical link."""
    kind = msg.get(("linkinfo", "kind"))
    return str(kind) if kind is not None else None


@contextlib.contextmanager
def _rtnl_errors() -> Iterator[None]:
    try:
        yield
    except rtnl.LinkNotFound as exc:
        raise NotFound("interface", exc.name) from exc
    except rtnl.NetlinkError as exc:
        raise KernelError(exc.errno or errno.EIO, f"{exc.op} (kernel: {exc.detail})" if exc.detail else exc.op) from exc
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, "read rtnetlink") from exc


def _described(op: str, exc: NetlinkError) -> str:
    text = str(exc.args[1]) if len(exc.args) > 1 else ""
    if text and text != os.strerror(exc.code):
        return f"{op} (kernel: {text})"
    return op
