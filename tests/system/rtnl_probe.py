"""Run osd's rtnl queries in the current network namespace and print the results as JSON.

The system tests start this under `ip netns exec NS`: a netlink socket belongs to the
namespace of the thread that creates it, so a fresh process entered into the namespace
is the simplest place to create it. Usage:
    python rtnl_probe.py '[["interfaces", {"name": "eth0"}], ["routes", {"table": 0}]]'
prints one item per call: {"result": ...} or {"error": class name, "errno": n, "message": text}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from osd.backends.native.rtnl import NetlinkError, Rtnl


async def run(calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with Rtnl() as nl:
        for method, kwargs in calls:
            try:
                out.append({"result": await getattr(nl, method)(**kwargs)})
            except NetlinkError as exc:
                out.append({"error": type(exc).__name__, "errno": exc.errno, "message": str(exc)})
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.loads(sys.argv[1])))))
