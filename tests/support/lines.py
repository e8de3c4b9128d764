"""Reading a child's output up to a marker line, with a deadline."""

from __future__ import annotations

import subprocess
import threading


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> list[str]:
    """The lines of ``proc.stderr`` up to the first one containing ``marker``.

    Raises AssertionError when the marker has not come within ``timeout`` seconds or the
    stream ended without it (the caller's cleanup kills the child). A plain loop over the
    stream would wait forever on a child that hangs silently.
    """
    assert proc.stderr is not None
    stream, lines, done = proc.stderr, [], threading.Event()

    def pump() -> None:
        for line in stream:
            lines.append(line)
            if marker in line:
                break
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    if not done.wait(timeout):
        raise AssertionError(f"no line with {marker!r} within {timeout} s; last lines: {lines[-5:]}")
    if not lines or marker not in lines[-1]:
        raise AssertionError(f"the output ended without {marker!r}; last lines: {lines[-5:]}")
    return lines
