"""Scratch network namespaces for system tests and benchmarks: unique names, always deleted.

Several test runs share a machine, so every namespace is named with this process's pid and
a random suffix, and only that name is ever deleted.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


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
    done = subprocess.run(["ip", "-n", netns, "-batch", "-"], input=script, text=True, capture_output=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ip -batch failed in {netns}: {done.stderr.strip()}")


def in_netns(netns: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv inside the namespace (`ip netns exec`), output captured as text.
    Raises RuntimeError carrying the command's stderr if it fails."""
    done = subprocess.run(["ip", "netns", "exec", netns, *argv], text=True, capture_output=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"{argv[0]} failed in {netns} ({done.returncode}):\n{done.stderr}")
    return done


def run_in_netns(netns: str, module: str, function: str, *args: Any) -> Any:
    """Return `asyncio.run(module.function(*args))` computed by a child inside the namespace.

    A netlink socket belongs to the namespace of the thread that creates it, so code under
    test runs in a fresh interpreter started with `ip netns exec`; `module` is imported from
    this directory or the repository, and arguments and result travel as JSON.
    """
    code = (
        "import asyncio, importlib, json, sys\n"
        f"f = getattr(importlib.import_module({module!r}), {function!r})\n"
        "print(json.dumps(asyncio.run(f(*json.loads(sys.argv[1])))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)])}
    return json.loads(in_netns(netns, [sys.executable, "-c", code, json.dumps(args)], env=env).stdout)
