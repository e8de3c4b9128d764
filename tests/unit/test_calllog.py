"""The call log: one line per call, formatted like the daemon's other lines, written once per loop turn."""

from __future__ import annotations

import asyncio
import io
import re

from osd.calllog import CallLog


def test_lines_are_batched_per_loop_turn_and_formatted() -> None:
    stream = io.StringIO()

    async def main() -> list[str]:
        log = CallLog(stream, asyncio.get_running_loop())
        log("user:root", "net.interfaces", 0.42, 0)
        log("token:ci", "net.bridge.add", 1.5, -32002)
        assert stream.getvalue() == ""  # nothing written inside the turn
        await asyncio.sleep(0)
        first = stream.getvalue().splitlines()
        log("uid:7", "rpc.health", 0.01, 0)
        log.flush()
        return first + stream.getvalue().splitlines()[2:]

    lines = asyncio.run(main())
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO osd.call: "
    assert re.fullmatch(stamp + r"identity=user:root method=net.interfaces ms=0.42 outcome=ok", lines[0])
    assert re.fullmatch(stamp + r"identity=token:ci method=net.bridge.add ms=1.50 outcome=error code=-32002", lines[1])
    assert re.fullmatch(stamp + r"identity=uid:7 method=rpc.health ms=0.01 outcome=ok", lines[2])
    assert len(lines) == 3
