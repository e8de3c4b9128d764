"""The native networking services: links, routes, neighbours, sysctl, DNS.

They share one rtnetlink socket (kernel.py), which starts first.
"""

from __future__ import annotations

from typing import Any

from ....config import Config
from .dns import Dns
from .kernel import Kernel
from .links import Links
from .neighbors import Neighbors
from .routes import Routes
from .sysctl import Sysctl
from .system import System


def services(config: Config) -> list[Any]:
    """The net services of the native backend, in start order."""
    kernel = Kernel()
    return [kernel, Links(kernel), Routes(kernel), Neighbors(kernel), Sysctl(), Dns(), System(config, kernel)]
