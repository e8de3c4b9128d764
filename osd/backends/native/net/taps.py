"""net.vm.*: persistent tap devices for VMs, each a port of its bridge, recorded and restored.

A tap is created with TUNSETIFF (IFF_TAP | IFF_NO_PI, plus IFF_MULTI_QUEUE when asked),
an owner uid and TUNSETPERSIST (pyroute2 does the ioctls), then given its MAC and MTU,
attached to its bridge and set up. Its record (managed.py) keeps the MAC the kernel chose
when none was asked for, so a re-created tap keeps its address.

At start, a recorded tap missing from the kernel is re-created, and one present but
attached to no bridge is re-attached to its recorded bridge (a bridge re-created at start
has lost its ports). Anything else that differs from the record is left alone and
reported by net.verify.
"""

from __future__ import annotations

import logging
from typing import Any

from ....errors import Conflict, InvalidParams, OsdError
from ....methods import net
from ..impl import Implementations, Service
from .kernel import Kernel, Message, kind_of
from .managed import Managed, Record, differences, given

implements = Implementations()
log = logging.getLogger("osd.net.taps")

IFLA_TUN_TYPE_TAP = 2
NO_OWNER = 0xFFFFFFFF  # the kernel's INVALID_UID: no owner set


def observed(msg: Message, bridge: str | None) -> dict[str, Any]:
    """What a tap record describes, as the kernel has it; ``bridge`` is its master's name."""
    data = ("linkinfo", "data")
    is_tap = kind_of(msg) == "tun" and msg.get((*data, "tun_type")) == IFLA_TUN_TYPE_TAP
    owner = msg.get((*data, "tun_owner"))
    return {
        "kind": "tap" if is_tap else kind_of(msg),
        "persist": bool(msg.get((*data, "tun_persist"))),
        "bridge": bridge,
        "mac": msg.get("address"),
        "mtu": msg.get("mtu"),
        "owner_uid": None if owner is None or owner == NO_OWNER else owner,
        "multi_queue": bool(msg.get((*data, "tun_multi_queue"))),
    }


def expectation(record: Record) -> dict[str, Any]:
    """The observed() values a record asks for: a recorded mtu of None matches any, a
    recorded owner_uid of None means no owner."""
    return {"kind": "tap", "persist": True, **given(record), "owner_uid": record["owner_uid"]}


def check_unicast(mac: str) -> None:
    """Raise InvalidParams unless ``mac`` can be a link's own address (the kernel refuses a
    multicast or all-zero one, after the tap would have been made)."""
    octets = bytes.fromhex(mac.replace(":", ""))
    if octets[0] & 1 or not any(octets):
        raise InvalidParams(f"{mac} is a multicast or all-zero address, not one a tap can have", "/mac")


class Taps(Service):
    namespace = "net"
    implementations = implements

    def __init__(self, kernel: Kernel, managed: Managed) -> None:
        self.kernel = kernel
        self.managed = managed

    async def start(self) -> None:
        """Re-create missing recorded taps, re-attach detached ones (see the module docstring)."""
        for name, record in sorted(self.managed.taps.items()):
            try:
                msg = await self.kernel.link(name)
                if msg is None:
                    await self._create(name, record)
                    log.info("re-created tap %s (recorded, missing from the kernel)", name)
                elif kind_of(msg) == "tun" and not msg.get("master"):
                    bridge = await self.kernel.link(record["bridge"])
                    if bridge is not None and kind_of(bridge) == "bridge":
                        await self.kernel.request(f"attach {name} to {record['bridge']}", "link", "set",
                                                  index=msg["index"], master=bridge["index"])
                        log.info("re-attached tap %s to bridge %s", name, record["bridge"])
            except OsdError as exc:
                log.error("cannot restore recorded tap %s: %s", name, exc.message)

    async def _present(self) -> dict[str, Message]:
        """The link of every recorded tap present in the kernel, by name (one request each:
        far cheaper than a dump on a node with thousands of links)."""
        links = {name: await self.kernel.link(name) for name in sorted(self.managed.taps)}
        return {name: msg for name, msg in links.items() if msg is not None}

    async def drift(self) -> list[dict[str, Any]]:
        """Recorded taps missing from the kernel (actual null) or differing from their record."""
        present = await self._present()
        drift = []
        for name, record in sorted(self.managed.taps.items()):
            if name not in present:
                drift.append({"kind": "tap", "name": name, "expected": record, "actual": None})
                continue
            msg = present[name]
            expected, actual = differences(expectation(record), observed(msg, await self.kernel.master_of(msg)))
            if expected:
                drift.append({"kind": "tap", "name": name, "expected": expected, "actual": actual})
        return drift

    @implements(net.VM_LIST)
    async def list(self) -> list[dict[str, Any]]:
        """Every recorded tap: {name, bridge (recorded), mac, mtu (the kernel's when present),
        owner_uid, multi_queue, state (operstate, or "absent"), present}. Read-only."""
        links = await self._present()
        result = []
        for name, record in sorted(self.managed.taps.items()):
            msg = links.get(name)
            result.append({
                "name": name,
                "bridge": record["bridge"],
                "mac": msg.get("address") if msg is not None else record["mac"],
                "mtu": msg.get("mtu") if msg is not None else record["mtu"],
                "owner_uid": record["owner_uid"],
                "multi_queue": record["multi_queue"],
                "state": str(msg.get("operstate") or "unknown").lower() if msg is not None else "absent",
                "present": msg is not None,
            })  # fmt: skip
        return result

    @implements(net.VM_CREATE_TAP)
    async def create_tap(self, name: str, bridge: str, mac: str | None = None, mtu: int | None = None,
                         owner_uid: int | None = None, multi_queue: bool | None = None) -> dict[str, Any]:
        """Create a persistent tap, attach it to ``bridge``, bring it up and record it.

        Idempotent: a recorded tap present with these settings is changed false (an absent
        mac or mtu matches any). Raises InvalidParams (a multicast or all-zero mac),
        NotFound("bridge"), Conflict (the name is taken by another link, an unrecorded tap, or
        a tap with other settings), KernelError (nothing is left behind then).
        """
        if mac is not None:
            check_unicast(mac)
        wanted = {"bridge": bridge, "mac": mac.lower() if mac else None, "mtu": mtu, "owner_uid": owner_uid,
                  "multi_queue": bool(multi_queue)}
        async with self.managed.lock:
            await self.kernel.require_bridge(bridge)
            msg = await self.kernel.link(name)
            if msg is not None:
                actual = observed(msg, await self.kernel.master_of(msg))
                if actual["kind"] != "tap" or name not in self.managed.taps:
                    what = "a tap osd did not create" if actual["kind"] == "tap" else f"a {actual['kind']} link"
                    raise Conflict("interface", name, f"exists as {what}")
                expected, differing = differences({**given(wanted), "owner_uid": owner_uid}, actual)
                if expected:
                    raise Conflict("tap", name, f"exists with {differing}, asked for {expected}")
                return {"changed": False, "name": name, "mac": actual["mac"]}
            record = await self._create(name, wanted)
            try:
                self.managed.put("taps", name, record)
            except BaseException:
                await self.kernel.remove_quietly(name)
                raise
        return {"changed": True, "name": name, "mac": record["mac"]}

    async def _create(self, name: str, record: Record) -> Record:
        """Create, configure and attach the tap of ``record``; the record with the MAC the
        tap got. Nothing is left on failure. A missing bridge leaves the tap unattached
        (only at start: create_tap checks the bridge first)."""
        flags = {"no_pi": 1, "multi_queue": 1 if record["multi_queue"] else 0}
        options = {"uid": record["owner_uid"]} if record["owner_uid"] is not None else {}
        await self.kernel.request(f"create tap {name}", "link", "add", ifname=name, kind="tuntap", mode="tap",
                                  ifr=flags, **options)
        try:
            index = (await self.kernel.require_link(name))["index"]
            changes: dict[str, Any] = {"state": "up"}
            if record["mac"]:
                changes["address"] = record["mac"]
            if record["mtu"]:
                changes["mtu"] = record["mtu"]
            bridge = await self.kernel.link(record["bridge"])
            if bridge is not None and kind_of(bridge) == "bridge":
                changes["master"] = bridge["index"]
            else:
                log.warning("tap %s: bridge %s is missing; the tap stays unattached", name, record["bridge"])
            await self.kernel.request(f"set up tap {name}", "link", "set", index=index, **changes)
            created = await self.kernel.require_link(name)
        except BaseException:
            await self.kernel.remove_quietly(name)
            raise
        return {**record, "mac": created.get("address")}

    @implements(net.VM_DELETE_TAP)
    async def delete_tap(self, name: str) -> dict[str, Any]:
        """Delete a recorded tap and forget it. Idempotent: no such tap is changed false; a
        recorded tap already gone from the kernel is forgotten (changed true).

        Raises Conflict for a link of that name osd did not record (it is not touched).
        """
        async with self.managed.lock:
            record = self.managed.taps.get(name)
            msg = await self.kernel.link(name)
            if record is None:
                if msg is None:
                    return {"changed": False}
                raise Conflict("interface", name, "exists and is not a tap osd created; not deleted")
            self.managed.put("taps", name, None)
            if msg is not None and kind_of(msg) == "tun":
                try:
                    await self.kernel.request(f"delete tap {name}", "link", "del", index=msg["index"])
                except BaseException:
                    self.managed.put("taps", name, record)
                    raise
            elif msg is not None:
                log.warning("tap %s: the name now belongs to a %s link, which is left alone", name, kind_of(msg))
        return {"changed": True}
