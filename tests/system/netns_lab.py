"""Scratch network namespaces for system tests and benchmarks: unique names, always deleted.

Several test runs share a machine, so every namespace is named with this process's pid and
a random suffix, and only that name is ever deleted.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


@contextmanager
def scratch_netns(tag: str) -> Iterator[str]:
    """Create a namespace named osd-TAG-PID-RANDOM, yield its name, delete it afterwards."""
    name = f"osd-{tag}-{os.getpid()}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def ip_batch(netns: str, commands: Iterable[str]) -> None:
    """Run `ip` commands inside the namespace in one process (`ip -batch`): fast for thousands."""
    script = "".join(f"{line}\n" for line in commands)
    done = subprocess.run(["ip", "-n", netns, "-batch", "-"], input=script, text=True, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"ip -batch failed in {netns}: {done.stderr.strip()}")


def in_netns(netns: str, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run argv inside the namespace (`ip netns exec`), text output captured, check=True."""
    return subprocess.run(["ip", "netns", "exec", netns, *argv], text=True, capture_output=True, check=True, **kwargs)  # type: ignore[call-overload, no-any-return]
