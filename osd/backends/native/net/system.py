"""net.status and net.config: the daemon and the node's boot-time network configuration."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import Any

from .... import __version__
from ....config import Config
from ....errors import KernelError
from ....methods import net
from ..impl import Implementations, Service
from .kernel import Kernel

implements = Implementations()

PROC_CMDLINE = Path("/proc/cmdline")
# Kernel and initramfs (dracut, initramfs-tools) parameters that shape networking at boot.
NETWORK_PARAMS = frozenset({
    "ip", "ipv6.disable", "ipv6.disable_ipv6", "ipv6.autoconf", "net.ifnames", "biosdevname",
    "nameserver", "ifname", "bootdev", "BOOTIF", "rd.neednet", "rd.peerdns", "rd.route", "vlan",
    "bond", "bridge", "team", "netroot", "nfsroot", "rd.bootif", "rd.net.timeout.dhcp",
})  # fmt: skip
# Parameters that may be given several times; they are always lists.
REPEATABLE = frozenset({"ip", "nameserver", "ifname", "rd.route", "vlan", "bond", "bridge", "team"})


def cmdline_words(text: str) -> list[str]:
    """The kernel's parameters: words split on whitespace, double quotes grouping, up to a
    lone "--" (what follows belongs to init)."""
    words: list[str] = []
    word: list[str] = []
    quoted = started = False
    for char in text:
        if char == '"':
            quoted, started = not quoted, True
        elif char.isspace() and not quoted:
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(char)
            started = True
    if started:
        words.append("".join(word))
    return words[: words.index("--")] if "--" in words else words


def network_params(text: str) -> dict[str, Any]:
    """The network parameters of a kernel command line: {name: value}.

    A repeatable parameter (ip=, nameserver=, vlan=, ...) is a list of its values; a flag
    without '=' (rd.neednet) is true; others are their last value as a string.
    """
    params: dict[str, Any] = {}
    for word in cmdline_words(text):
        name, sep, value = word.partition("=")
        if name not in NETWORK_PARAMS and not name.startswith(("net.", "rd.net.")):
            continue
        if name in REPEATABLE:
            params.setdefault(name, []).append(value)
        else:
            params[name] = value if sep else True
    return params


def _local(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address.is_link_local


class System(Service):
    """The daemon's own overview and configuration."""

    namespace = "net"
    implementations = implements

    def __init__(self, config: Config, kernel: Kernel, cmdline: Path = PROC_CMDLINE) -> None:
        self.config = config
        self.kernel = kernel
        self.cmdline = cmdline
        self.started = time.monotonic()

    async def start(self) -> None:
        self.started = time.monotonic()

    @implements(net.STATUS)
    async def status(self) -> dict[str, Any]:
        """pid, uptime_s, mode, version, hostname and the node's addresses, without loopback
        and link-local ones: [{interface, family, address, prefixlen}]. Read-only."""
        addresses = [
            {"interface": link["name"], **entry}
            for link in await self.kernel.interfaces()
            for entry in link["addresses"]
            if not _local(ipaddress.ip_address(entry["address"]))
        ]
        return {
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "mode": "native",
            "version": __version__,
            "hostname": socket.gethostname(),
            "addresses": addresses,
        }

    @implements(net.CONFIG)
    async def net_config(self) -> dict[str, Any]:
        """{cmdline: network params of /proc/cmdline (see network_params), daemon: the
        backend, socket, state directory and the [net] section in force}. Read-only."""
        try:
            text = self.cmdline.read_text()
        except OSError as exc:
            raise KernelError(exc.errno or 0, f"read {self.cmdline}") from exc
        server = self.config.server
        return {
            "cmdline": network_params(text),
            "daemon": {"backend": server.backend, "socket": server.socket, "state_dir": server.state_dir,
                       "net": dataclasses.asdict(self.config.net)},
        }
