"""net.conntrack, net.conntrack.stats, net.conntrack.flush: the kernel's connection tracking
table over NETLINK_NETFILTER, with pyroute2's AsyncNFCTSocket.

Why pyroute2: its AsyncNFCTSocket (0.9) runs on the daemon's own event loop; dumps,
per-CPU statistics, the global count and flushes were checked against ``conntrack -L``
on this kernel, so no thread or reader of our own is needed. Each call opens its own
socket: a dump cut short at ``limit`` then leaves nothing unread behind, and concurrent
calls never share a socket (one dump at a time per netlink socket).

Zones: a dump asks the kernel for one zone, and entries are filtered here too, because
the kernel treats a zone-0 filter as "every zone". A flush of one zone deletes that
zone's entries one by one (about 1 ms each): the kernel's flush filtered by zone exists
only on recent kernels, and an older one would ignore the filter and flush every zone.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import AsyncIterator
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_CTNETLINK
from pyroute2.netlink.nfnetlink.nfctsocket import (
    IPCTNL_MSG_CT_DELETE, AsyncNFCTSocket, nfct_msg, terminate_error_msg,
)

from ....errors import KernelError, NotSupported
from ....methods import net
from ..impl import Implementations, Service

implements = Implementations()

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "icmpv6", 132: "sctp", 136: "udplite"}
# enum tcp_conntrack (include/uapi/linux/netfilter/nf_conntrack_tcp.h)
TCP_STATES = ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
              "CLOSE", "SYN_SENT2"]
# enum ip_conntrack_status bits worth showing (include/uapi/linux/netfilter/nf_conntrack_common.h)
STATUS_BITS = {1: "EXPECTED", 2: "SEEN_REPLY", 4: "ASSURED", 8: "CONFIRMED", 16: "SRC_NAT", 32: "DST_NAT",
               512: "DYING", 1024: "FIXED_TIMEOUT", 8192: "HELPER", 16384: "OFFLOAD"}
FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}


@contextlib.asynccontextmanager
async def _netlink(op: str) -> AsyncIterator[AsyncNFCTSocket]:
    """A fresh ctnetlink socket for every family; netlink failures become osd errors."""
    try:
        async with AsyncNFCTSocket(nfgen_family=socket.AF_UNSPEC) as sock:
            yield sock
    except NetlinkError as exc:
        raise KernelError(exc.code, op) from exc
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
            raise NotSupported("this kernel has no ctnetlink (NETLINK_NETFILTER conntrack)") from exc
        raise KernelError(exc.errno or errno.EIO, op) from exc


def _tuple(msg: Any, name: str) -> dict[str, Any]:
    tup = msg.get(name)
    if tup is None:
        return {"src": "", "dst": "", "sport": None, "dport": None}
    ip, proto = tup.get("CTA_TUPLE_IP"), tup.get("CTA_TUPLE_PROTO")
    return {
        "src": ip.get("CTA_IP_V4_SRC") or ip.get("CTA_IP_V6_SRC") or "",
        "dst": ip.get("CTA_IP_V4_DST") or ip.get("CTA_IP_V6_DST") or "",
        "sport": proto.get("CTA_PROTO_SRC_PORT"),
        "dport": proto.get("CTA_PROTO_DST_PORT"),
    }


def entry(msg: Any) -> dict[str, Any]:
    """One conntrack entry: the original direction's tuple, the reply tuple, state, zone, mark."""
    number = msg.get(("CTA_TUPLE_ORIG", "CTA_TUPLE_PROTO", "CTA_PROTO_NUM"))
    tcp_state = msg.get(("CTA_PROTOINFO", "CTA_PROTOINFO_TCP", "CTA_PROTOINFO_TCP_STATE"))
    status = msg.get("CTA_STATUS") or 0
    return {
        "family": FAMILIES.get(msg["nfgen_family"], str(msg["nfgen_family"])),
        "proto": PROTOCOLS.get(number, str(number)),
        **_tuple(msg, "CTA_TUPLE_ORIG"),
        "reply": _tuple(msg, "CTA_TUPLE_REPLY"),
        "state": TCP_STATES[tcp_state] if tcp_state is not None and tcp_state < len(TCP_STATES) else None,
        "status": [name for bit, name in STATUS_BITS.items() if status & bit],
        "zone": msg.get("CTA_ZONE") or 0,
        "mark": msg.get("CTA_MARK") or 0,
        "timeout": msg.get("CTA_TIMEOUT"),
    }


async def _dump(sock: AsyncNFCTSocket, zone: int | None) -> AsyncIterator[Any]:
    async for msg in await sock.dump(zone=zone):
        if zone is None or (msg.get("CTA_ZONE") or 0) == zone:
            yield msg


class ConntrackService(Service):
    """The conntrack table of the daemon's network namespace."""

    namespace = "net"
    implementations = implements

    async def checks(self) -> list[dict[str, Any]]:
        try:
            stats = await self.stats()
        except (KernelError, NotSupported) as exc:
            return [{"name": "conntrack netlink", "ok": False, "detail": exc.message}]
        return [{"name": "conntrack netlink", "ok": True,
                 "detail": f"{stats['count']} entries, max {stats['max']} (nf_conntrack_max is host-wide)"}]

    @implements(net.CONNTRACK)
    async def conntrack(self, zone: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries of every family, of one zone when given, at most ``limit``; read-only."""
        entries: list[dict[str, Any]] = []
        async with _netlink("conntrack dump") as sock:
            async for msg in _dump(sock, zone):
                entries.append(entry(msg))
                if limit is not None and len(entries) >= limit:
                    break
        return entries

    @implements(net.CONNTRACK_STATS)
    async def stats(self) -> dict[str, Any]:
        """count and max (``CTA_STATS_GLOBAL_*``) and the kernel's per-CPU counters."""
        async with _netlink("conntrack statistics") as sock:
            counts = (await sock.count())[0]
            cpus = [{"cpu": msg["res_id"], **{name[len("CTA_STATS_"):].lower(): value for name, value in msg["attrs"]}}
                    for msg in await sock.stat()]
        return {"count": counts.get("CTA_STATS_GLOBAL_ENTRIES"), "max": counts.get("CTA_STATS_GLOBAL_MAX_ENTRIES"),
                "cpus": cpus}

    @implements(net.CONNTRACK_FLUSH)
    async def flush(self, zone: int | None = None) -> dict[str, Any]:
        """Delete every entry, or those of one zone; ``flushed`` counts them (for a full
        flush: the entries present just before it). Flushing an empty table is changed false."""
        async with _netlink("conntrack flush") as sock:
            if zone is None:
                flushed = (await sock.count())[0].get("CTA_STATS_GLOBAL_ENTRIES") or 0
                await sock.flush()
            else:
                flushed = 0
                for msg in [m async for m in _dump(sock, zone)]:
                    flushed += await _delete(sock, msg, zone)
        return {"changed": flushed > 0, "flushed": flushed}


async def _delete(sock: AsyncNFCTSocket, found: Any, zone: int) -> int:
    """Delete one dumped entry by its original tuple; 1 if deleted, 0 if it was already gone."""
    msg = nfct_msg.create_from(tuple_orig={"attrs": found.get("CTA_TUPLE_ORIG")["attrs"]}, zone=zone)
    msg["nfgen_family"] = found["nfgen_family"]  # a tuple is looked up in its own family
    try:
        async for _ in await sock.nlm_request(msg, IPCTNL_MSG_CT_DELETE | (NFNL_SUBSYS_CTNETLINK << 8),
                                              msg_flags=NLM_F_REQUEST | NLM_F_ACK, terminate=terminate_error_msg):
            pass
    except NetlinkError as exc:
        if exc.code == errno.ENOENT:  # expired meanwhile
            return 0
        raise
    return 1
