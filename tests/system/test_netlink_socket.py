"""NetlinkSocket against the kernel: refusals carry errno and the kernel's reason, and a
dump abandoned halfway leaves the socket ready for the next request."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from pathlib import Path

from support.netlab import ip_batch, run_in_netns, scratch_netns

HERE = str(Path(__file__).resolve().parent)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a network namespace"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's ip"),
]

RTM_GETLINK = 18
LINKS = 200  # several dump datagrams' worth: a link message is over 1 KiB


class Abandon(Exception):
    pass


async def refusal() -> dict[str, Any]:
    from osd.backends.native.netlink import NetlinkError, NetlinkSocket

    sock = NetlinkSocket()
    try:
        # Strict checking refuses a link dump whose header carries a change mask.
        await sock.request("dump links", RTM_GETLINK, struct.pack("=BxHiII", 0, 0, 0, 0, 1), lambda *_: 1)
    except NetlinkError as exc:
        after = await sock.request("dump links", RTM_GETLINK, bytes(16), lambda *_: 1)
        return {"errno": exc.errno, "op": exc.op, "detail": exc.detail, "links_after": len(after)}
    finally:
        sock.close()
    return {}


async def abandoned_dump() -> dict[str, Any]:
    from osd.backends.native.netlink import NetlinkSocket

    seen = []

    def give_up(buf: Any, off: int, length: int) -> int:
        seen.append(off)
        if len(seen) == 10:
            raise Abandon
        return 1

    sock = NetlinkSocket()
    try:
        with pytest.raises(Abandon):
            await sock.request("dump links", RTM_GETLINK, bytes(16), give_up)
        rows = await sock.request("dump links", RTM_GETLINK, bytes(16), lambda *_: 1)
    finally:
        sock.close()
    return {"links": len(rows)}


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    with scratch_netns("nlsock") as name:
        ip_batch(name, [f"link add s{i} type veth peer name t{i}" for i in range(LINKS // 2)])
        yield name


def test_refusal_carries_errno_op_and_reason(netns: str) -> None:
    report = run_in_netns(netns, "test_netlink_socket", "refusal", path=[HERE])
    assert report["errno"] == 22 and report["op"] == "dump links"
    assert "header" in report["detail"]  # the kernel's extended-ack text
    assert report["links_after"] == LINKS + 1  # lo


def test_abandoned_dump_leaves_the_socket_usable(netns: str) -> None:
    assert run_in_netns(netns, "test_netlink_socket", "abandoned_dump", path=[HERE]) == {"links": LINKS + 1}
