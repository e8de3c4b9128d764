"""Network lab: namespaces and veth pairs the test creates, torn down by recorded identity.

Several runs share the machine, so every namespace gets a unique name
(``osdt-<tag>-<pid>-<random>``) and only namespaces this lab created are deleted, after
killing the processes inside them (``ip netns pids``). Traffic stays on documentation
ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def short_name(prefix: str) -> str:
    """A unique interface name within 15 characters."""
    return f"{prefix}{secrets.token_hex(3)}"[:15]


class Netns:
    """One network namespace made by this lab."""

    def __init__(self, tag: str) -> None:
        self.name = f"osdt-{tag}-{os.getpid()}-{secrets.token_hex(3)}"
        run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")

    def exec(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.name, *argv], check=check, timeout=timeout)

    def ip(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["ip", "-n", self.name, *argv], check=check)

    def ip_json(self, *argv: str) -> Any:
        import json

        return json.loads(run(["ip", "-j", "-n", self.name, *argv]).stdout or "[]")

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """A background process inside the namespace (killed by delete())."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)

    def sysctl(self, key: str, value: str) -> None:
        self.exec("sysctl", "-qw", f"{key}={value}")

    def pids(self) -> list[int]:
        out = run(["ip", "netns", "pids", self.name], check=False).stdout
        return [int(p) for p in out.split()]

    def delete(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        run(["ip", "netns", "del", self.name], check=False)


class NetLab:
    """Namespaces and links for one test; ``with NetLab() as lab:`` tears all of it down."""

    def __init__(self) -> None:
        self.namespaces: list[Netns] = []

    def netns(self, tag: str) -> Netns:
        ns = Netns(tag)
        self.namespaces.append(ns)
        return ns

    def veth(self, a: Netns, a_name: str, b: Netns, b_name: str) -> None:
        """A veth pair with one end in each namespace, both up."""
        run(["ip", "link", "add", a_name, "netns", a.name, "type", "veth", "peer", b_name, "netns", b.name])
        a.ip("link", "set", a_name, "up")
        b.ip("link", "set", b_name, "up")

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            ns.delete()
        self.namespaces.clear()

    def __enter__(self) -> "NetLab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def scratch_netns(tag: str) -> Iterator[str]:
    """A namespace for one block of code: yields its name, deletes it (and its processes) after."""
    with NetLab() as lab:
        yield lab.netns(tag).name


def ip_batch(netns: str, commands: Iterable[str]) -> None:
    """Run `ip` commands inside the namespace in one process (`ip -batch`): fast for thousands."""
    script = "".join(f"{line}\n" for line in commands)
    done = subprocess.run(["ip", "-n", netns, "-batch", "-"], input=script, text=True, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"ip -batch failed in {netns}: {done.stderr.strip()}")


def in_netns(netns: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv inside the namespace, output captured; raises RuntimeError carrying stderr if it fails."""
    done = subprocess.run(["ip", "netns", "exec", netns, *argv], text=True, capture_output=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{argv[0]} failed in {netns} ({done.returncode}):\n{done.stderr}")
    return done


def run_in_netns(netns: str, module: str, function: str, *args: Any, path: Sequence[str] = ()) -> Any:
    """``asyncio.run(module.function(*args))`` computed by a child process inside the namespace.

    A netlink socket belongs to the namespace of the thread that creates it, so code under
    test runs in a fresh interpreter started with `ip netns exec`; ``module`` is imported from
    the repository or ``path``; arguments and result travel as JSON.
    """
    code = (
        "import asyncio, importlib, json, sys\n"
        f"f = getattr(importlib.import_module({module!r}), {function!r})\n"
        "print(json.dumps(asyncio.run(f(*json.loads(sys.argv[1])))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), *path])}
    return json.loads(in_netns(netns, [sys.executable, "-c", code, json.dumps(args)], env=env).stdout)
