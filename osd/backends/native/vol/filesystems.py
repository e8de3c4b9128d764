"""Making filesystems (btrfs, ext4, vfat, swap, bcachefs) and knowing which ones this kernel can mount."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

from .... import tools
from ....errors import InvalidParams, NotSupported

PROC_FILESYSTEMS = "/proc/filesystems"


@dataclasses.dataclass(frozen=True)
class Maker:
    argv: tuple[str, ...]     # the command, with the flags that overwrite without asking
    label_flag: str
    label_max: int            # bytes
    package: str


MAKERS = {
    "btrfs": Maker(("mkfs.btrfs", "-q", "-f"), "-L", 255, "btrfs-progs"),
    "ext4": Maker(("mkfs.ext4", "-q", "-F"), "-L", 16, "e2fsprogs"),
    # -I: mkfs.fat's own whole-disk check; the guard and the probe decide what may be formatted
    "vfat": Maker(("mkfs.vfat", "-I"), "-n", 11, "dosfstools"),
    "swap": Maker(("mkswap", "-f"), "-L", 16, "util-linux"),
    "bcachefs": Maker(("bcachefs", "format", "-f"), "-L", 32, "bcachefs-tools"),
}


def kernel_supports(fs_type: str, proc: str = PROC_FILESYSTEMS, modules: str | None = None) -> bool:
    """True when the kernel has ``fs_type`` built in or loaded, or can load it as a module."""
    if fs_type == "swap":
        return os.path.exists("/proc/swaps")
    try:
        with open(proc) as f:
            if any(line.split()[-1] == fs_type for line in f if line.strip()):
                return True
    except FileNotFoundError:
        pass
    return module_available(fs_type, modules)


@functools.lru_cache(maxsize=64)
def module_available(name: str, modules: str | None = None) -> bool:
    """True when kernel module ``name`` is built in or installed (modules.builtin / modules.dep).

    Cached for the process: the module index of the running kernel does not change under it.

    Module file names may spell '_' as '-' (md_mod is md-mod.ko), so both are compared alike.
    """
    base = modules or f"/lib/modules/{os.uname().release}"
    wanted = name.replace("-", "_")
    for index in ("modules.dep", "modules.builtin"):
        try:
            with open(os.path.join(base, index)) as f:
                for line in f:
                    stem = os.path.basename(line.split(":", 1)[0].strip()).split(".ko", 1)[0]
                    if stem.replace("-", "_") == wanted:
                        return True
        except FileNotFoundError:
            continue
    return False


def require_kernel(fs_type: str) -> None:
    """Raises NotSupported("kernel has no X support") when the kernel cannot mount ``fs_type``."""
    if not kernel_supports(fs_type):
        raise NotSupported(f"kernel has no {fs_type} support")


def check_maker(fs_type: str) -> Maker:
    """The Maker for ``fs_type``; raises NotSupported naming the missing tool (and for bcachefs the
    missing kernel support: a bcachefs nobody can mount is not offered)."""
    maker = MAKERS[fs_type]
    problems = []
    if tools.which(maker.argv[0]) is None:
        problems.append(f"{maker.argv[0]} is not installed (Debian package {maker.package})")
    if fs_type == "bcachefs" and not kernel_supports("bcachefs"):
        problems.append("kernel has no bcachefs support")
    if problems:
        raise NotSupported("; ".join(problems))
    return maker


def check_label(fs_type: str, label: str | None) -> None:
    """Raises InvalidParams when ``label`` does not fit ``fs_type``."""
    if label is None:
        return
    limit = MAKERS[fs_type].label_max
    if len(label.encode()) > limit:
        raise InvalidParams(f"a {fs_type} label holds at most {limit} bytes", "/label")


async def make(fs_type: str, devices: Sequence[str], label: str | None, extra: Sequence[str] = ()) -> None:
    """Run the maker on ``devices`` (several only for btrfs); raises ToolFailed / NotSupported / Timeout."""
    maker = check_maker(fs_type)
    argv = [*maker.argv, *extra]
    if label is not None:
        argv += [maker.label_flag, label]
    await tools.run([*argv, *devices], deadline_s=300)
