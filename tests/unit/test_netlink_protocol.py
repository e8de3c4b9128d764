"""NetlinkSocket's reply handling, against a fake kernel on a datagram socketpair.

These cover what the real kernel produces only by chance (an interrupted dump) or by
mistake (a stale reply), besides multipart dumps and errors.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import Callable

from osd.backends.native.netlink import NetlinkError, NetlinkSocket, attr

NLMSG_ERROR, NLMSG_DONE = 2, 3
MULTI, INTR, ACK_TLVS = 0x2, 0x10, 0x200
Script = Callable[[int], list[bytes]]  # request seq -> datagrams to answer with


def msg(kind: int, seq: int, payload: bytes = b"", flags: int = MULTI) -> bytes:
    data = struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, 0) + payload
    return data + b"\0" * (-len(data) % 4)


def row(seq: int, value: int, flags: int = MULTI) -> bytes:
    return msg(16, seq, struct.pack("=I", value), flags)


def done(seq: int, code: int = 0, flags: int = MULTI) -> bytes:
    return msg(NLMSG_DONE, seq, struct.pack("=i", code), flags)


def value(buf: object, off: int, length: int) -> int:
    return struct.unpack_from("=I", buf, off + 16)[0]  # type: ignore[arg-type, no-any-return]


def exchange(*scripts: Script, dump: bool = True) -> tuple[list[int] | NetlinkError, int]:
    """Make one request answered by the scripts in turn (one per retry); return the rows
    (or the error raised) and how many requests the kernel saw."""

    async def run() -> tuple[list[int] | NetlinkError, int]:
        ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        ours.setblocking(False)
        kernel.setblocking(False)
        loop = asyncio.get_running_loop()
        requests = 0

        async def answer() -> None:
            nonlocal requests
            for script in scripts:
                request = await loop.sock_recv(kernel, 65536)
                requests += 1
                for datagram in script(struct.unpack_from("=I", request, 8)[0]):
                    kernel.send(datagram)

        server = asyncio.create_task(answer())
        nl = NetlinkSocket(sock=ours)
        try:
            result: list[int] | NetlinkError = await nl.request("test op", 18, b"", value, dump=dump)
        except NetlinkError as exc:
            result = exc
        finally:
            server.cancel()
            nl.close()
            kernel.close()
        return result, requests

    return asyncio.run(run())


def test_multipart_dump_across_datagrams() -> None:
    rows, requests = exchange(lambda s: [row(s, 1) + row(s, 2), row(s, 3), done(s)])
    assert (rows, requests) == ([1, 2, 3], 1)


def test_single_reply_without_multi_ends_the_request() -> None:
    assert exchange(lambda s: [row(s, 7, flags=0)], dump=False) == ([7], 1)


def test_replies_to_other_requests_are_skipped() -> None:
    rows, _ = exchange(lambda s: [row(s - 1, 99) + done(s - 1), row(s, 1), done(s)])
    assert rows == [1]


def test_interrupted_dump_is_repeated() -> None:
    first: Script = lambda s: [row(s, 1, MULTI | INTR), done(s)]  # noqa: E731
    second: Script = lambda s: [row(s, 2), done(s)]  # noqa: E731
    assert exchange(first, second) == ([2], 2)


def test_interrupted_flag_on_done_counts_too() -> None:
    first: Script = lambda s: [row(s, 1), done(s, flags=MULTI | INTR)]  # noqa: E731
    assert exchange(first, lambda s: [row(s, 2), done(s)]) == ([2], 2)


def test_dump_interrupted_every_time_gives_up() -> None:
    always: Script = lambda s: [row(s, 1, MULTI | INTR), done(s)]  # noqa: E731
    error, requests = exchange(*[always] * 5)
    assert isinstance(error, NetlinkError) and error.errno == errno.EINTR and requests == 5


def test_error_carries_errno_op_and_kernel_message() -> None:
    def refuse(seq: int) -> list[bytes]:
        echoed = struct.pack("=IHHII", 16, 18, 0x301, seq, 0)
        tlv = attr(1, b"Invalid header for link dump\0")
        return [msg(NLMSG_ERROR, seq, struct.pack("=i", -errno.EINVAL) + echoed + tlv, ACK_TLVS)]

    error, _ = exchange(refuse)
    assert isinstance(error, NetlinkError)
    assert (error.errno, error.op, error.detail) == (errno.EINVAL, "test op", "Invalid header for link dump")
    assert "test op" in str(error)


def test_failed_done_raises() -> None:
    error, _ = exchange(lambda s: [row(s, 1), done(s, -errno.ENOBUFS)])
    assert isinstance(error, NetlinkError) and error.errno == errno.ENOBUFS


def test_truncated_message_is_a_protocol_error() -> None:
    error, _ = exchange(lambda s: [row(s, 1)[:-4], done(s)])
    assert isinstance(error, NetlinkError) and error.errno == errno.EPROTO
