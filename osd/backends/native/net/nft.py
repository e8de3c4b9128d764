"""libnftables through its official JSON binding (python3-nftables), on one dedicated thread.

One ``run()`` is one nftables transaction: libnftables commits every command of a JSON
document atomically, or none of them. Failures become KernelError carrying the errno
libnftables reports and its error text as ``detail``.

Why a thread of its own: a listing of a 1000-rule ruleset takes ~20 ms of C code, which
would stall the event loop; ctypes releases the GIL, so the loop keeps serving meanwhile.
A libnftables context works in the network namespace of the thread that created it, so
the context is created on that worker thread, inside the daemon's own process (every
thread of the daemon shares its namespace). One worker also serialises all use of the
context, which is not thread-safe.

Echo output is never used: with echo on, a ``list`` returns two JSON documents, and an
echoed ``add`` costs ~13 ms on a 1000-rule table against ~0.5 ms without (it refills the
rule cache). The daemon finds its rules by their comment, never by a handle it kept.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ....errors import KernelError, NotSupported

try:
    import nftables
except ImportError:  # pragma: no cover - depends on the host's packages
    nftables = None

Command = dict[str, Any]

# libnftables reports kernel errors by strerror text ("Could not process rule: No such
# file or directory"); map the text back to its errno.
_ERRNO_BY_TEXT = {os.strerror(code): code for code in sorted(errno.errorcode, reverse=True)}
_ERROR_LINE = re.compile(r"Error: (.*)$", re.MULTILINE)


def errno_of(text: str) -> int:
    """The errno named in a libnftables error text, EINVAL when it names none.

    The text looks like "Error: Could not process rule: No such file or directory" or
    "Error: No such file or directory; did you mean table 'osd' in family inet?".
    """
    for message in _ERROR_LINE.findall(text):
        named = [known for known in _ERRNO_BY_TEXT if known in message]
        if named:
            return _ERRNO_BY_TEXT[max(named, key=len)]
    return errno.EINVAL


class Nft:
    """An nftables JSON command runner; ``close()`` stops its thread."""

    def __init__(self) -> None:
        if nftables is None:
            raise NotSupported("the nftables Python binding is not installed (Debian package python3-nftables)")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nft")
        self._ctx: Any = None

    async def run(self, commands: list[Command], op: str) -> list[dict[str, Any]]:
        """Run ``commands`` as one transaction; the output objects (for list commands).

        Raises KernelError(errno, op, detail=libnftables' error text) when it fails;
        nothing of a failed transaction is applied.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, commands, op)

    def _run(self, commands: list[Command], op: str) -> list[dict[str, Any]]:
        if self._ctx is None:
            self._ctx = nftables.Nftables()
            self._ctx.set_json_output(True)  # JSON listings always carry handles
        rc, output, error = self._ctx.cmd(json.dumps({"nftables": commands}))
        if rc != 0:
            detail = error.strip()
            raise KernelError(errno_of(detail), op, detail)
        return json.loads(output)["nftables"] if output else []

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
