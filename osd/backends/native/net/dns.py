"""net.dns: the resolver configuration in effect (resolv.conf, or systemd-resolved's).

When /etc/resolv.conf names only systemd-resolved's stub listener (127.0.0.53 or
127.0.0.54), the servers actually asked are in /run/systemd/resolve/resolv.conf, which
resolved keeps up to date; that file is read instead when it exists. A daemon started with
`ip netns exec NS` reads /etc/netns/NS/resolv.conf, which ip bind-mounts over
/etc/resolv.conf.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ....errors import KernelError
from ....methods import net
from ..impl import Implementations, Service

implements = Implementations()

RESOLV_CONF = Path("/etc/resolv.conf")
RESOLVED_CONF = Path("/run/systemd/resolve/resolv.conf")
RESOLVED_STUBS = frozenset({"127.0.0.53", "127.0.0.54"})


@dataclasses.dataclass(frozen=True)
class Resolver:
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def parse_resolv_conf(text: str) -> Resolver:
    """resolv.conf(5) as glibc reads it: every nameserver line in order; the last of
    search/domain wins; options accumulate. Comments start with '#' or ';'."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0][0] in "#;":
            continue
        keyword, args = words[0], words[1:]
        for i, word in enumerate(args):  # a comment may end a line
            if word[0] in "#;":
                args = args[:i]
                break
        if keyword == "nameserver" and args:
            nameservers.append(args[0])
        elif keyword in ("search", "domain"):
            search = args if keyword == "search" else args[:1]
        elif keyword == "options":
            options.extend(args)
    return Resolver(tuple(nameservers), tuple(search), tuple(options))


def read_dns(resolv_conf: Path = RESOLV_CONF, resolved_conf: Path = RESOLVED_CONF) -> dict[str, Any]:
    """{nameservers, search, options, source}: source is the file the values came from.

    A missing resolv.conf gives empty lists (glibc then asks 127.0.0.1). Raises
    KernelError when a file exists but cannot be read.
    """
    source = resolv_conf
    resolver = _read(resolv_conf)
    if resolver.nameservers and set(resolver.nameservers) <= RESOLVED_STUBS and resolved_conf.exists():
        source, resolver = resolved_conf, _read(resolved_conf)
    return {"nameservers": list(resolver.nameservers), "search": list(resolver.search),
            "options": list(resolver.options), "source": str(source)}


def _read(path: Path) -> Resolver:
    try:
        return parse_resolv_conf(path.read_text(errors="replace"))
    except FileNotFoundError:
        return Resolver()
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"read {path}") from exc


class Dns(Service):
    namespace = "net"
    implementations = implements

    @implements(net.DNS)
    async def dns(self) -> dict[str, Any]:
        """The resolver configuration in effect (see the module docstring). Read-only."""
        return read_dns()
