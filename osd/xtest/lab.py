"""The runner's lab: namespaces, veth pairs, loop disks and helper processes around the daemon.

Everything is recorded as it is created and torn down by that record, never by pattern:
namespaces by the unique name the lab gave them (after stopping the processes inside),
links by name and ifindex, loop devices by device and backing file inode, processes by
their handle. ``teardown`` runs even after Ctrl-C and reports what it could not undo. The
record is also kept on disk (record.py), and helper processes die with the runner
(PR_SET_PDEATHSIG through setpriv), so the lab of a runner killed outright is undone by
the next run (``collect_orphans``).

The daemon's network is ``netns`` (a namespace the lab made for a spawned daemon) or,
for a live daemon, None: this process's own namespace, where scratch links are then made
and deleted one by one. Traffic stays on documentation ranges (192.0.2.0/24 here).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any
from pathlib import Path

from .. import tools
from ..backends.native.vol.mountinfo import read_mounts
from ..errors import OsdError
from .engine import Stop
from .record import LabRecord, claimed, orphans

DHCP_SERVER = "192.0.2.1"
DHCP_RANGE = ("192.0.2.100", "192.0.2.149")


class LabError(Stop):
    """The lab could not build something a scenario needs; the message says what."""


@dataclasses.dataclass(frozen=True)
class Loop:
    device: str
    backing: Path
    inode: int


@dataclasses.dataclass(frozen=True)
class Link:
    name: str
    ifindex: int


class Lab:
    def __init__(self, rundir: Path, record: LabRecord | None = None) -> None:
        self.rundir = rundir
        self.netns: str | None = None
        self.disks: list[str] = []
        self.mount_point = str(rundir / "mnt")
        self._namespaces: list[str] = []
        self._links: list[Link] = []     # in this process's namespace (live daemon)
        self._loops: list[Loop] = []
        self._processes: list[tuple[str, asyncio.subprocess.Process]] = []
        self._dirs: list[Path] = []       # directories made outside the run directory
        self._record = record or LabRecord(rundir.name)

    def _save(self) -> None:
        self._record.save({"rundir": str(self.rundir), "namespaces": self._namespaces,
                           "links": [[link.name, link.ifindex] for link in self._links],
                           "loops": [[loop.device, str(loop.backing), loop.inode] for loop in self._loops],
                           "dirs": [str(d) for d in self._dirs]})

    @classmethod
    def from_record(cls, doc: dict[str, Any], record: LabRecord) -> "Lab":
        """The lab a record lists (of a runner that was killed), ready for ``teardown``."""
        lab = cls(Path(doc["rundir"]), record)
        lab._namespaces = [str(n) for n in doc.get("namespaces", [])]
        lab._links = [Link(str(name), int(index)) for name, index in doc.get("links", [])]
        lab._loops = [Loop(str(dev), Path(backing), int(inode)) for dev, backing, inode in doc.get("loops", [])]
        lab._dirs = [Path(d) for d in doc.get("dirs", [])]
        return lab

    # ------------------------------------------------------------ helpers
    async def _run(self, *argv: str, deadline_s: float = 30.0) -> str:
        try:
            return (await tools.run(list(argv), deadline_s=deadline_s)).stdout
        except OsdError as exc:
            raise LabError(f"lab: {' '.join(argv[:6])}: {exc.message}") from exc

    def _ip(self, netns: str | None, *argv: str) -> list[str]:
        return ["ip", *(("-n", netns) if netns else ()), *argv]

    # ------------------------------------------------------------ namespaces
    async def make_netns(self, role: str) -> str:
        """A new network namespace with lo up; its unique name."""
        name = f"osdx-{role}-{os.getpid()}-{secrets.token_hex(3)}"
        await self._run("ip", "netns", "add", name)
        self._namespaces.append(name)
        self._save()
        await self._run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    async def veth(self, a: str, b: str) -> None:
        """A veth pair a <-> b in the daemon's namespace, both ends up."""
        await self._run(*self._ip(self.netns, "link", "add", a, "type", "veth", "peer", "name", b))
        await self._remember(a)
        for end in (a, b):
            await self._run(*self._ip(self.netns, "link", "set", end, "up"))

    async def vlan(self, parent: str, name: str, vid: int) -> bool:
        """An 802.1q link on ``parent``; False when this kernel has no VLAN support."""
        try:
            await tools.run(self._ip(self.netns, "link", "add", "link", parent, "name", name, "type", "vlan",
                                     "id", str(vid)))
        except OsdError as exc:
            text = str((exc.data or {}).get("stderr", "")).lower()
            if "unknown device type" in text or "not supported" in text:
                return False
            raise LabError(f"lab: cannot add VLAN {name} on {parent}: {exc.message}") from exc
        await self._remember(name)
        return True

    async def udp_probe(self, port: int) -> None:
        """One UDP datagram to 127.0.0.1:``port`` from inside the daemon's namespace (a conntrack flow)."""
        send = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'xtest', ('127.0.0.1', {port}))"
        await self._run(*(("ip", "netns", "exec", self.netns) if self.netns else ()), sys.executable, "-c", send)

    async def delete_link(self, name: str) -> None:
        """Delete a link in the daemon's namespace behind the daemon's back (to provoke drift)."""
        await self._run(*self._ip(self.netns, "link", "delete", "dev", name))

    async def _remember(self, name: str) -> None:
        if self.netns is None:  # links in a lab namespace go with it
            info = json.loads(await self._run("ip", "-j", "link", "show", "dev", name))
            self._links.append(Link(name, int(info[0]["ifindex"])))
            self._save()

    async def dhcp_server(self, ifname: str, peer: str, *, router: bool) -> None:
        """A DHCPv4 server behind ``ifname`` (made here, in the daemon's namespace).

        The server is dnsmasq in a namespace of its own, on the veth peer ``peer`` with
        192.0.2.1/24, leasing 192.0.2.100-149; it offers itself as router only when
        ``router`` (an empty router option otherwise, so no default route follows).
        """
        if tools.which("dnsmasq") is None:
            raise LabError("lab: dnsmasq is not installed (Debian package dnsmasq-base); it serves the DHCP "
                           "leases net.lease.restart needs")
        server_ns = await self.make_netns("dhcp")
        await self._run(*self._ip(self.netns, "link", "add", ifname, "type", "veth", "peer", "name", peer,
                                  "netns", server_ns))
        await self._remember(ifname)
        await self._run(*self._ip(self.netns, "link", "set", ifname, "up"))
        await self._run("ip", "-n", server_ns, "addr", "add", f"{DHCP_SERVER}/24", "dev", peer)
        await self._run("ip", "-n", server_ns, "link", "set", peer, "up")
        log = self.rundir / "dnsmasq.log"
        await self.start("dnsmasq", [
            "ip", "netns", "exec", server_ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--no-resolv", "--no-hosts", "--port=0", "--user=root", "--bind-interfaces", f"--interface={peer}",
            f"--dhcp-range={DHCP_RANGE[0]},{DHCP_RANGE[1]},255.255.255.0,10m", "--dhcp-authoritative",
            f"--dhcp-leasefile={self.rundir / 'dnsmasq.leases'}", "--log-dhcp", "--log-facility=-",
            *(() if router else ("--dhcp-option=option:router",)),
        ], log=log)
        for _ in range(100):  # it logs its range once it listens
            if "DHCP, IP range" in log.read_text(errors="replace"):
                return
            await asyncio.sleep(0.05)
        raise LabError(f"lab: dnsmasq did not start: {log.read_text(errors='replace')[-500:]}")

    # ------------------------------------------------------------ disks
    async def make_loop(self, index: int, size_mb: int) -> str:
        """A loop device over a new sparse file of ``size_mb``; its path."""
        backing = self.rundir / f"disk{index}.img"
        with open(backing, "xb") as f:
            f.truncate(size_mb << 20)
        for attempt in range(5):
            try:
                device = (await self._run("losetup", "--find", "--show", str(backing))).strip()
                break
            except LabError:
                # Another process may take the free device between losetup's lookup and its
                # LOOP_CONFIGURE (EBUSY): a race on a shared machine, so look again.
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        self._loops.append(Loop(device, backing, backing.stat().st_ino))
        self._save()
        return device

    def loop_of(self, device: str) -> Loop | None:
        return next((loop for loop in self._loops if loop.device == device), None)

    async def grow(self, device: str, extra_mb: int) -> bool:
        """Grow a loop disk by ``extra_mb``; False for a disk that is not one of the lab's loops."""
        loop = self.loop_of(device)
        if loop is None:
            return False
        with open(loop.backing, "r+b") as f:
            f.truncate(loop.backing.stat().st_size + (extra_mb << 20))
        await self._run("losetup", "--set-capacity", device)
        return True

    def make_dir(self, path: str) -> str:
        """Create ``path`` (and its missing parents) if needed; the lab removes what it created, when empty."""
        created = []
        for parent in reversed([Path(path), *Path(path).parents]):
            if not parent.exists():
                parent.mkdir()
                created.append(parent)
        if not Path(path).is_dir():
            raise LabError(f"lab: {path} is not a directory")
        self._dirs.extend(created)
        if created:
            self._save()
        return path

    # ------------------------------------------------------------ processes
    async def start(self, label: str, argv: Sequence[str], *, log: Path,
                    env: Mapping[str, str] | None = None) -> asyncio.subprocess.Process:
        if tools.which("setpriv"):  # dies with the runner even when the runner is killed outright
            argv = ["setpriv", "--pdeathsig", "KILL", "--", *argv]
        try:
            proc = await tools.start(argv, log=log, env=env)
        except OsdError as exc:
            raise LabError(f"lab: cannot start {label}: {exc.message}") from exc
        self._processes.append((label, proc))
        return proc

    # ------------------------------------------------------------ teardown
    async def teardown(self) -> list[str]:
        """Undo everything recorded, newest first; what could not be undone, in words."""
        problems: list[str] = []
        for label, proc in reversed(self._processes):
            await _stop(proc, label, problems)
        self._processes.clear()
        for name in reversed(self._namespaces):
            await self._delete_netns(name, problems)
        self._namespaces.clear()
        for link in reversed(self._links):
            await self._delete_link(link, problems)
        self._links.clear()
        for loop in reversed(self._loops):
            await self._detach(loop, problems)
        self._loops.clear()
        for directory in reversed(self._dirs):
            if os.path.ismount(directory):
                problems.append(f"{directory} is still a mount point; not removed")
                break
            with contextlib.suppress(OSError):  # not empty: something of the daemon's stays
                directory.rmdir()
        self._dirs.clear()
        if not problems:
            self._record.remove()
        return problems

    async def _delete_netns(self, name: str, problems: list[str]) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = await _netns_pids(name)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            for _ in range(60):
                if not await _netns_pids(name):
                    break
                await asyncio.sleep(0.05)
        try:
            await tools.run(["ip", "netns", "delete", name])
        except OsdError as exc:
            problems.append(f"namespace {name}: {exc.message}")

    async def _delete_link(self, link: Link, problems: list[str]) -> None:
        try:
            info = json.loads((await tools.run(["ip", "-j", "link", "show", "dev", link.name], ok=(0, 1))).stdout
                              or "[]")
        except (OsdError, ValueError) as exc:
            problems.append(f"link {link.name}: {exc}")
            return
        if not info or int(info[0]["ifindex"]) != link.ifindex:
            return  # gone (a veth peer takes its partner along), or another link has the name now
        try:
            await tools.run(["ip", "link", "delete", "dev", link.name])
        except OsdError as exc:
            problems.append(f"link {link.name}: {exc.message}")

    async def _detach(self, loop: Loop, problems: list[str]) -> None:
        try:
            listing = json.loads((await tools.run(
                ["losetup", "--list", "--json", "--output", "NAME,BACK-INO", loop.device], ok=(0, 1))).stdout
                or "{}")
            attached = [d for d in listing.get("loopdevices", []) if int(d.get("back-ino") or 0) == loop.inode]
            if attached:
                # Partitions the daemon added with partx (no kernel scanning here) go first.
                await tools.run(["partx", "--delete", loop.device], ok=(0, 1))
                await tools.run(["losetup", "--detach", loop.device])
        except (OsdError, ValueError) as exc:
            problems.append(f"loop {loop.device} ({loop.backing}): {exc}")
            return
        loop.backing.unlink(missing_ok=True)

    def remove_rundir(self) -> str | None:
        """Delete the run directory unless something is still mounted inside it; the problem, if any."""
        root = str(self.rundir)
        mounted = [m.target for m in read_mounts() if m.target.startswith(root + "/")]
        if mounted:
            return f"kept {root}: {mounted[0]} is still mounted"
        shutil.rmtree(root, ignore_errors=True)
        return None


async def collect_orphans() -> list[str]:
    """Undo the labs of runners that were killed outright; one line per lab (and its problems)."""
    done = []
    for path, doc in orphans():
        with claimed(path) as ours:
            if not ours:  # another run is undoing it, or has
                continue
            lab = Lab.from_record(doc, LabRecord(path.stem))
            problems = await lab.teardown()
        done.append(f"collected the lab of a killed run ({doc.get('rundir')})"
                    + (f": {'; '.join(problems)}" if problems else ""))
    return done


async def _netns_pids(name: str) -> list[int]:
    try:
        out = (await tools.run(["ip", "netns", "pids", name], ok=(0, 1))).stdout
    except OsdError:
        return []
    return [int(p) for p in out.split()]


async def _stop(proc: asyncio.subprocess.Process, label: str, problems: list[str]) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except asyncio.TimeoutError:
        problems.append(f"{label} (pid {proc.pid}) ignored SIGTERM for 15 s; killed")
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
