"""Loop-device lab: sparse files attached as loop disks, torn down by recorded identity.

Several runs share the machine, so everything lives under one unique directory
(``/tmp/osdt-vol-<pid>-<random>``): the backing files and every mount point. Teardown
touches only what this lab made: mounts whose target lies under its directory, swap areas
on its devices, and the loop devices it attached, each detached only after checking that
its backing file is still this lab's file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

from support.daemon import REAL_DAEMON

MIB = 1 << 20
# The daemon under test must share the host's mount namespace (mounts are what it manages) but
# not its network: `unshare --net` gives it an empty network namespace of its own, so its net
# services never touch the host's links or nftables. (`ip netns exec` would also give it a
# private mount namespace.) Its Unix sockets are files, reachable from any network namespace.
VOL_DAEMON = ["unshare", "--net", *REAL_DAEMON]


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def blkid(dev: str) -> dict[str, str]:
    """Tags of ``blkid -p`` on ``dev`` ({} when blank)."""
    out = run(["blkid", "-p", "-o", "export", dev], check=False).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def findmnt(target: str) -> dict[str, Any] | None:
    """findmnt's view of ``target`` (None when nothing is mounted exactly there)."""
    out = run(["findmnt", "-J", "-b", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS", "--mountpoint", target], check=False).stdout
    return json.loads(out)["filesystems"][0] if out.strip() else None


class LoopLab:
    """``with LoopLab() as lab: disk = lab.disk(300)`` gives a fresh /dev/loopN of 300 MiB."""

    def __init__(self, tag: str = "vol") -> None:
        self.dir = tempfile.mkdtemp(prefix=f"osdt-{tag}-{os.getpid()}-{secrets.token_hex(3)}-", dir="/tmp")
        self.devices: dict[str, str] = {}  # /dev/loopN -> backing file
        self._made = 0  # backing files made: names them (detached devices leave self.devices)

    # ------------------------------------------------------------ making
    def disk(self, size_mib: int) -> str:
        path = os.path.join(self.dir, f"disk{self._made}.img")
        self._made += 1
        with open(path, "wb") as f:
            f.truncate(size_mib * MIB)
        dev = run(["losetup", "-f", "--show", path]).stdout.strip()
        self.devices[dev] = path
        if self.partitions(dev):
            # Partitions added with partx outlive 'losetup -d' on this kernel (no partition
            # scanning): a reused loop device still shows its last user's. It is ours now.
            run(["partx", "-d", dev])
        return dev

    def reattach(self, dev: str) -> str:
        """Detach ``dev`` and attach its backing file again under another /dev/loopN name,
        as a disk that comes back under a new kernel name."""
        path = self.devices[dev]
        self.detach(dev)
        # losetup -f takes the lowest free device, likely the one just freed: hold that one
        placeholder = self.disk(1)
        moved = run(["losetup", "-f", "--show", path]).stdout.strip()
        self.devices[moved] = path
        self.detach(placeholder)
        assert moved != dev
        return moved

    def mountpoint(self, name: str) -> str:
        path = os.path.join(self.dir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def grow(self, dev: str, size_mib: int) -> None:
        with open(self.devices[dev], "r+b") as f:
            f.truncate(size_mib * MIB)
        run(["losetup", "-c", dev])

    def partitions(self, dev: str) -> list[str]:
        """/dev paths of the kernel's partitions of ``dev``."""
        base = f"/sys/class/block/{os.path.basename(dev)}"
        return sorted(f"/dev/{p}" for p in os.listdir(base) if os.path.exists(f"{base}/{p}/partition"))

    def fingerprint(self, dev: str) -> tuple[Any, ...]:
        """What a refused call must not change: the first and last MiB, the partitions, blkid's tags."""
        with open(dev, "rb") as f:
            head = f.read(MIB)
            f.seek(-MIB, os.SEEK_END)
            tail = f.read(MIB)
        return head, tail, tuple(self.partitions(dev)), tuple(sorted(blkid(dev).items()))

    # ------------------------------------------------------------ tearing down
    def _ours(self, dev: str) -> bool:
        try:
            with open(f"/sys/block/{os.path.basename(dev)}/loop/backing_file") as f:
                return f.read().strip() == self.devices[dev]
        except OSError:
            return False

    def detach(self, dev: str) -> None:
        """Detach one of this lab's devices (its partitions and btrfs registration first)."""
        if self._ours(dev):
            for node in [dev, *self._safe_partitions(dev)]:
                # btrfs-progs keeps a scrub status file per filesystem; drop those of ours
                uuid = blkid(node).get("UUID")
                if uuid:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"/var/lib/btrfs/scrub.status.{uuid}")
            run(["partx", "-d", dev], check=False)
            run(["btrfs", "device", "scan", "--forget", dev], check=False)
            run(["losetup", "-d", dev], check=False)
        self.devices.pop(dev, None)

    def close(self) -> None:
        with open("/proc/self/mountinfo") as f:
            targets = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f]
        for target in reversed(targets):
            if target == self.dir or target.startswith(self.dir + "/"):
                if run(["umount", target], check=False).returncode != 0:
                    run(["umount", "-l", target], check=False)
        ours = {os.path.realpath(p) for dev in self.devices for p in [dev, *self._safe_partitions(dev)]}
        with open("/proc/swaps") as f:
            for line in f.read().splitlines()[1:]:
                if line.split() and os.path.realpath(line.split()[0]) in ours:
                    run(["swapoff", line.split()[0]], check=False)
        for dev in list(self.devices):
            self.detach(dev)
        run(["rm", "-rf", "--one-file-system", self.dir], check=False)

    def _safe_partitions(self, dev: str) -> list[str]:
        try:
            return self.partitions(dev)
        except OSError:
            return []

    def __enter__(self) -> "LoopLab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def config_file(lab: LoopLab, *, allowed: Sequence[str] | None = None, protected: Sequence[str] = (),
                label_prefix: str | None = None, name: str = "osd.toml") -> list[str]:
    """A daemon config confining destructive calls (``allowed`` default: the lab's devices); ``serve`` args."""
    allowed = list(lab.devices) if allowed is None else list(allowed)
    lines = ["[vol]", f"allowed_devices = {json.dumps(allowed)}", f"protected_devices = {json.dumps(list(protected))}"]
    if label_prefix:
        lines.append(f"label_prefix = {json.dumps(label_prefix)}")
    path = os.path.join(lab.dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return ["--config", path]
