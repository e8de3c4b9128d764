"""The DHCP lease logic without a kernel: lease records, and net.lease.restart's all-or-nothing rule."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from osd.backends.native.net import lease_nl
from osd.backends.native.net.dhcp4 import LeaseInfo, _StoredLease, classless_routes
from osd.backends.native.net.lease import LeaseService, _dhcp6_reason
from osd.errors import KernelError, NotFound, Timeout
from osd.state import StateError, StateFile

IFACE = "eth7"


def pyroute2_lease(obtained: float, **options: Any) -> _StoredLease:
    base = {"message_type": 5, "server_id": "192.0.2.1", "lease_time": 120, "renewal_time": 60,
            "rebinding_time": 105, "subnet_mask": "255.255.255.0", "router": ["192.0.2.1", "192.0.2.2"],
            "name_server": ["192.0.2.53"], "domain_name": "example.test"}
    base.update(options)
    ack = {"op": 2, "yiaddr": "192.0.2.56", "options": {k: v for k, v in base.items() if v is not None}}
    return _StoredLease(ack=ack, interface=IFACE, server_mac="02:00:00:00:00:01", obtained=obtained)


def lease_info(address: str = "192.0.2.56", obtained: float | None = None, **options: Any) -> LeaseInfo:
    lease = pyroute2_lease(time.time() if obtained is None else obtained, **options)
    lease.ack["yiaddr"] = address
    return LeaseInfo.from_lease(lease)


# ---------------------------------------------------------------- LeaseInfo
def test_lease_info_from_an_ack_and_back_from_state() -> None:
    info = LeaseInfo.from_lease(pyroute2_lease(1000.0))
    assert info.config() == ("192.0.2.56", 24, (("0.0.0.0/0", "192.0.2.1"),))  # the first router
    assert info.router == "192.0.2.1"
    assert (info.server, info.lease_s, info.renew_s, info.rebind_s) == ("192.0.2.1", 120, 60, 105)
    assert info.name_servers == ("192.0.2.53",) and info.domain == "example.test"
    assert LeaseInfo.from_state(info.raw) == info
    report = info.report(now=1010.0)
    assert (report["renew_in_s"], report["rebind_in_s"], report["expires_in_s"]) == (50.0, 95.0, 110.0)
    assert info.remaining_s(now=1130.0) == -10.0


def test_lease_info_edge_cases() -> None:
    assert LeaseInfo.from_lease(pyroute2_lease(0.0, subnet_mask=None)).prefixlen == 32
    assert LeaseInfo.from_lease(pyroute2_lease(0.0, router=None)).router is None
    forever = LeaseInfo.from_lease(pyroute2_lease(0.0, lease_time=-1))
    assert forever.infinite and forever.remaining_s() is None and forever.report()["expires_in_s"] is None
    assert lease_nl.lifetime(forever) == lease_nl.FOREVER
    assert lease_nl.lifetime(lease_info(obtained=time.time() - 119.5)) == 1  # never 0: that is "expired"
    for broken in ({"server_id": None}, {"lease_time": None}):
        with pytest.raises(ValueError):
            LeaseInfo.from_lease(pyroute2_lease(0.0, **broken))
    with pytest.raises(ValueError):
        LeaseInfo.from_state({"not": "a lease"})


def test_option_121_routes_replace_the_router_option() -> None:
    # RFC 3442's own example encodings: 10.0.0.0/8 via 192.0.2.9; 10.17.0.0/16 on-link;
    # 0.0.0.0/0 via 192.0.2.254; 192.0.2.128/25 via 192.0.2.9 (bits past the width ignored)
    option = [8, 10, 192, 0, 2, 9, 16, 10, 17, 0, 0, 0, 0, 0, 192, 0, 2, 254, 25, 192, 0, 2, 200, 192, 0, 2, 9]
    assert classless_routes(option) == (("10.0.0.0/8", "192.0.2.9"), ("10.17.0.0/16", None),
                                        ("0.0.0.0/0", "192.0.2.254"), ("192.0.2.128/25", "192.0.2.9"))
    info = LeaseInfo.from_lease(pyroute2_lease(0.0, classless_static_route=option))
    assert info.router == "192.0.2.254" and len(info.routes) == 4  # option 3 (192.0.2.1) ignored
    assert info.report()["routes"][1] == {"destination": "10.17.0.0/16", "gateway": None}
    assert LeaseInfo.from_state(info.raw) == info
    twice = [8, 10, 192, 0, 2, 9, 8, 10, 192, 0, 2, 8]  # 10.0.0.0/8 twice: the first router stays
    assert classless_routes(twice) == (("10.0.0.0/8", "192.0.2.9"),)
    no_default = LeaseInfo.from_lease(pyroute2_lease(0.0, classless_static_route=[8, 10, 192, 0, 2, 9]))
    assert no_default.router is None and no_default.routes == (("10.0.0.0/8", "192.0.2.9"),)
    for broken in ([33, 10, 192, 0, 2, 9], [8, 10, 192, 0, 2]):  # a width past 32; cut short
        with pytest.raises(ValueError):
            classless_routes(broken)
        ignored = LeaseInfo.from_lease(pyroute2_lease(0.0, classless_static_route=broken))
        assert ignored.routes == (("0.0.0.0/0", "192.0.2.1"),)  # a malformed option 121 is ignored


def test_dhcp6_reason_repeats_what_router_advertisements_said() -> None:
    assert _dhcp6_reason({"received": False, "managed": False, "other_config": False}) == "osd runs no DHCPv6 client"
    assert "(M flag)" in _dhcp6_reason({"received": True, "managed": True, "other_config": True})
    assert "(O flag)" in _dhcp6_reason({"received": True, "managed": False, "other_config": True})


# ---------------------------------------------------------------- net.lease.restart without a kernel
class FakeKernel:
    def __init__(self, *, fail_apply: bool = False) -> None:
        self.fail_apply = fail_apply
        self.missing: set[str] = set()
        self.up = False
        self.applied: list[tuple[str, str | None]] = []
        self.withdrawn: list[str] = []

    async def index(self, name: str) -> int:
        if name in self.missing:
            raise NotFound("interface", name)
        return 7

    async def bring_up(self, index: int) -> bool:
        was_down, self.up = not self.up, True
        return was_down

    async def set_down(self, index: int) -> None:
        self.up = False

    async def apply(self, index: int, lease: LeaseInfo, previous: LeaseInfo | None) -> bool:
        if self.fail_apply:
            raise KernelError(17, "add default route via 192.0.2.1")
        self.applied.append((lease.address, previous.address if previous else None))
        return previous is None or previous.config() != lease.config()

    async def withdraw(self, index: int, lease: LeaseInfo) -> None:
        self.withdrawn.append(lease.address)


class FakeClient:
    """Stands in for Dhcp4Client: binds to the next address of ``offers``, or never."""

    offers: list[str | None] = []
    made: list["FakeClient"] = []

    def __init__(self, interface: str, on_event: Any, resume: dict[str, Any] | None = None,
                 on_socket_lost: Any = None) -> None:
        self.interface, self.on_event, self.resume, self.on_socket_lost = interface, on_event, resume, on_socket_lost
        self.state, self.last_error, self.stopped = "init", None, False
        FakeClient.made.append(self)

    def start(self) -> None: ...

    async def wait_bound(self, timeout: float) -> LeaseInfo:
        offer = FakeClient.offers.pop(0)
        if offer is None:
            await asyncio.sleep(timeout)
            raise asyncio.TimeoutError
        self.state = "bound"
        return lease_info(offer)

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def service(tmp_path: Path) -> LeaseService:
    FakeClient.made = []
    return LeaseService(str(tmp_path), 0.05, FakeKernel(), client=FakeClient)  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_restart_records_and_replaces_the_managed_client(service: LeaseService, tmp_path: Path) -> None:
    FakeClient.offers = ["192.0.2.56", "192.0.2.56", "192.0.2.57"]

    async def scenario() -> list[dict[str, Any]]:
        return [await service.lease_restart(IFACE) for _ in range(3)]

    first, same, moved = run(scenario())
    assert (first["changed"], same["changed"], moved["changed"]) == (True, False, True)
    assert moved == {"changed": True, "interface": IFACE, "address": "192.0.2.57", "prefixlen": 24,
                     "router": "192.0.2.1", "server": "192.0.2.1", "lease_s": 120}
    kernel = service.kernel
    assert kernel.applied == [("192.0.2.56", None), ("192.0.2.56", "192.0.2.56"), ("192.0.2.57", "192.0.2.56")]
    assert [c.stopped for c in FakeClient.made] == [True, True, False]  # each restart stops the one before
    recorded = StateFile(tmp_path, "dhcp4").load()["interfaces"][IFACE]["lease"]
    assert recorded["ack"]["yiaddr"] == "192.0.2.57"


def test_restart_timeout_and_kernel_failure_change_nothing(service: LeaseService, tmp_path: Path) -> None:
    FakeClient.offers = ["192.0.2.56", None]

    async def scenario() -> None:
        await service.lease_restart(IFACE)
        await service.kernel.set_down(7)
        with pytest.raises(Timeout):
            await service.lease_restart(IFACE)
        service.kernel.fail_apply = True
        FakeClient.offers = ["192.0.2.58"]
        with pytest.raises(KernelError):
            await service.lease_restart(IFACE)

    run(scenario())
    first, timed_out, refused = FakeClient.made
    assert not first.stopped and timed_out.stopped and refused.stopped
    assert service.kernel.up is False  # brought up for the attempts, set down again after each
    assert StateFile(tmp_path, "dhcp4").load()["interfaces"][IFACE]["lease"]["ack"]["yiaddr"] == "192.0.2.56"


def test_events_of_a_replaced_client_are_ignored(service: LeaseService) -> None:
    FakeClient.offers = ["192.0.2.56", "192.0.2.57"]

    async def scenario() -> None:
        await service.lease_restart(IFACE)
        await service.lease_restart(IFACE)
        old, new = FakeClient.made
        await old.on_event(old, "lost", lease_info("192.0.2.56"))  # stale: not applied
        assert service.kernel.withdrawn == []
        await new.on_event(new, "lost", lease_info("192.0.2.57"))
        assert service.kernel.withdrawn == ["192.0.2.57"]
        assert await service.checks() == [{"name": f"dhcp4 lease on {IFACE}", "ok": False,
                                           "detail": "no lease (bound)"}]

    run(scenario())


def test_a_lease_that_runs_out_is_withdrawn_by_the_service(service: LeaseService) -> None:
    async def scenario() -> None:
        service._clients[IFACE] = FakeClient(IFACE, service._on_event)  # type: ignore[assignment]
        service._record(IFACE, lease_info(obtained=time.time() - 119.9))
        await asyncio.sleep(0.3)
        assert service.kernel.withdrawn == ["192.0.2.56"] and service._applied[IFACE] is None

    run(scenario())


def test_start_resumes_recorded_interfaces_and_refuses_a_bad_record(service: LeaseService, tmp_path: Path) -> None:
    state = StateFile(tmp_path, "dhcp4")
    state.save({"interfaces": {IFACE: {"lease": lease_info().raw}, "eth8": {"lease": None}}})

    async def scenario() -> None:
        await service.start()
        resumed = {c.interface: c.resume for c in FakeClient.made}
        assert resumed["eth8"] is None and resumed[IFACE]["ack"]["yiaddr"] == "192.0.2.56"
        await service.close()

    run(scenario())
    state.save({"interfaces": {IFACE: {"lease": {"ack": {}}}}})
    with pytest.raises(StateError, match="eth7"):
        run(LeaseService(str(tmp_path), 1.0, FakeKernel(), client=FakeClient).start())  # type: ignore[arg-type]


def test_a_deleted_interface_is_forgotten_one_missing_at_start_is_kept(service: LeaseService, tmp_path: Path) -> None:
    state = StateFile(tmp_path, "dhcp4")
    state.save({"interfaces": {"gone0": {"lease": lease_info().raw}}})
    service.kernel.missing.add("gone0")
    FakeClient.offers = ["192.0.2.56"]

    async def scenario() -> None:
        await service.start()
        (resumed,) = FakeClient.made
        resumed.state = "stopped"  # its socket cannot open while the link is missing
        assert await service.checks() == []  # drift, not a failed check
        assert (await service.drift())[0]["actual"] == {"interface": None}
        await service.lease_restart(IFACE)
        managed = FakeClient.made[-1]
        assert await managed.on_socket_lost(managed) is True  # link down: go on
        service.kernel.missing.add(IFACE)
        assert await managed.on_socket_lost(managed) is False  # deleted: forget it
        assert IFACE not in service._clients

    run(scenario())
    assert list(state.load()["interfaces"]) == ["gone0"]
