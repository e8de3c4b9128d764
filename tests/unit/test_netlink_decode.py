"""netlink.walk and netlink.Decoder on hand-built messages (no kernel needed)."""

from __future__ import annotations

import errno
import struct

import pytest

from osd.backends.native.netlink import (
    NLA_TYPE_MASK,
    Decoder,
    NetlinkError,
    attr,
    attr_u32,
    walk,
)

NESTED = 0x8000  # NLA_F_NESTED, as recent kernels set it on nested attributes
FAMILY_HEADER = struct.pack("=BxHiII", 0, 1, 7, 0, 0)  # an ifinfomsg with index 7


def message(*attrs: bytes, header: bytes = FAMILY_HEADER) -> bytes:
    body = header + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), 16, 0, 1, 0) + body


def decoder() -> Decoder:
    return Decoder(32, [(20, "i")], [((3,), "z"), ((4,), "I"), ((18, 1), "z"), ((1,), "s")])


def test_walk_reads_only_wanted_attributes_and_nests() -> None:
    msg = message(attr(3, b"eth0\0"), attr_u32(9, 1), attr(18 | NESTED, attr(1, b"veth\0") + attr_u32(2, 5)))
    found = walk(msg, 32, len(msg), {3: None, 18: {1: None}})
    assert set(found) == {(3,), (18, 1)}
    start, length = found[(18, 1)]
    assert msg[start : start + length] == b"veth\0"
    assert NLA_TYPE_MASK & (18 | NESTED) == 18


def test_walk_rejects_a_bad_length() -> None:
    msg = message(attr_u32(4, 1500))
    broken = msg[:32] + struct.pack("=HH", 200, 4) + msg[36:]
    with pytest.raises(NetlinkError) as caught:
        walk(broken, 32, len(broken), {4: None})
    assert caught.value.errno == errno.EPROTO


def test_decoder_reads_fields_and_reuses_layouts() -> None:
    decode = decoder()
    for mtu in (1500, 9000, 1280):  # same layout: answered from the remembered template
        msg = message(attr(3, b"va0\0"), attr_u32(4, mtu), attr(18, attr(1, b"veth\0")), attr(1, bytes(6)))
        assert decode(msg, 0, len(msg)) == (7, b"va0", mtu, b"veth", bytes(6))


def test_decoder_notices_a_different_layout_of_the_same_length() -> None:
    decode = decoder()
    first = message(attr(3, b"va0\0"), attr_u32(4, 1500), attr_u32(9, 0))
    moved = message(attr(3, b"va0\0"), attr_u32(9, 0), attr_u32(4, 1400))
    other = message(attr(3, b"va0\0"), attr_u32(10, 3), attr_u32(9, 0))  # no MTU at all
    assert len(first) == len(moved) == len(other)
    assert decode(first, 0, len(first)) == (7, b"va0", 1500, None, None)
    assert decode(moved, 0, len(moved)) == (7, b"va0", 1400, None, None)
    assert decode(other, 0, len(other)) == (7, b"va0", None, None, None)
    assert decode(first, 0, len(first)) == (7, b"va0", 1500, None, None)


def test_decoder_checks_nested_layouts_too() -> None:
    decode = decoder()
    kind = message(attr(3, b"a\0"), attr(18, attr(1, b"bridge\0")))
    data = message(attr(3, b"a\0"), attr(18, attr(2, b"bridge\0")))  # same sizes, no kind
    assert decode(kind, 0, len(kind))[3] == b"bridge"
    assert decode(data, 0, len(data))[3] is None


def test_decoder_at_an_offset_in_a_buffer() -> None:
    decode = decoder()
    one = message(attr(3, b"lo\0"), attr_u32(4, 65536))
    two = message(attr(3, b"lo\0"), attr_u32(4, 1500))
    buf = one + two
    assert decode(buf, 0, len(one))[2] == 65536
    assert decode(buf, len(one), len(two))[2] == 1500
