"""``--spawn``: build the lab and start a daemon of this very osd inside it.

The daemon runs in a fresh network namespace (``ip netns exec``, which also gives it a
mount namespace of its own: its mounts vanish with it), with its state in the run
directory and ``[vol] allowed_devices`` set to exactly the lab's loop disks. Readiness is
the daemon's own READY=1 on a NOTIFY_SOCKET the runner binds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from pathlib import Path

import osd

from .lab import Lab, LabError
from .profile import Scratch

READY_TIMEOUT_S = 30.0


class SpawnError(Exception):
    """The daemon did not come up; the message carries the end of its log."""


async def build(lab: Lab, scratch: Scratch) -> None:
    """The daemon's namespace and the loop disks; raises LabError."""
    lab.netns = await lab.make_netns("daemon")
    for index in range(scratch.loop_disks):
        lab.disks.append(await lab.make_loop(index, scratch.loop_size_mb))


def daemon_config(lab: Lab) -> str:
    """The spawned daemon's config file: only the lab's disks may be touched."""
    devices = ", ".join(json.dumps(d) for d in lab.disks)  # a JSON string is a TOML basic string
    path = lab.rundir / "osd.toml"
    path.write_text(f"# written by osd xtest --spawn\n[vol]\nallowed_devices = [{devices}]\n")
    return str(path)


async def start_daemon(lab: Lab) -> str:
    """Start ``osd serve`` in the lab's namespace and wait for READY=1; its socket path.

    Raises SpawnError (with the daemon's log) when it exits or stays silent.
    """
    rundir = lab.rundir
    sock_path, notify_path, log = rundir / "osd.sock", rundir / "notify.sock", rundir / "daemon.log"
    package_root = str(Path(osd.__file__).resolve().parent.parent)
    argv = ["ip", "netns", "exec", str(lab.netns), sys.executable, "-m", "osd", "serve",
            "--config", daemon_config(lab), "--socket", str(sock_path), "--state-dir", str(rundir / "state")]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK) as notify:
        notify.bind(str(notify_path))
        try:
            # PYTHONPATH: the daemon runs the same osd as this runner, installed or not.
            proc = await lab.start("daemon", argv, log=log,
                                   env={"NOTIFY_SOCKET": str(notify_path), "PYTHONPATH": package_root})
        except LabError as exc:
            raise SpawnError(str(exc)) from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while loop.time() < deadline:
            with contextlib.suppress(BlockingIOError):
                if b"READY=1" in notify.recv(4096).split(b"\n"):
                    return str(sock_path)
            if proc.returncode is not None:
                raise SpawnError(f"the daemon exited with {proc.returncode}: {_tail(log)}")
            await asyncio.sleep(0.05)
        raise SpawnError(f"the daemon sent no READY=1 within {READY_TIMEOUT_S:g} s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-1500:]
    except FileNotFoundError:
        return "(no log)"
