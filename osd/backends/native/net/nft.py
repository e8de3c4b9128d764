"""libnftables through its official JSON binding (python3-nftables), on one dedicated thread.

One ``run()`` is one nftables transaction: libnftables commits every command of a JSON
document atomically, or none of them. Failures become KernelError carrying the errno
libnftables reports and its error text as ``detail``.

Why a thread of its own: a listing of a 1000-rule ruleset takes ~20 ms of C code, which
would stall the event loop; ctypes releases the GIL, so the loop keeps serving meanwhile.
A libnftables context works in the network namespace of the thread that created it, so
the context is created on that worker thread, inside the daemon's own process (every
thread of the daemon shares its namespace). One worker also serialises all use of the
context, which is not thread-safe.

Echo output is never used: with echo on, a ``list`` returns two JSON documents, and an
echoed ``add`` costs ~13 ms on a 1000-rule table against ~0.5 ms without (it refills the
rule cache). The daemon finds its rules by their comment, never by a handle it kept.

``generation()`` reads the ruleset's generation id (NFT_MSG_GETGEN, over the project's
own netlink socket): the kernel bumps it on every committed transaction in the
namespace, so a listing taken at one generation is still exact while it is unchanged.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import socket
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ....errors import KernelError, NotSupported
from ..netlink import Buffer, NetlinkError, NetlinkSocket, walk

try:
    import nftables
except ImportError:  # pragma: no cover - depends on the host's packages
    nftables = None

Command = dict[str, Any]

# libnftables reports kernel errors by strerror text ("Could not process rule: No such
# file or directory"); map the text back to its errno.
_ERRNO_BY_TEXT = {os.strerror(code): code for code in sorted(errno.errorcode, reverse=True)}
_ERROR_LINE = re.compile(r"Error: (.*)$", re.MULTILINE)

# include/uapi/linux/netfilter/nfnetlink.h and nf_tables.h
NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWTABLE = 0
NFT_MSG_GETTABLE = 1
NFT_MSG_GETGEN = 16
NFTA_TABLE_NAME = 1
NFTA_GEN_ID = 1
# include/uapi/linux/netfilter.h: NFPROTO_* as nft names them
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
_NFGENMSG = struct.Struct("=BBH")  # family, version, res_id (big endian; 0 here)
_BE32 = struct.Struct(">I")


def errno_from_text(text: str) -> int:
    """The errno named in a libnftables error text, EINVAL when it names none.

    The text looks like "Error: Could not process rule: No such file or directory" or
    "Error: No such file or directory; did you mean table 'osd' in family inet?".
    """
    for message in _ERROR_LINE.findall(text):
        named = [known for known in _ERRNO_BY_TEXT if known in message]
        if named:
            return _ERRNO_BY_TEXT[max(named, key=len)]
    return errno.EINVAL


class Nft:
    """An nftables JSON command runner; ``close()`` stops its thread."""

    def __init__(self) -> None:
        if nftables is None:
            raise NotSupported("the nftables Python binding is not installed (Debian package python3-nftables)")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nft")
        self._ctx: Any = None
        self._text_ctx: Any = None
        self._netlink: NetlinkSocket | None = None

    async def generation(self) -> int:
        """The ruleset generation id of this namespace; raises KernelError."""
        body = _NFGENMSG.pack(socket.AF_UNSPEC, 0, 0)
        try:
            rows = await self._socket().request("nftables generation", (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
                                               body, generation_id, dump=False)
        except NetlinkError as exc:
            raise KernelError(exc.errno or errno.EIO, exc.op, exc.detail) from exc
        if not rows:
            raise KernelError(errno.EPROTO, "nftables generation", "no NFTA_GEN_ID in the reply")
        return rows[0]

    async def tables(self) -> list[tuple[str, str]]:
        """(family, name) of every table, in the kernel's order (the order of a ``list
        ruleset``), from one netlink dump; raises KernelError, and KeyError for a family
        nft has no name for."""
        try:
            rows = await self._socket().request("list tables", (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
                                                _NFGENMSG.pack(socket.AF_UNSPEC, 0, 0), table_key)
        except NetlinkError as exc:
            raise KernelError(exc.errno or errno.EIO, exc.op, exc.detail) from exc
        return [(FAMILIES[family], name) for family, name in rows]

    async def run(self, commands: list[Command], op: str) -> list[dict[str, Any]]:
        """Run ``commands`` as one transaction; the output objects (for list commands).

        Raises KernelError(errno, op, detail=libnftables' error text) when it fails;
        nothing of a failed transaction is applied.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, commands, op)

    async def text(self, command: str, op: str) -> str:
        """A listing command's text output, with handles and numeric priorities, without the
        elements of named sets (terse: a blocklist set can hold 100k of them); raises KernelError."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._text, command, op)

    def _text(self, command: str, op: str) -> str:
        if self._text_ctx is None:
            self._text_ctx = nftables.Nftables()
            self._text_ctx.set_handle_output(True)
            self._text_ctx.set_numeric_prio_output(True)
            self._text_ctx.set_terse_output(True)
        rc, output, error = self._text_ctx.cmd(command)
        if rc != 0:
            raise KernelError(errno_from_text(error), op, error.strip())
        return str(output)

    def _run(self, commands: list[Command], op: str) -> list[dict[str, Any]]:
        if self._ctx is None:
            self._ctx = nftables.Nftables()
            self._ctx.set_json_output(True)  # JSON listings always carry handles
        rc, output, error = self._ctx.cmd(json.dumps({"nftables": commands}))
        if rc != 0:
            detail = error.strip()
            raise KernelError(errno_from_text(detail), op, detail)
        return json.loads(output)["nftables"] if output else []

    def _socket(self) -> NetlinkSocket:
        if self._netlink is None:
            self._netlink = NetlinkSocket(NETLINK_NETFILTER, rcvbuf=1 << 18)
        return self._netlink

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._netlink is not None:
            self._netlink.close()


def generation_id(buf: Buffer, off: int, length: int) -> int | None:
    span = walk(buf, off + 16 + _NFGENMSG.size, off + length, {NFTA_GEN_ID: None}).get((NFTA_GEN_ID,))
    return _BE32.unpack_from(buf, span[0])[0] if span else None


def table_key(buf: Buffer, off: int, length: int) -> tuple[int, str] | None:
    """(family number, name) of a table message (a dump row or a notification)."""
    span = walk(buf, off + 16 + _NFGENMSG.size, off + length, {NFTA_TABLE_NAME: None}).get((NFTA_TABLE_NAME,))
    if span is None:
        return None
    start, size = span
    return buf[off + 16], bytes(buf[start:start + size]).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
