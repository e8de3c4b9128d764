"""The one way osd runs external programs: argv only, LC_ALL=C, a deadline, rich errors.

No other module imports subprocess. A missing program is NotSupported naming it; a
non-zero exit is ToolFailed with argv, exit code and stderr; a run past its deadline is
killed and raised as Timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from collections.abc import Container, Mapping, Sequence
from typing import Any

from .errors import KernelError, NotSupported, Timeout, ToolFailed

# Daemons started by systemd or from a login shell may lack the sbin directories.
SEARCH_PATH = os.pathsep.join(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
DEFAULT_DEADLINE_S = 120.0


@dataclasses.dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def which(tool: str) -> str | None:
    """The absolute path of ``tool``, or None when it is not installed."""
    return shutil.which(tool, path=SEARCH_PATH)


def require(tool: str, package: str | None = None) -> str:
    """The absolute path of ``tool``; raises NotSupported naming it (and its package) when missing."""
    path = which(tool)
    if path is None:
        hint = f" (Debian package {package})" if package else ""
        raise NotSupported(f"{tool} is not installed{hint}")
    return path


async def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    deadline_s: float = DEFAULT_DEADLINE_S,
    ok: Container[int] = (0,),
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run ``argv`` to completion; raises NotSupported, ToolFailed, KernelError (the program could
    not be executed, e.g. EACCES) or Timeout."""
    stdin = asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL
    proc = await _spawn(argv, env, stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), deadline_s)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        proc.kill()
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise Timeout(deadline_s, " ".join(argv[:3])) from exc
    result = Result(tuple(argv), proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
    if result.returncode not in ok:
        raise ToolFailed(list(argv), result.returncode, result.stderr)
    return result


async def start(
    argv: Sequence[str],
    *,
    log: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """Start a long-running ``argv`` in its own session, stdout and stderr appended to ``log``.

    Same environment rules as ``run`` (PATH, LC_ALL=C, plus ``env``). The caller owns the
    process: it stops it (terminate, kill) and waits for it. Raises NotSupported when the
    program is missing, KernelError when it cannot be executed. Its own session keeps a terminal's Ctrl-C away from it, so the
    caller decides the order of shutdown.
    """
    with open(log, "ab") as out:
        return await _spawn(argv, env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)


async def _spawn(argv: Sequence[str], env: Mapping[str, str] | None, **streams: Any) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own session with the environment rules of ``run``; raises
    NotSupported (missing, or gone since the lookup), KernelError (cannot be executed)."""
    if not argv:
        raise ValueError("empty argv")
    path = require(argv[0])
    full_env = {"PATH": SEARCH_PATH, "LC_ALL": "C", "LANG": "C", **(env or {})}
    try:
        return await asyncio.create_subprocess_exec(path, *argv[1:], env=full_env, start_new_session=True,
                                                    **streams)
    except FileNotFoundError as exc:
        raise NotSupported(f"{argv[0]} is not installed") from exc
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"exec {path}") from exc
