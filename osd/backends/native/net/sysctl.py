"""net.sysctl: forwarding, proxy_arp and proxy_ndp, read from /proc/sys/net.

/proc/sys/net shows the network namespace of the reading process, so a daemon started in
a namespace reads that namespace's values. On a kernel without IPv6 the IPv6 values read
as false.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ....errors import KernelError, NotFound
from ....methods import net
from ..impl import Implementations, Service

implements = Implementations()

PROC_NET = Path("/proc/sys/net")
# Not interfaces: the defaults for new interfaces and the setting for all of them.
SPECIAL = ("all", "default")


def read_flag(path: Path) -> bool:
    """A 0/1 sysctl as a bool (any non-zero value is true); false when the file is absent.

    Raises KernelError for any other read failure.
    """
    try:
        return int(path.read_text().split()[0]) != 0
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"read {path}") from exc


def forwarding(root: Path = PROC_NET) -> dict[str, bool]:
    """The global switches: {ipv4_forward, ipv6_forward}. Raises KernelError."""
    return {"ipv4_forward": read_flag(root / "ipv4" / "ip_forward"),
            "ipv6_forward": read_flag(root / "ipv6" / "conf" / "all" / "forwarding")}


def interface_flags(name: str, root: Path = PROC_NET) -> dict[str, Any]:
    v4, v6 = root / "ipv4" / "conf" / name, root / "ipv6" / "conf" / name
    return {
        "name": name,
        "forwarding": read_flag(v4 / "forwarding"),
        "forwarding6": read_flag(v6 / "forwarding"),
        "proxy_arp": read_flag(v4 / "proxy_arp"),
        "proxy_ndp": read_flag(v6 / "proxy_ndp"),
    }


class Sysctl(Service):
    namespace = "net"
    implementations = implements

    def __init__(self, root: Path = PROC_NET) -> None:
        self.root = root

    @implements(net.SYSCTL)
    async def sysctl(self, interface: str | None = None) -> dict[str, Any]:
        """Global IPv4/IPv6 forwarding and, per interface (or the one named), forwarding
        (IPv4), forwarding6, proxy_arp and proxy_ndp. Read-only.

        Raises NotFound("interface", interface) when no such interface exists.
        """
        conf = self.root / "ipv4" / "conf"
        if interface is not None:
            if not (conf / interface).is_dir():
                raise NotFound("interface", interface)
            names = [interface]
        else:
            try:
                names = sorted(p.name for p in conf.iterdir() if p.name not in SPECIAL)
            except OSError as exc:
                raise KernelError(exc.errno or 0, f"list {conf}") from exc
        return {**forwarding(self.root), "interfaces": [interface_flags(name, self.root) for name in names]}
