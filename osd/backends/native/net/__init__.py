"""The native networking services: links, routes, neighbours, bridges, taps, sysctl, DNS, leases.

They share one rtnetlink socket (kernel.py) and one record of what osd created
(managed.py). Order matters: the socket and the records start first, and bridges are
reconciled before the taps attached to them.
"""

from __future__ import annotations

from typing import Any

from ....config import Config
from .bridges import Bridges
from .dns import Dns
from .kernel import Kernel
from .lease import LeaseService
from .links import Links
from .managed import Managed
from .neighbors import Neighbors
from .routes import Routes
from .sysctl import Sysctl
from .system import System
from .taps import Taps


def services(config: Config) -> list[Any]:
    """The net services of the native backend, in start order."""
    kernel = Kernel()
    managed = Managed(config.server.state_dir)
    return [kernel, managed, Links(kernel), Routes(kernel), Neighbors(kernel), Bridges(kernel, managed),
            Taps(kernel, managed), Sysctl(), Dns(), System(config, kernel),
            LeaseService.from_config(config, kernel)]
