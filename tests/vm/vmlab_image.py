"""Build and cache the VM lab's Debian guest image: kernel, initramfs and an ext4 root.

The image is cached under CACHE/<recipe hash>/ (outside any work tree). The recipe is this
file, the guest files in image/ beside it, the apt lists it installs and the
[project].dependencies of pyproject.toml; changing any of them gives a new hash and so a new
image. The project's own code is NOT in the image: the lab shares the checkout into the
guest on every run (see vmlab.py).

Locking: CACHE/<hash>.lock is held exclusively while that image is built and shared by every
run that boots it, so a builder never sees a half-built image (it is built in a temporary
directory and renamed into place) and pruning never removes an image in use.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = Path(__file__).resolve().with_name("image")  # init, vmlab-boot, vmlab.service
CACHE = Path(os.environ.get("VMLAB_CACHE", "/var/cache/osd-vmlab"))
KEEP = 3  # newest images kept; older ones of ours are pruned when not in use
SUITE = "bookworm"
VENV = "/opt/osd/venv"
# The daemon's runtime packages, the test tools (osd xtest runs in the guest: dnsmasq for its
# DHCP scenario, conntrack, curl) and what the guest itself needs (systemd, udev, ...).
APT_LISTS = ("deps/apt-runtime.txt", "deps/apt-test.txt", "deps/apt-vm-guest.txt")
MARKER = "osd-vmlab"  # manifest "tool" value: proves a cache entry is ours
# What the initramfs loads to mount a virtio ext4 root (ext4 asks the crypto API for crc32c).
INITRD_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
# Module subtrees a virtio guest never loads; dropping them halves the image.
MODULE_PRUNE = ("sound", "drivers/gpu", "drivers/media", "drivers/net/wireless",
                "drivers/net/ethernet", "drivers/infiniband", "drivers/iio", "drivers/usb",
                "drivers/staging", "drivers/comedi", "drivers/hwmon", "net/wireless",
                "net/mac80211", "net/bluetooth", "drivers/bluetooth")


class ImageError(RuntimeError):
    """The guest image could not be built; the message ends with the failing step's output."""


@dataclasses.dataclass(frozen=True)
class Image:
    """A finished, cached guest image."""

    dir: Path

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def root(self) -> Path:
        return self.dir / "root.img"

    @property
    def manifest(self) -> dict:
        return json.loads((self.dir / "manifest.json").read_text())


def read_list(path: Path) -> list[str]:
    """Package names of an apt list file (comments and blank lines dropped)."""
    words = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [w for w in words if w]


def project_deps() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def recipe_hash() -> str:
    """sha256 over everything that decides the image's content (idempotent, no side effects)."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for f in sorted(FILES.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    for name in APT_LISTS:
        h.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    h.update(json.dumps(project_deps()).encode())
    return h.hexdigest()[:16]


def _lock(path: Path, mode: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def image(rebuild: bool = False, log=print) -> Iterator[Image]:
    """Yield the image for the current recipe, building it first if it is not cached.

    The image stays share-locked while the caller uses it. Raises ImageError when a build
    step fails (the half-built directory is removed). Idempotent: a cached image is reused.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    key = recipe_hash()
    final = CACHE / key
    fd = _lock(CACHE / f"{key}.lock", fcntl.LOCK_SH)
    try:
        if rebuild or not (final / "manifest.json").exists():
            fcntl.flock(fd, fcntl.LOCK_EX)  # wait out any other builder of the same recipe
            if rebuild and final.exists():
                _rmtree(final)
            if not (final / "manifest.json").exists():
                _build(key, final, log)
            fcntl.flock(fd, fcntl.LOCK_SH)
            _prune(key, log)
        yield Image(final)
    finally:
        os.close(fd)


def build_image(rebuild: bool = False, log=print) -> Image:
    """Make sure the image for the current recipe exists and return it (no lock kept)."""
    with image(rebuild, log) as img:
        return img


def _build(key: str, final: Path, log) -> None:
    """Build into a fresh temporary directory and rename it to `final` (caller holds the
    recipe's lock exclusively)."""
    for stale in CACHE.glob(f".tmp-{key}-*"):  # left by a builder that was killed
        _rmtree(stale)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=CACHE))
    try:
        _build_into(tmp, key, log)
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)  # atomic: the image appears complete or not at all
    except BaseException:
        _rmtree(tmp)
        raise


def _build_into(tmp: Path, key: str, log) -> None:
    steps: dict[str, float] = {}
    t0 = time.monotonic()
    root = tmp / "rootfs"
    pkgs = sorted({p for name in APT_LISTS for p in read_list(REPO / name)})
    step = _stepper(steps, log, tmp / "build.log")
    step("debootstrap", ["unshare", "--fork", "--kill-child", "--pid", "--mount",
                         "--propagation", "private", "debootstrap", "--variant=minbase",
                         "--include=" + ",".join(pkgs), SUITE, str(root), debian_mirror()])
    kver = _install_kernel(tmp, root, step)
    _make_initrd(tmp, root, kver, step)
    freeze = _install_venv(tmp, root, step)
    _configure(root)
    _make_rootfs_image(tmp, root, step)
    _rmtree(root)
    steps["total"] = round(time.monotonic() - t0, 1)
    manifest = {"tool": MARKER, "recipe": key, "built": time.strftime("%FT%T%z"),
                "kernel": kver, "packages": pkgs, "pip": freeze, "seconds": steps}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"vmlab: image {key} built in {steps['total']:.0f} s")


def _stepper(steps: dict[str, float], log, logfile: Path):
    """Return step(name, argv, capture=False, **kw): run one build command, timed, its
    output appended to logfile (or returned, with capture=True)."""
    def step(name: str, argv: list[str], capture: bool = False, **kw) -> str:
        log(f"vmlab: build step {name} ...")
        t0 = time.monotonic()
        with open(logfile, "a") as out:
            out.write(f"\n== {name}: {argv}\n")
            out.flush()
            kw.setdefault("stdout", subprocess.PIPE if capture else out)
            if "input" not in kw:
                kw["stdin"] = subprocess.DEVNULL
            res = subprocess.run(argv, stderr=out, **kw)
        steps[name] = round(steps.get(name, 0) + time.monotonic() - t0, 1)
        if res.returncode:
            tail = logfile.read_text()[-3000:]
            raise ImageError(f"step {name} failed (exit {res.returncode}):\n{tail}")
        return res.stdout.decode() if capture else ""
    return step


def debian_mirror() -> str:
    """The Debian archive the host's apt uses for SUITE (VMLAB_MIRROR overrides)."""
    if os.environ.get("VMLAB_MIRROR"):
        return os.environ["VMLAB_MIRROR"]
    src = Path("/etc/apt")
    for f in sorted((src / "sources.list.d").glob("*.sources")):
        for stanza in f.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines()
                          if ":" in line and not line.startswith(("#", " ")))
            fields = {k.strip(): v.split() for k, v in fields.items()}
            if "deb" in fields.get("Types", []) and SUITE in fields.get("Suites", []):
                return fields["URIs"][0]
    for f in [src / "sources.list", *sorted((src / "sources.list.d").glob("*.list"))]:
        for line in f.read_text().splitlines() if f.exists() else []:
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    raise ImageError(f"no apt source for {SUITE} on this host; set VMLAB_MIRROR")


def _install_kernel(tmp: Path, root: Path, step) -> str:
    """Download the distribution kernel, keep vmlinuz, copy its modules into the rootfs."""
    deps = step("kernel-resolve", ["apt-cache", "depends", "linux-image-amd64"],
                capture=True)
    pkg = next(w.split(":")[1].strip() for w in deps.splitlines()
               if w.strip().startswith("Depends: linux-image-"))
    kdir = tmp / "kernel"
    kdir.mkdir()
    step("kernel-download", ["apt-get", "download", "-o", "APT::Sandbox::User=root", pkg],
         cwd=kdir)
    step("kernel-extract", ["dpkg", "-x", next(kdir.glob("*.deb")).name, "x"], cwd=kdir)
    kver = next((kdir / "x/lib/modules").iterdir()).name
    shutil.copy(kdir / f"x/boot/vmlinuz-{kver}", tmp / "vmlinuz")
    src = kdir / "x/lib/modules" / kver
    pruned = {str(src / "kernel" / p) for p in MODULE_PRUNE}
    shutil.copytree(src, root / "usr/lib/modules" / kver,
                    ignore=lambda d, names: [n for n in names if f"{d}/{n}" in pruned])
    step("depmod", ["depmod", "-b", str(root), kver])
    _rmtree(kdir)
    return kver


def _make_initrd(tmp: Path, root: Path, kver: str, step) -> None:
    """A busybox initramfs that loads INITRD_MODULES (with their dependencies) in order."""
    moddir = root / "usr/lib/modules" / kver
    deps = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[Path(mod).name.removesuffix(".ko")] = (mod, rest.split())
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in order:
            for dep in deps[name][1]:
                visit(Path(dep).name.removesuffix(".ko"))
            order.append(name)
    for name in INITRD_MODULES:
        visit(name)
    ird = tmp / "initrd"
    (ird / "bin").mkdir(parents=True)
    (ird / "mods").mkdir()
    shutil.copy("/bin/busybox", ird / "bin/busybox")  # from busybox-static: no libraries
    for name in order:
        shutil.copy(moddir / deps[name][0], ird / "mods" / f"{name}.ko")
    (ird / "init").write_text((FILES / "init").read_text().replace("@MODULES@", " ".join(order)))
    os.chmod(ird / "init", 0o755)
    names = sorted(str(p.relative_to(ird)) for p in ird.rglob("*"))
    with open(tmp / "initrd.img", "wb") as out:
        step("initrd", ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=ird,
             input=("\n".join(names) + "\n").encode(), stdout=out)
    _rmtree(ird)


def _install_venv(tmp: Path, root: Path, step) -> list[str]:
    """Create VENV from Debian's python3 and pip-install the project's dependencies into it.

    pip runs chrooted (it shares the host's network) with the host's CA bundle, since this
    host's TLS goes through a CA that the guest's ca-certificates does not know.
    """
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C.UTF-8",
           "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PIP_DEFAULT_TIMEOUT": "180"}
    host_ca = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    if host_ca.is_file():
        shutil.copy(host_ca, root / "tmp/host-ca.crt")
        env["PIP_CERT"] = "/tmp/host-ca.crt"
    chroot = ["unshare", "--fork", "--kill-child", "--pid", f"--mount-proc={root}/proc",
              "chroot", str(root)]
    step("venv", [*chroot, "python3", "-m", "venv", "--system-site-packages", VENV], env=env)
    step("pip", [*chroot, f"{VENV}/bin/pip", "install", "-q", *project_deps()], env=env)
    freeze = step("pip-freeze", [*chroot, f"{VENV}/bin/pip", "freeze", "--local"],
                  capture=True, env=env)
    (root / "tmp/host-ca.crt").unlink(missing_ok=True)
    return freeze.split()


def _configure(root: Path) -> None:
    """Guest settings: hostname, fstab, masked consoles, and the enabled job runner."""
    etc = root / "etc"
    (etc / "hostname").write_text("osd-vmlab\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 osd-vmlab\n::1 localhost\n")
    (etc / "fstab").write_text("/dev/vda / ext4 rw 0 0\n")
    (etc / "resolv.conf").unlink(missing_ok=True)
    systemd = etc / "systemd/system"
    # serial-getty would hang up the console the lab logs, and nothing logs in; the rest
    # only cost boot time under TCG (gettys, utmp, ext4 scrub) and touch nothing osd uses.
    for unit in ("serial-getty@ttyS0.service", "getty.target", "getty-static.service",
                 "systemd-update-utmp.service", "systemd-update-utmp-runlevel.service",
                 "e2scrub_reap.service"):
        (systemd / unit).unlink(missing_ok=True)
        (systemd / unit).symlink_to("/dev/null")
    shutil.copy(FILES / "vmlab.service", systemd / "vmlab.service")
    # A throwaway guest needs no journal on disk; flushing it costs a second at boot.
    (etc / "systemd/journald.conf.d").mkdir(exist_ok=True)
    (etc / "systemd/journald.conf.d/vmlab.conf").write_text("[Journal]\nStorage=volatile\n")
    wants = systemd / "multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    (wants / "vmlab.service").symlink_to("/etc/systemd/system/vmlab.service")
    hook = root / "usr/local/sbin/vmlab-boot"
    shutil.copy(FILES / "vmlab-boot", hook)
    hook.chmod(0o755)
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (root / junk).glob("*"):
            if p.is_file():
                p.unlink()


def _make_rootfs_image(tmp: Path, root: Path, step) -> None:
    used = int(subprocess.run(["du", "-sxm", str(root)], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    size = used + used // 2 + 1024  # MiB: room for the payload's writes in the guest
    # Inode tables are initialised now, not lazily by a kernel thread in the slow guest.
    step("mkfs", ["mkfs.ext4", "-q", "-F", "-L", "osdvm-root", "-E",
                  "lazy_itable_init=0,lazy_journal_init=0", "-d", str(root),
                  str(tmp / "root.img"), f"{size}M"])


def _prune(current: str, log) -> None:
    """Remove our images beyond the KEEP newest, and lock files of recipes never built,
    skipping any that a run or a builder holds locked."""
    ours = []
    for lock in CACHE.glob("*.lock"):
        if not (CACHE / lock.stem).exists() and lock.stem != current:
            _remove_if_unlocked(lock, None, log)
    for d in CACHE.iterdir():
        try:
            manifest = json.loads((d / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("tool") == MARKER and d.name == manifest.get("recipe"):
            ours.append((d.stat().st_mtime, d))
    for _, d in sorted(ours, reverse=True)[KEEP:]:
        if d.name == current:
            continue
        _remove_if_unlocked(CACHE / f"{d.name}.lock", d, log)


def _remove_if_unlocked(lock: Path, image_dir: Path | None, log) -> None:
    try:
        fd = _lock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # in use by a run or a builder
    try:
        if image_dir is not None:
            _rmtree(image_dir)
            log(f"vmlab: pruned old image {image_dir.name}")
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _rmtree(path: Path) -> None:
    """rmtree that refuses to descend into a mount point (a leftover proc/sys mount)."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        mounted = [line.split()[4] for line in f]
    if any(m.startswith(prefix) for m in mounted):
        raise ImageError(f"refusing to remove {path}: something is mounted inside it")
    shutil.rmtree(path)
