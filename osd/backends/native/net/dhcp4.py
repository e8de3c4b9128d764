"""One interface's DHCPv4 client: pyroute2's AsyncDHCPClient, supervised, inside the daemon's loop.

pyroute2 0.9 runs the protocol (DISCOVER/OFFER/REQUEST/ACK from 0.0.0.0 over an AF_PACKET
socket, renew at T1, rebind at T2, expiry, INIT-REBOOT from a remembered lease) and calls
hooks; the hooks here only hand each lease event to the owner, which applies it to the
kernel. What this module adds around pyroute2, and why:

- pyroute2 stores leases as JSON files in the working directory and loads them by interface
  name; osd keeps leases in its own state file, so the lease class here never writes and
  "loads" the lease the owner handed in (that is how a restarted daemon resumes a lease).
- pyroute2 logs and swallows exceptions raised by hooks, and its hooks cannot fail the
  protocol; so hooks only call ``on_event``, which must not raise.
- The client's send and receive tasks end for good when the interface goes down or away
  (ENETDOWN, ENODEV); a supervisor loop starts a fresh client, from the last lease, with a
  growing pause, for as long as the interface is managed.
- Signal handling (pyroute2 takes SIGHUP, SIGUSR1, SIGUSR2) is off: those signals are the
  daemon's. RELEASE on stop is off: a stopping daemon keeps its address until the lease
  runs out (the kernel lifetime removes it) and the next start asks for it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pyroute2.dhcp import fsm
from pyroute2.dhcp.client import AsyncDHCPClient, ClientConfig
from pyroute2.dhcp.enums import dhcp
from pyroute2.dhcp.hooks import Hook, Trigger
from pyroute2.dhcp.leases import Lease, MissingOptionError

log = logging.getLogger(__name__)

INFINITE = -1  # lease_time, as pyroute2 decodes 0xffffffff (a signed 32-bit option)
REQUESTED = (
    dhcp.Option.SUBNET_MASK, dhcp.Option.ROUTER, dhcp.Option.NAME_SERVER, dhcp.Option.DOMAIN_NAME,
    dhcp.Option.BROADCAST_ADDRESS, dhcp.Option.LEASE_TIME, dhcp.Option.RENEWAL_TIME,
    dhcp.Option.REBINDING_TIME, dhcp.Option.CLASSLESS_STATIC_ROUTE,
)
HOOK_TIMEOUT_S = 10.0  # applying a lease is two or three netlink requests
RESTART_PAUSE_S = (1.0, 30.0)  # supervisor: first and longest pause between client runs


Route = tuple[str, str | None]  # destination network, gateway (None: on-link)


def classless_routes(data: list[int] | bytes) -> tuple[Route, ...]:
    """The routes of a Classless Static Route option (121, RFC 3442): per route one octet
    of prefix length, the destination's significant octets, then the router (0.0.0.0: the
    destination is on-link). A destination given twice keeps its first router (a route
    table holds one route per destination and metric). Raises ValueError when the option
    is malformed."""
    octets, routes, at = bytes(data), [], 0
    while at < len(octets):
        width = octets[at]
        if width > 32:
            raise ValueError(f"prefix length {width} in option 121")
        significant = (width + 7) // 8
        end = at + 1 + significant + 4
        if end > len(octets):
            raise ValueError("option 121 ends inside a route")
        destination = ipaddress.IPv4Network(
            (octets[at + 1:at + 1 + significant].ljust(4, b"\0"), width), strict=False)
        gateway = str(ipaddress.IPv4Address(octets[end - 4:end]))
        if all(str(destination) != known for known, _ in routes):
            routes.append((str(destination), None if gateway == "0.0.0.0" else gateway))
        at = end
    return tuple(routes)


@dataclasses.dataclass(frozen=True)
class LeaseInfo:
    """What a DHCPv4 ACK granted, in the terms osd reports and applies.

    ``raw`` is pyroute2's lease (the ACK, the server's MAC, when it was obtained) as JSON,
    which is what the state file keeps and what a resumed client starts from.
    """

    interface: str
    address: str
    prefixlen: int
    router: str | None  # the default route's gateway, when the lease gives one
    routes: tuple[Route, ...]  # every route the lease gives, the default route included
    server: str
    server_mac: str
    lease_s: int  # -1: infinite
    renew_s: int | None
    rebind_s: int | None
    obtained: float  # unix time of the ACK
    name_servers: tuple[str, ...]
    domain: str | None
    raw: dict[str, Any] = dataclasses.field(compare=False, repr=False)

    @classmethod
    def from_lease(cls, lease: Lease) -> "LeaseInfo":
        """Raises ValueError when the ACK lacks what a usable lease needs (address, server, time)."""
        options = lease.ack.get("options") or {}
        address = lease.ack.get("yiaddr")
        server = options.get("server_id")
        lease_s = options.get("lease_time")
        if not address or address == "0.0.0.0" or not server or not isinstance(lease_s, int):
            raise ValueError(f"DHCP ACK without address, server id or lease time: {options}")
        try:
            prefixlen = lease.prefixlen
        except MissingOptionError:
            prefixlen = 32  # no subnet mask: the address alone, the router reached on-link
        routers = options.get("router") or []
        routes: tuple[Route, ...] = (("0.0.0.0/0", routers[0]),) if routers else ()
        classless = options.get("classless_static_route")
        if classless:
            # RFC 3442: with option 121 the client must ignore the router option (3).
            try:
                routes = classless_routes(classless)
            except ValueError as exc:
                log.warning("dhcp4 %s: ignoring option 121 from %s: %s", lease.interface, server, exc)
        default = next((gateway for destination, gateway in routes if destination == "0.0.0.0/0"), None)
        servers = options.get("name_server") or []
        domain = options.get("domain_name")
        raw = json.loads(json.dumps(dataclasses.asdict(lease), default=str))
        return cls(
            interface=lease.interface, address=address, prefixlen=prefixlen,
            router=default, routes=routes, server=server, server_mac=lease.server_mac,
            lease_s=lease_s, renew_s=options.get("renewal_time"), rebind_s=options.get("rebinding_time"),
            obtained=lease.obtained, name_servers=tuple(servers), domain=domain if isinstance(domain, str) else None,
            raw=raw,
        )

    @classmethod
    def from_state(cls, raw: dict[str, Any]) -> "LeaseInfo":
        """A lease recorded by ``raw``; raises ValueError when it is not one."""
        try:
            return cls.from_lease(_StoredLease(**raw))
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"not a recorded DHCP lease: {exc}") from exc

    @property
    def infinite(self) -> bool:
        return self.lease_s == INFINITE

    def remaining_s(self, now: float | None = None) -> float | None:
        """Seconds until the lease ends (negative once it has), None when infinite."""
        if self.infinite:
            return None
        return self.obtained + self.lease_s - (time.time() if now is None else now)

    def config(self) -> tuple[str, int, tuple[Route, ...]]:
        """What the lease puts on the interface: (address, prefixlen, routes)."""
        return self.address, self.prefixlen, self.routes

    def report(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now

        def until(offset: int | None) -> float | None:
            if offset is None or self.infinite:
                return None
            return round(self.obtained + offset - now, 1)

        return {
            "address": self.address, "prefixlen": self.prefixlen, "router": self.router,
            "routes": [{"destination": destination, "gateway": gateway} for destination, gateway in self.routes],
            "server": self.server, "server_mac": self.server_mac, "lease_s": self.lease_s,
            "obtained": round(self.obtained, 3), "renew_in_s": until(self.renew_s),
            "rebind_in_s": until(self.rebind_s), "expires_in_s": until(self.lease_s),
            "name_servers": list(self.name_servers), "domain": self.domain,
        }


class _StoredLease(Lease):
    """A pyroute2 lease osd records itself: never written by pyroute2, never loaded from a file."""

    def dump(self) -> None:
        pass  # osd writes its state file once the lease is applied

    @classmethod
    def load(cls, interface: str) -> None:
        return None


# on_event(client, kind, lease): kind is "bound" (a new, renewed or rebound lease) or "lost"
# (expired, or refused by the server); it must not raise.
EventHandler = Callable[["Dhcp4Client", str, LeaseInfo], Awaitable[None]]
# on_socket_lost(client): the open socket died (link down or deleted); False ends the client.
LossHandler = Callable[["Dhcp4Client"], Awaitable[bool]]


class SocketLost(OSError):
    """The client's socket, once open, stopped working: the link went down or away."""


class Dhcp4Client:
    """Keeps one interface's lease alive until ``stop()``; restarts pyroute2's client when it dies.

    ``resume`` is a recorded lease (``LeaseInfo.raw``): the client then starts in INIT-REBOOT
    and asks for that address again; without one it starts with a DISCOVER.
    """

    def __init__(self, interface: str, on_event: EventHandler, resume: dict[str, Any] | None = None,
                 on_socket_lost: LossHandler | None = None) -> None:
        self.interface = interface
        self._on_event = on_event
        self._on_socket_lost = on_socket_lost
        self._resume = resume
        self._client: AsyncDHCPClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._first_bound: asyncio.Future[LeaseInfo] = asyncio.get_running_loop().create_future()
        self._binds = 0  # leases obtained, so the supervisor can tell a run that worked
        self.lease: LeaseInfo | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the client in the background; idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"dhcp4 {self.interface}")

    async def wait_bound(self, timeout: float) -> LeaseInfo:
        """The first lease this client obtains; raises asyncio.TimeoutError."""
        return await asyncio.wait_for(asyncio.shield(self._first_bound), timeout)

    async def stop(self) -> None:
        """Stop the client without RELEASE and without touching the interface; idempotent."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if not self._first_bound.done():
            self._first_bound.cancel()

    @property
    def state(self) -> str:
        """pyroute2's state name in lower case (init, selecting, requesting, bound, renewing,
        rebinding, rebooting), or "stopped" between supervised runs."""
        client = self._client
        if client is None or client.state is fsm.State.OFF:
            return "stopped"
        return client.state.name.lower()

    # ------------------------------------------------------------ internals
    def _config(self) -> ClientConfig:
        owner = self

        class OwnLease(_StoredLease):
            @classmethod
            def load(cls, interface: str) -> Lease | None:
                return cls(**owner._resume) if owner._resume else None

        return ClientConfig(
            interface=self.interface, lease_type=OwnLease, requested_parameters=REQUESTED,
            hooks=(Hook(self._bound, {Trigger.BOUND, Trigger.RENEWED, Trigger.REBOUND}),
                   Hook(self._lost, {Trigger.EXPIRED, Trigger.UNBOUND})),
            release=False, handle_signals=False, hook_timeout=HOOK_TIMEOUT_S, vendor_id="osd",
        )

    async def _supervise(self) -> None:
        pause = RESTART_PAUSE_S[0]
        while not self._stopping.is_set():
            binds = self._binds
            try:
                await self._run_once()
            except SocketLost as exc:
                self.last_error = str(exc)
                if self._on_socket_lost is not None and not await self._on_socket_lost(self):
                    self._stopping.set()
                    break
                log.warning("dhcp4 %s: %s; restarting the client", self.interface, exc)
            except Exception as exc:  # OSError from the socket, pyroute2's own assertions
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("dhcp4 %s: client failed (%s); retrying in %.0f s", self.interface,
                            self.last_error, pause)
            if self._stopping.is_set():
                break
            if self._binds > binds:  # that run worked for a while: start over quickly
                pause = RESTART_PAUSE_S[0]
            try:
                await asyncio.wait_for(self._stopping.wait(), pause)
            except asyncio.TimeoutError:
                pass
            pause = min(pause * 2, RESTART_PAUSE_S[1])

    async def _run_once(self) -> None:
        """One pyroute2 client from start to stop; raises when its socket dies first."""
        client = AsyncDHCPClient(self._config())
        await client.__aenter__()
        self._client = client
        # pyroute2 keeps no public handle on its tasks; when either ends, the client can
        # neither send nor receive any more (the link went down or away).
        workers = [t for t in (client._sender_task, client._receiver_task) if t is not None]
        try:
            await client.bootstrap()
            stop = asyncio.create_task(self._stopping.wait())
            try:
                await asyncio.wait([stop, *workers], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            for task in workers:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise SocketLost(f"DHCP socket on {self.interface}: {task.exception()}")
            if not self._stopping.is_set():
                raise SocketLost(f"DHCP socket on {self.interface} stopped (link down or gone)")
        finally:
            self._client = None
            try:
                await client.__aexit__(None, None, None)
            except Exception:
                # __aexit__ re-raises a dead worker's error before it closes the socket.
                await client._sock.__aexit__()

    async def _bound(self, lease: Lease) -> None:
        try:
            info = LeaseInfo.from_lease(lease)
        except ValueError as exc:
            self.last_error = str(exc)
            log.warning("dhcp4 %s: %s", self.interface, exc)
            return
        self.lease = info
        self._resume = info.raw
        self._binds += 1
        self.last_error = None
        if not self._first_bound.done():
            self._first_bound.set_result(info)
        await self._on_event(self, "bound", info)

    async def _lost(self, lease: Lease) -> None:
        # The lease pyroute2 lost may be one this process never bound: a resumed lease the
        # server refused (NAK) in INIT-REBOOT.
        try:
            info: LeaseInfo | None = LeaseInfo.from_lease(lease)
        except ValueError:
            info = self.lease
        self.lease = None
        self._resume = None
        if info is not None:
            await self._on_event(self, "lost", info)
