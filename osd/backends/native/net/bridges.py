"""net.bridge and its writes: Linux bridges, their ports, and veth links between bridges.

Bridges osd creates are recorded (managed.py) and re-created at start when missing; a
recorded bridge that is missing or differs from its record is drift for net.verify.
A bridge that exists but was not made by osd is listed with managed false and is never
recorded.
"""

from __future__ import annotations

import errno
import hashlib
import logging
from typing import Any

from ....errors import Conflict, InvalidParams, KernelError, NotSupported, OsdError
from ....methods import net
from ..impl import Implementations, Service
from .kernel import Kernel, Message, errno_of, kind_of
from .managed import Managed, Record, differences, given

implements = Implementations()
log = logging.getLogger("osd.net.bridges")

VLAN_FILTERING_UNSUPPORTED = (
    "bridge VLAN filtering: this kernel refused IFLA_BR_VLAN_FILTERING with EOPNOTSUPP "
    "(built without CONFIG_BRIDGE_VLAN_FILTERING)"
)


def observed(msg: Message) -> dict[str, Any]:
    """What a bridge record describes, as the kernel has it."""
    return {
        "kind": kind_of(msg),
        "stp": bool(msg.get(("linkinfo", "data", "br_stp_state"))),
        "vlan_filtering": bool(msg.get(("linkinfo", "data", "br_vlan_filtering"))),
        "mtu": msg.get("mtu"),
    }


def veth_names(bridge_a: str, bridge_b: str) -> tuple[str, str]:
    """The veth pair connecting two bridges: derived from both names (so a repeated call
    finds it) and short enough for any names (IFNAMSIZ)."""
    digest = hashlib.blake2s(f"{bridge_a}\0{bridge_b}".encode(), digest_size=4).hexdigest()
    return f"osd{digest}a", f"osd{digest}b"


class Bridges(Service):
    namespace = "net"
    implementations = implements

    def __init__(self, kernel: Kernel, managed: Managed) -> None:
        self.kernel = kernel
        self.managed = managed

    async def start(self) -> None:
        """Re-create recorded bridges that are missing from the kernel (logged; a failure
        is logged and left to net.verify)."""
        for name, record in sorted(self.managed.bridges.items()):
            if await self.kernel.link(name) is not None:
                continue
            try:
                await self._create(name, record)
                log.info("re-created bridge %s (recorded, missing from the kernel)", name)
            except OsdError as exc:
                log.error("cannot re-create recorded bridge %s: %s", name, exc.message)

    async def drift(self) -> list[dict[str, Any]]:
        """Recorded bridges missing from the kernel (actual null) or differing from their record."""
        drift = []
        for name, record in sorted(self.managed.bridges.items()):
            msg = await self.kernel.link(name)  # one request per record: no dump of every link
            if msg is None:
                drift.append({"kind": "bridge", "name": name, "expected": record, "actual": None})
                continue
            expected, actual = differences({"kind": "bridge", **given(record)}, observed(msg))
            if expected:
                drift.append({"kind": "bridge", "name": name, "expected": expected, "actual": actual})
        return drift

    @implements(net.BRIDGE_LIST)
    async def bridges(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every bridge (or the one named): {name, ports, stp, vlan_filtering, mtu, managed}.

        Raises NotFound("bridge", name) when no bridge has that name. Read-only.
        """
        if name is not None:
            await self.kernel.require_bridge(name)
        links = await self.kernel.interfaces()
        ports: dict[str, list[str]] = {}
        for link in links:
            if link["master"]:
                ports.setdefault(link["master"], []).append(link["name"])
        result = []
        for link in links:
            if link["kind"] != "bridge" or (name is not None and link["name"] != name):
                continue
            msg = await self.kernel.link_by_index(link["index"])  # STP and VLAN settings
            if msg is None:
                continue  # gone meanwhile
            state = observed(msg)
            result.append({"name": link["name"], "ports": ports.get(link["name"], []), "stp": state["stp"],
                           "vlan_filtering": state["vlan_filtering"], "mtu": state["mtu"],
                           "managed": link["name"] in self.managed.bridges})
        return result

    @implements(net.BRIDGE_ADD)
    async def add(self, name: str, stp: bool | None = None, mtu: int | None = None,
                  vlan_filtering: bool | None = None) -> dict[str, Any]:
        """Create a bridge, bring it up and record it. Idempotent: a bridge with this name
        and every given setting is changed false (and stays unrecorded if osd did not make it).

        Raises Conflict (the name is another kind of link, or a bridge with other settings),
        NotSupported (vlan_filtering on a kernel without it, as the kernel answers), KernelError.
        """
        async with self.managed.lock:
            msg = await self.kernel.link(name)
            if msg is not None:
                if kind_of(msg) != "bridge":
                    raise Conflict("interface", name, f"exists and is not a bridge (kind {kind_of(msg)})")
                expected, actual = differences(given({"stp": stp, "mtu": mtu, "vlan_filtering": vlan_filtering}),
                                               observed(msg))
                if expected:
                    raise Conflict("bridge", name, f"exists with {actual}, asked for {expected}")
                return {"changed": False, "name": name}
            record = {"stp": bool(stp), "mtu": mtu, "vlan_filtering": bool(vlan_filtering)}
            await self._create(name, record)
            try:
                self.managed.put("bridges", name, record)
            except BaseException:
                await self.kernel.remove_quietly(name)
                raise
        return {"changed": True, "name": name}

    async def _create(self, name: str, record: Record) -> None:
        """Create the bridge of ``record`` and bring it up; nothing is left on failure."""
        kwargs: dict[str, Any] = {"ifname": name, "kind": "bridge", "br_stp_state": 1 if record["stp"] else 0}
        if record["vlan_filtering"]:
            kwargs["br_vlan_filtering"] = 1
        try:
            await self.kernel.request(f"create bridge {name}", "link", "add", **kwargs)
        except KernelError as exc:
            if errno_of(exc) == errno.EOPNOTSUPP and record["vlan_filtering"]:
                raise NotSupported(VLAN_FILTERING_UNSUPPORTED) from exc
            if errno_of(exc) == errno.EEXIST:
                raise Conflict("interface", name, "was created by someone else meanwhile") from exc
            raise
        try:
            index = (await self.kernel.require_link(name))["index"]
            # The MTU is set after creation: an MTU given at creation is not "set by the
            # user" and the bridge would drop to its smallest port's MTU when ports join.
            changes: dict[str, Any] = {"state": "up"} | ({"mtu": record["mtu"]} if record["mtu"] else {})
            await self.kernel.request(f"set up bridge {name}", "link", "set", index=index, **changes)
        except BaseException:
            await self.kernel.remove_quietly(name)
            raise

    @implements(net.BRIDGE_DELETE)
    async def delete(self, name: str) -> dict[str, Any]:
        """Delete a bridge (osd's or not) and forget its record. Idempotent: no such bridge
        is changed false, unless a record of it was forgotten (it will no longer be re-created).

        Raises Conflict when the name is not a bridge or managed taps are attached to it.
        """
        async with self.managed.lock:
            msg = await self.kernel.link(name)
            record = self.managed.bridges.get(name)
            if msg is None:
                if record is None:
                    return {"changed": False}
                self.managed.put("bridges", name, None)
                return {"changed": True}
            if kind_of(msg) != "bridge":
                raise Conflict("interface", name, f"is not a bridge (kind {kind_of(msg)})")
            taps = sorted(tap for tap, rec in self.managed.taps.items() if rec.get("bridge") == name)
            if taps:
                raise Conflict("bridge", name, f"managed taps use it: {', '.join(taps)}; delete them first")
            if record is not None:
                self.managed.put("bridges", name, None)
            try:
                await self.kernel.request(f"delete bridge {name}", "link", "del", index=msg["index"])
            except BaseException:
                if record is not None:
                    self.managed.put("bridges", name, record)
                raise
        return {"changed": True}

    @implements(net.BRIDGE_CONNECT)
    async def connect(self, bridge_a: str, bridge_b: str) -> dict[str, Any]:
        """Connect two bridges with a veth pair, one end a port of each, both up. Idempotent:
        an existing veth pair between them is changed false (its names are returned).

        Raises InvalidParams (the same bridge twice), NotFound (a bridge), Conflict (the
        pair's names are taken by other links), KernelError.
        """
        if bridge_a == bridge_b:
            raise InvalidParams("bridge_a and bridge_b must be two different bridges", "/bridge_b")
        async with self.managed.lock:
            a = await self.kernel.require_bridge(bridge_a)
            b = await self.kernel.require_bridge(bridge_b)
            links = await self.kernel.interfaces()
            by_index = {link["index"]: link for link in links}
            for port in links:
                if port["master"] != bridge_a or port["kind"] != "veth":
                    continue
                msg = await self.kernel.link_by_index(port["index"])  # its peer (IFLA_LINK)
                peer = by_index.get(msg.get("link")) if msg is not None and not msg.get("link_netnsid") else None
                if peer is not None and peer["master"] == bridge_b:
                    return {"changed": False, "veth_a": port["name"], "veth_b": peer["name"]}
            veth_a, veth_b = veth_names(bridge_a, bridge_b)
            taken = [name for name in (veth_a, veth_b) if any(link["name"] == name for link in links)]
            if taken:
                raise Conflict("interface", taken[0], f"exists and does not connect {bridge_a} and {bridge_b}")
            await self.kernel.request(f"create veth {veth_a}", "link", "add", ifname=veth_a, kind="veth",
                                      peer=veth_b)
            try:
                for end, bridge in ((veth_a, a), (veth_b, b)):
                    index = (await self.kernel.require_link(end))["index"]
                    await self.kernel.request(f"attach {end} to {bridge.get('ifname')}", "link", "set", index=index,
                                              master=bridge["index"], state="up")
            except BaseException:
                await self.kernel.remove_quietly(veth_a)  # deleting one end deletes the pair
                raise
        return {"changed": True, "veth_a": veth_a, "veth_b": veth_b}

    @implements(net.BRIDGE_ADD_PORT)
    async def add_port(self, bridge: str, interface: str) -> dict[str, Any]:
        """Make ``interface`` a port of ``bridge``. Idempotent: already its port is changed false.

        Raises NotFound (bridge, interface), Conflict (a port of another bridge, or a managed
        tap recorded on another bridge), KernelError (e.g. a bridge into itself).
        """
        async with self.managed.lock:
            br = await self.kernel.require_bridge(bridge)
            port = await self.kernel.require_link(interface)
            master = port.get("master")
            if master == br["index"]:
                return {"changed": False}
            tap = self.managed.taps.get(interface)
            if tap is not None and tap.get("bridge") != bridge:
                raise Conflict("tap", interface, f"is a managed tap of bridge {tap.get('bridge')}")
            if master:
                where = await self.kernel.master_of(port) or f"link {master}"
                raise Conflict("interface", interface, f"is a port of {where}; remove it there first")
            await self.kernel.request(f"attach {interface} to {bridge}", "link", "set", index=port["index"],
                                      master=br["index"])
        return {"changed": True}

    @implements(net.BRIDGE_REMOVE_PORT)
    async def remove_port(self, bridge: str, interface: str) -> dict[str, Any]:
        """Take ``interface`` out of ``bridge``. Idempotent: not its port is changed false.

        Raises NotFound (bridge, interface), Conflict (a managed tap: net.vm.delete_tap
        removes it), KernelError.
        """
        async with self.managed.lock:
            br = await self.kernel.require_bridge(bridge)
            port = await self.kernel.require_link(interface)
            if port.get("master") != br["index"]:
                return {"changed": False}
            if interface in self.managed.taps:
                raise Conflict("tap", interface, "is a managed tap; net.vm.delete_tap removes it")
            await self.kernel.request(f"detach {interface} from {bridge}", "link", "set", index=port["index"],
                                      master=0)
        return {"changed": True}
