#!/usr/bin/env python3
"""VM lab: boot the cached Debian guest under qemu (TCG) with scratch disks and run a payload.

    python3 tests/vm/vmlab.py build [--rebuild]         build or check the cached image
    python3 tests/vm/vmlab.py run [opts] -- CMD...      run CMD in a fresh guest
    python3 tests/vm/vmlab.py shell                     a root shell on the guest's console
    python3 tests/vm/vmlab.py gc                        undo what killed runs left behind

Every run boots the image read-only (snapshot=on) with `disks` sparse scratch disks
(/dev/vdb.., serials vmlab-disk1..), the checkout shared read-only at /opt/osd/src and a job
share for results. The guest (vmlab_guest.py) starts the project's systemd units, runs the
payload under systemd and powers off. There is never qemu user networking: with nic=True the
guest's NIC is a tap inside a network namespace this run creates.

The payload runs as root under systemd (in vmlab.service, after udev settled and the units
started) with cwd = /opt/osd/src, PATH starting with the venv (/opt/osd/venv/bin: python3
has the project's dependencies; `osd` is on PATH), and VMLAB_OUT = GUEST_OUT: whatever it
writes there comes back as RunResult.files. Scratch disks are
/dev/disk/by-id/virtio-vmlab-disk1..N; the guest has no network beyond the optional NIC.

Everything a run creates (run directory, namespace and its tap, qemu process) is recorded in
a ledger file in LEDGERS as it is created and undone from it by identity at the end, on
error, SIGINT or SIGTERM; `gc` undoes the ledgers of runs that were killed outright (qemu
itself dies with the lab through PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vmlab_image import REPO, Image, ImageError, build_image, image

__all__ = ["build_image", "run", "RunResult", "VmError", "VmTimeout", "Image", "ImageError"]

LEDGERS = Path("/run/osd-vmlab")  # tmpfs: forgotten at reboot, like what it records
GUEST = Path(__file__).with_name("vmlab_guest.py")
GUEST_SRC = "/opt/osd/src"
GUEST_OUT = "/run/vmlab/out"  # $VMLAB_OUT in the guest; comes back as RunResult.files
BOOT_ALLOWANCE = 120  # s the host grants beyond the payload timeout for boot and power-off
# quiet: less serial output to emulate; the blacklist drops drivers for emulated pc devices
# the lab never uses (loading them under TCG costs about 2 s of boot).
CMDLINE = ("console=ttyS0 root=/dev/vda rw panic=1 vmlab quiet "
           "module_blacklist=floppy,ata_piix,kvm_amd,kvm_intel,pcspkr,psmouse")


class VmError(RuntimeError):
    """The guest did not report a payload result (crash, runner failure)."""


class VmTimeout(VmError):
    """The wall-clock timeout expired; qemu was killed."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM arrived during a run (raised so that teardown runs as for Ctrl-C)."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    files: dict[str, bytes]  # what the payload wrote to $VMLAB_OUT, by relative path
    units: dict | None  # what vmlab_guest.start_units saw, when units were installed
    console: str  # the serial console log
    timings: dict[str, float]  # guest uptimes (boot_s, payload_start_s), payload_s, wall_s
    journal: str | None  # the guest's journal when the payload failed


def _identity(pid: int) -> list[int] | None:
    """[pid, start time in ticks] of a live process: a pid alone may be reused, the pair
    may not. None when the process is gone (or a zombie: already dead)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else [pid, int(fields[19])]


class Ledger:
    """What one run created, on disk before each creation, undone in reverse by identity."""

    def __init__(self, run_id: str):
        LEDGERS.mkdir(mode=0o700, exist_ok=True)
        self.path = LEDGERS / f"{run_id}.json"
        self.items: dict = {"id": run_id, "owner": _identity(os.getpid())}
        self.note()

    @classmethod
    def load(cls, path: Path) -> Ledger:
        self = cls.__new__(cls)
        self.path, self.items = path, json.loads(path.read_text())
        return self

    def note(self, **items) -> None:
        self.items.update(items)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.items))
        tmp.rename(self.path)

    def orphaned(self) -> bool:
        owner = self.items.get("owner")
        return owner is None or _identity(owner[0]) != owner

    def undo(self) -> None:
        """Kill the recorded qemu, delete the namespace, remove the run directory. Idempotent."""
        qemu = self.items.get("qemu")
        if qemu and _identity(qemu[0]) == qemu:
            os.kill(qemu[0], signal.SIGKILL)
            for _ in range(100):
                if _identity(qemu[0]) != qemu:
                    break
                time.sleep(0.05)
        if netns := self.items.get("netns"):
            subprocess.run(["ip", "netns", "del", netns], stderr=subprocess.DEVNULL)
        if run_dir := self.items.get("run_dir"):
            shutil.rmtree(run_dir, ignore_errors=True)
        self.path.unlink(missing_ok=True)


def gc() -> int:
    """Undo the ledgers of runs whose owner process is gone; returns how many."""
    undone = 0
    for path in LEDGERS.glob("*.json") if LEDGERS.exists() else []:
        ledger = Ledger.load(path)
        if ledger.orphaned():
            ledger.undo()
            undone += 1
    return undone


@contextlib.contextmanager
def _sigterm_raises():
    """Turn SIGTERM into Interrupted while a run is live (main thread only)."""
    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _die_with_parent() -> None:
    """In the child before exec: PR_SET_PDEATHSIG, so qemu dies if the lab is killed -9."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def run(payload: list[str], *, disks: int = 3, disk_size: int = 1 << 30, timeout: float = 600,
        nic: bool = False, units: str | None = "systemd", project: Path | None = REPO,
        out_dir: Path | None = None, memory_mb: int = 1024, interactive: bool = False,
        img: Image | None = None) -> RunResult:
    """Boot a fresh guest, run `payload` (argv, cwd = the checkout) in it and return its result.

    units: directory of the checkout holding osd.service/osd.socket to install and start
    before the payload (skipped when it has none); out_dir: where to copy $VMLAB_OUT.
    Raises VmTimeout after `timeout` seconds of wall clock, VmError when the guest reports
    no result, ImageError when the image cannot be built, Interrupted on SIGTERM. Everything
    the run created is gone when it returns or raises.
    """
    gc()  # first undo what runs killed outright left behind (only theirs: owner is dead)
    with _sigterm_raises(), contextlib.ExitStack() as stack:
        if img is None:
            img = stack.enter_context(image())
        run_id = f"{time.strftime('%H%M%S')}-{secrets.token_hex(4)}"
        ledger = Ledger(run_id)
        stack.callback(ledger.undo)
        run_dir = Path(tempfile.gettempdir()) / f"osd-vmlab-{run_id}"
        ledger.note(run_dir=str(run_dir))
        run_dir.mkdir(mode=0o700)  # fails rather than adopt a directory that exists
        share = run_dir / "job"
        share.mkdir()
        shutil.copy(GUEST, share / "guest.py")
        job = {"argv": list(payload), "project": project is not None, "interactive": interactive,
               "timeout": max(30, timeout - BOOT_ALLOWANCE),
               "units": f"{GUEST_SRC}/{units}" if units and project else None}
        (share / "job.json").write_text(json.dumps(job))
        argv = _qemu_argv(img, run_dir, share, run_id, disks, disk_size, project, memory_mb,
                          interactive)
        if nic:
            argv = _with_nic(ledger, run_id, argv)
        t0 = time.monotonic()
        with open(run_dir / "qemu.log", "wb") as qlog:
            proc = subprocess.Popen(argv, preexec_fn=_die_with_parent,
                                    stdin=None if interactive else subprocess.DEVNULL,
                                    stdout=None if interactive else qlog, stderr=qlog)
        ledger.note(qemu=_identity(proc.pid))
        stack.callback(_reap, proc)
        try:
            proc.wait(timeout=None if interactive else timeout)
        except subprocess.TimeoutExpired:
            raise VmTimeout(f"no result after {timeout} s{_tail(run_dir)}") from None
        return _collect(run_dir, share, time.monotonic() - t0, out_dir)


def _qemu_argv(img: Image, run_dir: Path, share: Path, run_id: str, disks: int, disk_size: int,
               project: Path | None, memory_mb: int, interactive: bool) -> list[str]:
    argv = ["qemu-system-x86_64", "-name", f"osd-vmlab-{run_id}", "-accel", "tcg", "-smp", "1",
            "-m", str(memory_mb), "-nodefaults", "-no-user-config", "-nic", "none",
            "-display", "none", "-no-reboot",
            "-serial", "mon:stdio" if interactive else f"file:{run_dir / 'console.log'}",
            "-kernel", str(img.kernel), "-initrd", str(img.initrd), "-append", CMDLINE,
            # The root is the first virtio-blk device, so it is /dev/vda (initramfs, fstab).
            "-drive", f"file={img.root},if=none,id=root,format=raw,snapshot=on,cache=unsafe",
            "-device", "virtio-blk-pci,drive=root,serial=vmlab-root",
            "-device", "virtio-rng-pci",
            "-fsdev", f"local,id=job,path={share},security_model=none",
            "-device", "virtio-9p-pci,fsdev=job,mount_tag=vmlabjob"]
    if project is not None:
        argv += ["-fsdev", f"local,id=src,path={project},security_model=none,readonly=on",
                 "-device", "virtio-9p-pci,fsdev=src,mount_tag=osdsrc"]
    for i in range(1, disks + 1):
        path = run_dir / f"disk{i}.img"
        with open(path, "wb") as f:
            f.truncate(disk_size)  # sparse
        argv += ["-drive", f"file={path},if=none,id=d{i},format=raw,cache=unsafe",
                 "-device", f"virtio-blk-pci,drive=d{i},serial=vmlab-disk{i}"]
    return argv


def _with_nic(ledger: Ledger, run_id: str, argv: list[str]) -> list[str]:
    """Give the guest a virtio NIC backed by a tap in a namespace of this run's own."""
    netns, tap = f"osdvm-{run_id}", f"vt{run_id[-8:]}"
    ledger.note(netns=netns)
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "tuntap", "add", "dev", tap, "mode", "tap"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", tap, "up"], check=True)
    mac = "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
    return ["ip", "netns", "exec", netns, *argv,
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={mac},romfile="]  # no PXE ROM needed


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _tail(run_dir: Path, n: int = 3000) -> str:
    logs = [(run_dir / name) for name in ("qemu.log", "console.log")]
    text = "".join(p.read_text(errors="replace")[-n:] for p in logs if p.exists())
    return f"; last output:\n{text}" if text else ""


def _collect(run_dir: Path, share: Path, wall: float, out_dir: Path | None) -> RunResult:
    try:
        result = json.loads((share / "result.json").read_text())
    except FileNotFoundError:
        raise VmError(f"the guest stopped without a result{_tail(run_dir)}") from None
    if "error" in result:
        raise VmError(f"the guest runner failed: {result['error']}{_tail(run_dir)}")

    def text(name: str) -> str | None:
        p = share / name
        return p.read_text(errors="replace") if p.exists() else None
    out = share / "out"
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    if out_dir is not None:
        shutil.copytree(out, out_dir, dirs_exist_ok=True)
    units = text("units.json")
    timings = {k: v for k, v in result.items() if k.endswith("_s")}
    timings["wall_s"] = round(wall, 1)
    return RunResult(returncode=result["rc"], stdout=text("stdout") or "",
                     stderr=text("stderr") or "", files=files,
                     units=json.loads(units) if units else None,
                     console=text("../console.log") or "", timings=timings,
                     journal=text("journal.txt"))


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].isalpha() else int(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the image if its recipe changed")
    b.add_argument("--rebuild", action="store_true", help="build even if cached")
    for name in ("run", "shell"):
        r = sub.add_parser(name)
        r.add_argument("--disks", type=int, default=3)
        r.add_argument("--disk-size", type=_size, default="1G", help="e.g. 64M, 1G")
        r.add_argument("--timeout", type=float, default=600)
        r.add_argument("--nic", action="store_true", help="a tap NIC in a private namespace")
        r.add_argument("--units", default="systemd", help="unit dir in the checkout ('' = none)")
        r.add_argument("--out", type=Path, help="copy the payload's $VMLAB_OUT here")
        if name == "run":
            r.add_argument("payload", nargs="+", help="command to run in the guest (after --)")
    sub.add_parser("gc", help="undo what killed runs left behind")
    args = ap.parse_args(argv)
    try:
        return _main(args)
    except (VmError, ImageError) as exc:
        print(f"vmlab: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (Interrupted); teardown has run
        print(f"vmlab: interrupted {exc}; cleaned up", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    with _sigterm_raises():
        if args.cmd == "build":
            t0 = time.monotonic()
            img = build_image(rebuild=args.rebuild)
            print(f"{img.dir} (checked in {time.monotonic() - t0:.2f} s)")
            return 0
        if args.cmd == "gc":
            print(f"undid {gc()} orphaned run(s)")
            return 0
        res = run(["bash", "-l"] if args.cmd == "shell" else args.payload, disks=args.disks,
                  disk_size=args.disk_size, timeout=args.timeout, nic=args.nic,
                  units=args.units or None, out_dir=args.out, interactive=args.cmd == "shell")
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    if res.units:
        print(f"vmlab: units: {json.dumps(res.units)}", file=sys.stderr)
    print(f"vmlab: exit {res.returncode}; timings {res.timings}", file=sys.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
