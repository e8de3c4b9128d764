"""Pure parts of the native net services: resolv.conf, /proc/cmdline, route requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from osd.backends.native.net.dns import parse_resolv_conf, read_dns
from osd.backends.native.net.managed import differences, given
from osd.backends.native.net.routes import RouteSpec, table_number
from osd.backends.native.net.system import cmdline_words, network_params
from osd.errors import InvalidParams


# ---------------------------------------------------------------- resolv.conf
def test_resolv_conf_as_glibc_reads_it() -> None:
    parsed = parse_resolv_conf(
        "# comment\n; another\nnameserver 192.0.2.1\nnameserver 2001:db8::1 # trailing\n"
        "search a.example b.example\ndomain c.example\noptions ndots:3\noptions rotate edns0\n"
        "nameserver\n   \nsortlist 192.0.2.0/255.255.255.0\n"
    )
    assert parsed.nameservers == ("192.0.2.1", "2001:db8::1")
    assert parsed.search == ("c.example",)  # the last of search/domain wins
    assert parsed.options == ("ndots:3", "rotate", "edns0")


def test_search_after_domain_wins() -> None:
    assert parse_resolv_conf("domain c.example\nsearch a.example b.example\n").search == ("a.example", "b.example")


def test_resolved_stub_is_followed_to_the_real_servers(tmp_path: Path) -> None:
    stub, real = tmp_path / "resolv.conf", tmp_path / "resolved.conf"
    stub.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    assert read_dns(stub, real)["source"] == str(stub)  # resolved's file absent: the stub is what is in effect
    real.write_text("nameserver 192.0.2.53\nsearch corp.example\n")
    assert read_dns(stub, real) == {"nameservers": ["192.0.2.53"], "search": ["corp.example"], "options": [],
                                    "source": str(real)}


def test_non_stub_resolv_conf_is_used_as_is(tmp_path: Path) -> None:
    conf, real = tmp_path / "resolv.conf", tmp_path / "resolved.conf"
    conf.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.9\n")
    real.write_text("nameserver 198.51.100.1\n")
    assert read_dns(conf, real)["nameservers"] == ["127.0.0.53", "192.0.2.9"]


def test_missing_resolv_conf_is_empty(tmp_path: Path) -> None:
    assert read_dns(tmp_path / "absent", tmp_path / "absent2") == {
        "nameservers": [], "search": [], "options": [], "source": str(tmp_path / "absent")}


# ---------------------------------------------------------------- /proc/cmdline
def test_cmdline_words_quotes_and_init_arguments() -> None:
    line = 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 ip=192.0.2.5::192.0.2.1:255.255.255.0:host:eth0:off ' \
           'acpi_osi="Windows 2009" quiet -- ip=not-for-the-kernel\n'
    assert cmdline_words(line) == ["BOOT_IMAGE=/vmlinuz", "root=/dev/vda1",
                                   "ip=192.0.2.5::192.0.2.1:255.255.255.0:host:eth0:off",
                                   "acpi_osi=Windows 2009", "quiet"]


def test_network_params() -> None:
    line = ("root=/dev/vda1 ip=dhcp ip=eth1:dhcp6 net.ifnames=0 biosdevname=0 ipv6.disable=1 rd.neednet "
            "nameserver=192.0.2.53 ifname=lan0:52:54:00:12:34:56 vlan=eth0.5:eth0 rd.net.timeout.carrier=5 "
            "console=ttyS0 net.ifnames=1")
    assert network_params(line) == {
        "ip": ["dhcp", "eth1:dhcp6"], "net.ifnames": "1", "biosdevname": "0", "ipv6.disable": "1",
        "rd.neednet": True, "nameserver": ["192.0.2.53"], "ifname": ["lan0:52:54:00:12:34:56"],
        "vlan": ["eth0.5:eth0"], "rd.net.timeout.carrier": "5",
    }
    assert network_params("console=ttyS0 quiet") == {}


# ---------------------------------------------------------------- route requests
def test_route_family_comes_from_dst_gateway_or_family() -> None:
    assert RouteSpec("198.51.100.0/24").family == "inet"
    assert RouteSpec("2001:db8::/32").family == "inet6"
    assert RouteSpec("default", gateway="2001:db8::1").family == "inet6"
    assert RouteSpec("default", family="inet6").family == "inet6"
    assert RouteSpec("default").family == "inet"


@pytest.mark.parametrize(("spec", "path"), [
    ({"dst": "198.51.100.0/24", "gateway": "2001:db8::1"}, "/dst"),
    ({"dst": "2001:db8::/32", "family": "inet"}, "/dst"),
    ({"dst": "default", "gateway": "192.0.2.1", "family": "inet6"}, "/gateway"),
])  # fmt: skip
def test_family_mismatch_is_invalid_params(spec: dict[str, str], path: str) -> None:
    with pytest.raises(InvalidParams) as err:
        RouteSpec(**spec)
    assert err.value.code == -32602 and err.value.data["path"] == path
    assert "families disagree" in err.value.data["reason"]


def test_host_bits_are_invalid_params() -> None:
    with pytest.raises(InvalidParams, match="not a network"):
        RouteSpec("198.51.100.7/24")


def test_route_netlink_keywords() -> None:
    assert RouteSpec("198.51.100.0/24", gateway="192.0.2.1", metric=5, table=100).netlink(oif=3) == {
        "family": 2, "dst": "198.51.100.0", "dst_len": 24, "table": 100, "gateway": "192.0.2.1", "oif": 3,
        "priority": 5}
    assert RouteSpec("default", family="inet6").netlink(oif=None) == {"family": 10, "dst_len": 0, "table": 254}
    assert RouteSpec("192.0.2.9").netlink(None)["dst_len"] == 32


def test_default_metrics_and_tables() -> None:
    assert RouteSpec("2001:db8::/32").effective_metric == 1024
    assert RouteSpec("198.51.100.0/24").effective_metric == 0
    assert [table_number(t) for t in (None, "main", "local", "default", 7)] == [254, 254, 255, 253, 7]


# ---------------------------------------------------------------- record comparison
def test_differences_and_given() -> None:
    assert given({"a": 1, "b": None, "c": False}) == {"a": 1, "c": False}
    assert differences({"a": 1, "c": False}, {"a": 1, "c": True, "d": 4}) == ({"c": False}, {"c": True})
    assert differences({"a": 1}, {"a": 1}) == ({}, {})
