"""net.lease, net.lease.restart, net.prefix: DHCPv4 leases the daemon keeps, and IPv6 autoconfiguration.

The daemon is the DHCPv4 client of every interface it was asked to run DHCP on
(``net.lease.restart``): it keeps the lease alive (renew at T1, rebind at T2), applies each
new lease to the kernel and removes the address when a lease is lost. Those interfaces and
their leases are recorded in the state file ``dhcp4.json``, and a starting daemon resumes
them (INIT-REBOOT with the recorded lease), waiting for an interface that does not exist
yet. An interface deleted while the daemon runs is forgotten (its lease went with it).
There is no method to stop managing an interface that exists; deleting its entry from the
state file while the daemon is stopped does.

The daemon runs no DHCPv6 client and no prefix-delegation client: ``dhcp6`` is null with
the reason, and ``net.prefix`` is an empty list. SLAAC is the kernel's work; it is read from
netlink and reported as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ....config import Config
from ....errors import KernelError, NotFound, OsdError, Timeout
from ....methods import net
from ....state import StateError, StateFile
from ..impl import Implementations, Service
from .autoconf import Autoconf
from .dhcp4 import Dhcp4Client, LeaseInfo, Route
from .kernel import Kernel
from .lease_nl import LeaseKernel

log = logging.getLogger(__name__)

NO_DHCP6 = "osd runs no DHCPv6 client"
LIVE = ("bound", "renewing", "rebinding")  # states in which the client holds a valid lease

implements = Implementations()


class LeaseService(Service):
    """DHCPv4 client management and IPv6 autoconfiguration reports."""

    namespace = "net"
    implementations = implements

    def __init__(self, state_dir: str, timeout_s: float, kernel: LeaseKernel, *,
                 client: type[Dhcp4Client] = Dhcp4Client) -> None:
        self.timeout_s = timeout_s
        self.kernel = kernel
        self.autoconf = Autoconf()
        self._client_type = client  # a stand-in in unit tests
        self._state = StateFile(state_dir, "dhcp4")
        self._clients: dict[str, Dhcp4Client] = {}  # the managed client of each interface
        self._applied: dict[str, LeaseInfo | None] = {}  # the lease last put on each interface
        self._restarting: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._applying: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: Config, kernel: Kernel) -> "LeaseService":
        """The service on the shared rtnetlink socket; ``kernel`` must start before it."""
        return cls(config.server.state_dir, config.net.dhcp_timeout_s, LeaseKernel(kernel))

    # ------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Resume the client of every recorded interface; raises StateError on a bad state file."""
        records = self._state.load().get("interfaces", {})
        resumed: dict[str, tuple[LeaseInfo | None, dict[str, Any] | None]] = {}
        for name, record in records.items():
            raw = record.get("lease") if isinstance(record, dict) else None
            try:
                resumed[name] = (LeaseInfo.from_state(raw) if raw else None, raw)
            except ValueError as exc:
                raise StateError(f"state file {self._state.path}: interface {name!r}: {exc}") from exc
        self.autoconf.open()
        for name, (lease, raw) in resumed.items():
            self._record(name, lease, save=False)
            client = self._clients[name] = self._client_type(name, self._on_event, raw, self._on_socket_lost)
            client.start()
            log.info("dhcp4 %s: resumed%s", name, f" with lease {lease.address}" if lease else "")

    async def close(self) -> None:
        """Stop every client without releasing its lease (the next start resumes it)."""
        for client in list(self._clients.values()):
            await client.stop()
        for timer in self._expiry.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.autoconf.close()

    # ------------------------------------------------------------ methods
    @implements(net.LEASE)
    async def lease(self, interface: str | None = None) -> list[dict[str, Any]]:
        """Per interface: the managed DHCPv4 client, DHCPv6 (null: no client), SLAAC addresses,
        and what router advertisements said. Raises NotFound for a missing interface; read-only."""
        links = await self.autoconf.links(interface)
        index = next(iter(links), 0) if interface is not None else 0
        slaac = await self.autoconf.slaac(index)
        routers = await self.autoconf.ra_routers(index)
        now = time.time()
        rows = []
        for ifindex, link in sorted(links.items()):
            name = link["name"]
            rows.append({
                "interface": name, "dhcp4": self._dhcp4_report(name, now), "dhcp6": None,
                "dhcp6_reason": _dhcp6_reason(link["ra"]), "slaac": slaac.get(ifindex, []),
                "ra": {**link["ra"], "routers": routers.get(ifindex, [])},
            })
        return rows

    @implements(net.PREFIX)
    async def prefix(self) -> list[dict[str, Any]]:
        """Delegated IPv6 prefixes: always empty, as no DHCPv6-PD client runs here; read-only."""
        return []

    @implements(net.LEASE_RESTART)
    async def lease_restart(self, interface: str) -> dict[str, Any]:
        """Run a fresh DHCP exchange (DISCOVER) on ``interface`` and apply the lease it yields.

        Answers once the lease is bound and applied; the daemon then keeps it alive. ``changed``
        is false when the interface already carried the same address, prefix length and router
        (a renewal of what it had), true otherwise. A down link is brought up. Raises NotFound
        (no such interface), Timeout (no lease within ``dhcp_timeout_s``), KernelError. On any
        failure nothing changes: the old address, route, link state and client stay.
        """
        async with self._restarting[interface]:
            index = await self.kernel.index(interface)
            was_down = await self.kernel.bring_up(index)
            trial = self._client_type(interface, self._on_event, None, self._on_socket_lost)
            trial.start()
            try:
                lease = await trial.wait_bound(self.timeout_s)
                async with self._applying[interface]:
                    changed = await self.kernel.apply(index, lease, self._applied.get(interface))
                    old = self._clients.get(interface)
                    self._clients[interface] = trial  # from now on its events are applied
                    self._record(interface, lease)
            except BaseException as exc:
                await trial.stop()
                if was_down:
                    try:
                        await self.kernel.set_down(index)
                    except OsdError as undo:  # the first failure is the one to report
                        log.error("dhcp4 %s: could not set the link down again: %s", interface, undo)
                if isinstance(exc, asyncio.TimeoutError):
                    raise Timeout(self.timeout_s, f"DHCP on {interface}") from None
                raise
            if old is not None:
                await old.stop()
            log.info("dhcp4 %s: %s/%d from %s (changed: %s)", interface, lease.address, lease.prefixlen,
                     lease.server, changed)
            return {"changed": changed, "interface": interface, "address": lease.address,
                    "prefixlen": lease.prefixlen, "router": lease.router, "server": lease.server,
                    "lease_s": lease.lease_s}

    # ------------------------------------------------------------ net.health, net.verify
    async def checks(self) -> list[dict[str, Any]]:
        """One check per managed interface that exists: ok while its lease is bound or renewing.

        A recorded interface that does not exist (yet) is drift, not a failed check."""
        checks = []
        now = time.time()
        for name, client in sorted(self._clients.items()):
            lease, state = self._applied.get(name), client.state
            if state == "stopped" and not await self._exists(name):
                continue
            if state in LIVE and lease is not None:
                left = lease.remaining_s(now)
                until = "never expires" if left is None else f"expires in {left:.0f} s"
                ok = state != "rebinding"
                detail = f"{state} {lease.address}/{lease.prefixlen} from {lease.server}, {until}"
                if not ok:
                    detail += " (the server did not answer the renewal)"
            else:
                ok = False
                detail = f"no lease ({state})" + (f": {client.last_error}" if client.last_error else "")
            checks.append({"name": f"dhcp4 lease on {name}", "ok": ok, "detail": detail})
        return checks

    async def drift(self) -> list[dict[str, Any]]:
        """Managed interfaces whose leased address or default route is gone from the kernel."""
        drift = []
        for name in sorted(self._clients):
            lease = self._applied.get(name)
            if lease is None:
                continue
            expected = {"address": f"{lease.address}/{lease.prefixlen}", "router": lease.router,
                        "routes": _routes(lease.routes)}
            try:
                index = await self.kernel.index(name)
            except OsdError:
                drift.append({"kind": "dhcp4-lease", "name": name, "expected": expected,
                              "actual": {"interface": None}})
                continue
            has_addr, routes = await self.kernel.present(index, lease)
            if not has_addr or len(routes) != len(lease.routes):
                drift.append({"kind": "dhcp4-lease", "name": name, "expected": expected, "actual": {
                    "address": expected["address"] if has_addr else None,
                    "router": lease.router if ("0.0.0.0/0", lease.router) in routes else None,
                    "routes": _routes(routes)}})
        return drift

    # ------------------------------------------------------------ internals
    async def _on_event(self, client: Dhcp4Client, kind: str, lease: LeaseInfo) -> None:
        """A lease event of a client: applied when the client is the interface's managed one."""
        name = client.interface
        async with self._applying[name]:
            if self._clients.get(name) is not client:
                return  # a restart's trial client, or one being replaced
            previous = self._applied.get(name)
            try:
                index = await self.kernel.index(name)
                if kind == "bound":
                    await self.kernel.apply(index, lease, previous)
                    self._record(name, lease)
                else:
                    await self.kernel.withdraw(index, previous or lease)
                    self._record(name, None)
                    log.warning("dhcp4 %s: lease %s lost; address removed", name, lease.address)
            except OsdError as exc:
                client.last_error = str(exc)
                log.error("dhcp4 %s: could not apply %s lease: %s", name, kind, exc)

    async def _exists(self, name: str) -> bool:
        try:
            await self.kernel.index(name)
        except NotFound:
            return False
        return True

    async def _on_socket_lost(self, client: Dhcp4Client) -> bool:
        """A client's socket died. When its interface was deleted, forget the interface (its
        lease went with it) and end the client: False. Otherwise (link down) go on: True."""
        name = client.interface
        async with self._applying[name]:
            if self._clients.get(name) is not client:
                return True  # a restart's trial: it goes on until the restart's deadline
            try:
                if await self._exists(name):
                    return True
            except OsdError as exc:
                log.error("dhcp4 %s: cannot tell whether the interface still exists: %s", name, exc)
                return True
            del self._clients[name]
            self._record(name, None, save=False)
            del self._applied[name]
            self._save()
        log.warning("dhcp4 %s: the interface was deleted; it is no longer managed", name)
        return False

    def _record(self, name: str, lease: LeaseInfo | None, *, save: bool = True) -> None:
        """Remember the lease applied to ``name`` and arm its expiry; then write the state file."""
        self._applied[name] = lease
        timer = self._expiry.pop(name, None)
        if timer is not None:
            timer.cancel()
        remaining = lease.remaining_s() if lease is not None else None
        if lease is not None and remaining is not None:
            self._expiry[name] = asyncio.get_running_loop().call_later(
                max(0.0, remaining), lambda: self._spawn(self._expire(name, lease)))
        if save:
            self._save()

    async def _expire(self, name: str, lease: LeaseInfo) -> None:
        """The lease ran out and nothing replaced it: withdraw it, whatever state the client is in.

        pyroute2 drops a lease it cannot renew through its own EXPIRED event, but not one it
        gave up on earlier (an INIT-REBOOT nobody answered), so the service keeps its own timer.
        """
        async with self._applying[name]:
            if self._applied.get(name) is not lease:
                return
            try:
                await self.kernel.withdraw(await self.kernel.index(name), lease)
            except OsdError as exc:
                log.error("dhcp4 %s: could not remove expired lease %s: %s", name, lease.address, exc)
            self._record(name, None)
            log.warning("dhcp4 %s: lease %s expired; address removed", name, lease.address)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    def _save(self) -> None:
        """Record the managed interfaces and their leases. A write that fails is logged, not
        raised: the kernel already carries the lease, and the next event writes again."""
        try:
            self._state.save({"interfaces": {
                name: {"lease": lease.raw if (lease := self._applied.get(name)) else None} for name in self._clients}})
        except KernelError as exc:
            log.error("dhcp4: cannot record leases in %s: %s", self._state.path, exc.message)

    def _dhcp4_report(self, name: str, now: float) -> dict[str, Any] | None:
        client = self._clients.get(name)
        if client is None:
            return None
        lease = self._applied.get(name)
        report: dict[str, Any] = {"state": client.state, "last_error": client.last_error}
        if lease is not None:
            report.update(lease.report(now))
        return report


def _routes(routes: Iterable[Route]) -> list[dict[str, str | None]]:
    return [{"destination": destination, "gateway": gateway} for destination, gateway in routes]


def _dhcp6_reason(ra: dict[str, bool]) -> str:
    if ra["managed"]:
        return f"{NO_DHCP6}; the last router advertisement asks for DHCPv6 addresses (M flag)"
    if ra["other_config"]:
        return f"{NO_DHCP6}; the last router advertisement offers other configuration by DHCPv6 (O flag)"
    return NO_DHCP6
