"""The daemon's nftables model: table ``inet osd``, its four chains, and the entries it manages.

Entries are values built from a method's params (validated here: family agreement and
the like raise InvalidParams before anything runs). Each has

- an identity (``key``): the match (what traffic it applies to). Its id is derived from
  the key (``fw-``/``dnat-``/``snat-`` + 16 hex of its sha256), so adding the same rule
  twice yields the same id, and the same key with a different target or comment is a
  conflict;
- its placements: the (chain, expression) pairs it puts in the kernel, each rule carrying
  the id as its nftables comment, which is how the daemon finds its rules again.

Expressions are written in the exact form ``list`` returns them (checked by the system
tests), so a listed rule can be compared with the expected one to detect drift.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from typing import Any, ClassVar

from ....errors import InvalidParams

FAMILY = "inet"
TABLE = "osd"
Expr = list[dict[str, Any]]
Command = dict[str, Any]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# name -> (type, hook, priority). DNAT in prerouting and in output (so the host itself can
# use a forward), SNAT in postrouting; priorities are nft's dstnat/srcnat/filter.
CHAINS: dict[str, tuple[str, str, int]] = {
    "input": ("filter", "input", 0),
    "prerouting": ("nat", "prerouting", -100),
    "output": ("nat", "output", -100),
    "postrouting": ("nat", "postrouting", 100),
}

_ICMP = ["destination-unreachable", "time-exceeded", "parameter-problem", "echo-request"]
# RFC 4890's essentials for a host: errors, echo, neighbour and router discovery, MLD.
_ICMPV6 = ["destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem", "echo-request",
           "mld-listener-query", "nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit",
           "nd-neighbor-advert"]


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


ACCEPT: dict[str, Any] = {"accept": None}

# With input_policy "drop" the input chain starts with these, tagged "osd:<name>".
BASE_RULES: dict[str, Expr] = {
    "osd:established": [_match({"ct": {"key": "state"}}, ["established", "related"], "in"), ACCEPT],
    "osd:loopback": [_match(_meta("iifname"), "lo"), ACCEPT],
    "osd:icmp": [_match(_payload("icmp", "type"), {"set": _ICMP}), ACCEPT],
    "osd:icmpv6": [_match(_payload("icmpv6", "type"), {"set": _ICMPV6}), ACCEPT],
    # DHCPv6 replies come from a link-local server to a multicast request: not "related".
    "osd:dhcpv6-client": [_match(_payload("ip6", "saddr"), {"prefix": {"addr": "fe80::", "len": 10}}),
                          _match(_payload("udp", "dport"), 546), ACCEPT],
}


def _family_of(address: IpAddress | IpNetwork) -> str:
    return "inet" if address.version == 4 else "inet6"


def _l3(family: str) -> str:
    return "ip" if family == "inet" else "ip6"


def _address_match(field: str, net: IpNetwork) -> dict[str, Any]:
    right: Any = str(net.network_address)
    if net.prefixlen != net.max_prefixlen:
        right = {"prefix": {"addr": right, "len": net.prefixlen}}
    return _match(_payload("ip" if net.version == 4 else "ip6", field), right)


def _nfproto(family: str) -> dict[str, Any]:
    return _match(_meta("nfproto"), "ipv4" if family == "inet" else "ipv6")


def _network(value: str, path: str) -> IpNetwork:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise InvalidParams(f"{value!r} is not an IP network", path) from exc


def _address(value: str, path: str) -> IpAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError as exc:
        raise InvalidParams(f"{value!r} is not an IP address", path) from exc


def _agree(family: str | None, address: IpAddress | IpNetwork, path: str) -> str:
    """The family of ``address``; InvalidParams when ``family`` was given and differs."""
    actual = _family_of(address)
    if family is not None and family != actual:
        raise InvalidParams(f"{address} is IPv{address.version} but family is {family}", path)
    return actual


def _port(value: Any, path: str) -> int | str:
    """A port as an int, or a range as 'low-high' (a one-port range is the port)."""
    if isinstance(value, str) and "-" in value:
        low, high = (int(p) for p in value.split("-", 1))
    elif isinstance(value, (int, str)) and not isinstance(value, bool) and str(value).isdigit():
        low = high = int(value)
    else:
        raise InvalidParams(f"{value!r} is not a port or port range", path)
    if not 1 <= low <= high <= 65535:
        raise InvalidParams(f"{value!r} is not within 1-65535 with low <= high", path)
    return low if low == high else f"{low}-{high}"


def _proto(value: Any) -> str:
    if value not in ("tcp", "udp"):
        raise InvalidParams(f"proto must be tcp or udp, not {value!r}", "/proto")
    return str(value)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One managed object; subclasses define its identity and placements."""

    kind: ClassVar[str]
    prefix: ClassVar[str]
    identity: ClassVar[tuple[str, ...]]
    chains: ClassVar[tuple[str, ...]]  # where its rules may live

    @property
    def id(self) -> str:
        key = {name: getattr(self, name) for name in self.identity}
        digest = hashlib.sha256(json.dumps([self.kind, key], sort_keys=True).encode()).hexdigest()
        return f"{self.prefix}-{digest[:16]}"

    def params(self) -> dict[str, Any]:
        """The normalised params: what the state file records and results show."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, **self.params()}

    def differences(self, other: "Entry") -> str:
        fields = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]
        return ", ".join(f"{name} {getattr(self, name)!r}" for name in fields)

    def placements(self) -> list[tuple[str, Expr]]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class FirewallRule(Entry):
    """Accept inbound ``proto`` traffic to ``port`` (a port or 'low-high'), optionally only
    from ``source``, on ``interface``, or of one ``family``."""

    kind = "firewall-rule"
    prefix = "fw"
    chains = ("input",)
    identity = ("proto", "port", "source", "interface", "family")

    proto: str
    port: int | str
    source: str | None = None
    interface: str | None = None
    family: str | None = None
    comment: str | None = None

    @classmethod
    def from_params(cls, port: Any, proto: Any, source: str | None = None, interface: str | None = None,
                    family: str | None = None, comment: str | None = None) -> "FirewallRule":
        """Raises InvalidParams (e.g. a source whose family is not ``family``)."""
        net = _network(source, "/source") if source is not None else None
        if net is not None:
            family = _agree(family, net, "/source")
        return cls(_proto(proto), _port(port, "/port"), str(net) if net else None, interface, family, comment)

    def placements(self) -> list[tuple[str, Expr]]:
        expr: Expr = []
        if self.interface:
            expr.append(_match(_meta("iifname"), self.interface))
        if self.source:
            expr.append(_address_match("saddr", ipaddress.ip_network(self.source)))
        elif self.family:
            expr.append(_nfproto(self.family))
        port: Any = self.port
        if isinstance(port, str):
            port = {"range": [int(p) for p in port.split("-")]}
        expr += [_match(_payload(self.proto, "dport"), port), ACCEPT]
        return [("input", expr)]


@dataclasses.dataclass(frozen=True)
class Dnat(Entry):
    """Forward ``proto`` ``external_port`` (on ``external_address``, or any local address)
    to ``internal_address``:``internal_port``."""

    kind = "dnat"
    prefix = "dnat"
    chains = ("prerouting", "output")
    identity = ("proto", "external_port", "external_address", "interface", "family")

    proto: str
    external_port: int
    internal_address: str
    internal_port: int
    external_address: str | None = None
    interface: str | None = None
    family: str = "inet"
    comment: str | None = None

    @classmethod
    def from_params(cls, proto: Any, external_port: Any, internal_address: str, internal_port: Any,
                    external_address: str | None = None, interface: str | None = None,
                    family: str | None = None, comment: str | None = None) -> "Dnat":
        """Raises InvalidParams (address families that disagree, an unusable internal address)."""
        internal = _address(internal_address, "/internal_address")
        if internal.is_unspecified or internal.is_multicast:
            raise InvalidParams(f"cannot forward to {internal}", "/internal_address")
        family = _agree(family, internal, "/internal_address")
        external = None
        if external_address is not None:
            external = _address(external_address, "/external_address")
            _agree(family, external, "/external_address")
        return cls(_proto(proto), _single_port(external_port, "/external_port"), str(internal),
                   _single_port(internal_port, "/internal_port"), str(external) if external else None,
                   interface, family, comment)

    def placements(self) -> list[tuple[str, Expr]]:
        if self.external_address:
            where = [_address_match("daddr", ipaddress.ip_network(self.external_address))]
        else:  # only traffic addressed to this host, never traffic passing through it
            where = [_nfproto(self.family), _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")]
        tail = [_match(_payload(self.proto, "dport"), self.external_port),
                {"dnat": {"family": _l3(self.family), "addr": self.internal_address, "port": self.internal_port}}]
        if self.interface:  # locally generated packets have no input interface: prerouting only
            return [("prerouting", [_match(_meta("iifname"), self.interface), *where, *tail])]
        return [("prerouting", [*where, *tail]), ("output", [*where, *tail])]


@dataclasses.dataclass(frozen=True)
class Snat(Entry):
    """Rewrite the source of traffic from ``source`` leaving ``out_interface`` to
    ``to_address``, or masquerade (the interface's own address) when it is absent."""

    kind = "snat"
    prefix = "snat"
    chains = ("postrouting",)
    identity = ("source", "out_interface")

    source: str
    out_interface: str
    to_address: str | None = None
    comment: str | None = None

    @classmethod
    def from_params(cls, source: str, out_interface: str, to_address: str | None = None,
                    comment: str | None = None) -> "Snat":
        """Raises InvalidParams (to_address of another family than source)."""
        net = _network(source, "/source")
        to = None
        if to_address is not None:
            to = _address(to_address, "/to_address")
            _agree(_family_of(net), to, "/to_address")
        return cls(str(net), out_interface, str(to) if to else None, comment)

    def placements(self) -> list[tuple[str, Expr]]:
        net = ipaddress.ip_network(self.source)
        target: dict[str, Any] = {"masquerade": None}
        if self.to_address:
            target = {"snat": {"family": _l3(_family_of(net)), "addr": self.to_address}}
        return [("postrouting", [_address_match("saddr", net), _match(_meta("oifname"), self.out_interface), target])]


def _single_port(value: Any, path: str) -> int:
    port = _port(value, path)
    if not isinstance(port, int):
        raise InvalidParams(f"{value!r} must be a single port", path)
    return port


KINDS: dict[str, type[Entry]] = {cls.kind: cls for cls in (FirewallRule, Dnat, Snat)}


def from_record(kind: str, record: dict[str, Any]) -> Entry:
    """An entry from its state-file record; raises InvalidParams when the record is unusable."""
    cls = KINDS[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(record, dict) or not set(record) <= fields:
        raise InvalidParams(f"unusable {kind} record {record!r}")
    try:
        return cls.from_params(**record)  # type: ignore[attr-defined]
    except TypeError as exc:
        raise InvalidParams(f"unusable {kind} record {record!r}: {exc}") from exc


# ---------------------------------------------------------------- commands
def table_ref() -> dict[str, str]:
    return {"family": FAMILY, "name": TABLE}


def chain_spec(name: str, policy: str) -> dict[str, Any]:
    kind, hook, prio = CHAINS[name]
    policy = policy if name == "input" else "accept"
    return {"family": FAMILY, "table": TABLE, "name": name, "type": kind, "hook": hook, "prio": prio,
            "policy": policy}


def expected_rules(policy: str, entries: list[Entry]) -> list[tuple[str, str, Expr]]:
    """Every rule the table should hold, in order: (chain, comment, expression)."""
    rules = [("input", tag, expr) for tag, expr in BASE_RULES.items()] if policy == "drop" else []
    rules += [(chain, entry.id, expr) for entry in entries for chain, expr in entry.placements()]
    return rules


def add_rule(chain: str, comment: str, expr: Expr) -> Command:
    return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr, "comment": comment}}}


def delete_rule(chain: str, handle: int) -> Command:
    return {"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "handle": handle}}}


def rebuild(policy: str, entries: list[Entry]) -> list[Command]:
    """One transaction replacing table inet osd (if any) with the complete expected table."""
    commands: list[Command] = [{"add": {"table": table_ref()}}, {"delete": {"table": table_ref()}},
                               {"add": {"table": table_ref()}}]
    commands += [{"add": {"chain": chain_spec(name, policy)}} for name in CHAINS]
    commands += [add_rule(chain, comment, expr) for chain, comment, expr in expected_rules(policy, entries)]
    return commands


def canonical(expr: Any) -> Any:
    """``expr`` with set elements sorted: the kernel lists sets in its own order."""
    if isinstance(expr, dict):
        return {k: sorted(v, key=json.dumps) if k == "set" and isinstance(v, list) else canonical(v)
                for k, v in expr.items()}
    if isinstance(expr, list):
        return [canonical(item) for item in expr]
    return expr
