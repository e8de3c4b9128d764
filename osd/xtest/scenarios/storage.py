"""Partitions, filesystems and mounts on scratch disk 1: GPT partitions, ext4, vfat, swap.

Scratch disk 1 must be blank (no partitions) when the run starts: the runner never wipes a
disk itself. Formatting what is already there identically is changed: false; anything else
there is -32005 unless force. Mounts go below the lab's mount point, with persist=false, and are unmounted
again; labels start with MOS so that vol.list_filesystems (default label_prefix) shows them.
"""

from __future__ import annotations

from typing import Any

from ..engine import Scenarios, Stop, Trial

scenario = Scenarios()
MiB = 1 << 20
CONFLICT = -32005


async def partition(t: Trial, disk: str, size_mib: int, label: str, kind: str = "linux") -> dict[str, Any]:
    """A new partition on ``disk``, checked through vol.list_partitions and vol.list_free_space."""
    create = "vol.create_partition"
    free_before = sum(x.get("size_bytes", 0) for x in await t.call("vol.list_free_space", {"disk": disk}))
    made = await t.call(create, {"disk": disk, "size_bytes": size_mib * MiB, "type": kind, "label": label})
    t.expect_changed(create, made, True, f"creating a {size_mib} MiB partition on {disk}")
    t.expect(create, made.get("size_bytes", 0) >= size_mib * MiB, f"the partition has at least {size_mib} MiB")
    listed = next((p for p in await t.call("vol.list_partitions", {"disk": disk}) if p.get("path") == made["path"]),
                  None)
    if t.expect(create, listed is not None, f"vol.list_partitions(disk={disk}) lists {made['path']}"):
        t.expect(create, (listed.get("number"), listed.get("part_label")) == (made.get("number"), label),
                 f"{made['path']} is number {made.get('number')} labelled {label!r} (got {listed})")
    free_after = sum(x.get("size_bytes", 0) for x in await t.call("vol.list_free_space", {"disk": disk}))
    t.expect("vol.list_free_space", free_before - free_after >= size_mib * MiB,
             f"free space on {disk} shrank by at least {size_mib} MiB ({free_before} -> {free_after} bytes)")
    return made


async def filesystem(t: Trial, device: str, fs_type: str, label: str | None = None) -> dict[str, Any]:
    """Format ``device``; vol.list_partitions must then show the type (and label)."""
    params = {"device": device, "fs_type": fs_type, **({"label": label} if label else {})}
    made = await t.call("vol.create_filesystem", params)
    t.expect_changed("vol.create_filesystem", made, True, f"making {fs_type} on {device}")
    shown = next((p for p in await t.call("vol.list_partitions") if p.get("path") == device), None)
    if shown is not None:  # whole disks are not partitions
        t.expect("vol.create_filesystem", shown.get("fs_type") == fs_type and shown.get("fs_label") == label,
                 f"vol.list_partitions shows {fs_type} labelled {label!r} on {device} (got {shown})")
    return made


async def mount(t: Trial, source: str, fs_type: str, *, case: str | None = None) -> str | None:
    """Mount ``source`` on a new directory below the mount point and check it; the target, or None."""
    target = t.lab.make_dir(f"{t.lab.mount_point}/{t.name(fs_type[:4])}")
    spec = {"source": source, "target": target, "fs_type": fs_type, "persist": False}
    made = await t.call("vol.mount", spec, case=case, optional=case is not None,
                        undo=("vol.unmount", {"target": target}))
    if made is None:
        return None
    t.expect_changed("vol.mount", made, True, f"mounting {source} on {target}")
    entry = next((m for m in await t.call("vol.list_mounts") if m.get("target") == target), None)
    t.expect("vol.mount", entry is not None and entry.get("fs_type") == fs_type,
             f"vol.list_mounts shows {target} as {fs_type} (got {entry})")
    t.expect_changed("vol.mount", await t.call("vol.mount", spec, case=case), False, f"mounting {target} again")
    usage = await t.call("vol.usage", {"path": target})
    t.expect("vol.usage", usage.get("size_bytes", 0) > 0 and 0 <= usage.get("available_bytes", -1)
             <= usage["size_bytes"], f"vol.usage({target}) gives a size and what is available (got {usage})")
    return target


async def unmount(t: Trial, target: str) -> None:
    t.expect_changed("vol.unmount", await t.call("vol.unmount", {"target": target}), True, f"unmounting {target}")
    t.expect("vol.unmount", all(m.get("target") != target for m in await t.call("vol.list_mounts")),
             f"vol.list_mounts no longer shows {target}")
    t.expect_changed("vol.unmount", await t.call("vol.unmount", {"target": target}), False,
                     f"unmounting {target} again")


@scenario("partitions and filesystems", methods=("vol.create_partition", "vol.list_free_space",
                                                 "vol.create_filesystem", "vol.mount", "vol.unmount", "vol.usage"),
          cases=("vol.mount:vfat",))
async def partitions_and_filesystems(t: Trial) -> None:
    disk = t.disk(0)
    existing = await t.call("vol.list_partitions", {"disk": disk})
    if existing:
        raise Stop(f"scratch disk {disk} is not blank ({len(existing)} partitions); the runner needs blank disks "
                   f"(wipefs -a {disk})")
    label = f"MOSXT{t.name('')[-4:]}"
    ext4 = await partition(t, disk, 32, "xt-ext4")
    vfat = await partition(t, disk, 32, "xt-vfat", "efi")
    swap = await partition(t, disk, 16, "xt-swap", "swap")

    made = await filesystem(t, ext4["path"], "ext4", label)
    again = await t.call("vol.create_filesystem", {"device": ext4["path"], "fs_type": "ext4", "label": label})
    t.expect("vol.create_filesystem", again.get("changed") is False and again.get("uuid") == made.get("uuid"),
             f"making the same filesystem again: changed false, the same uuid (got {again})")
    await t.call("vol.create_filesystem", {"device": ext4["path"], "fs_type": "swap"}, expect_error=CONFLICT)
    forced = await t.call("vol.create_filesystem", {"device": ext4["path"], "fs_type": "ext4", "label": label,
                                                    "force": True})
    t.expect("vol.create_filesystem", forced.get("uuid") not in (None, made.get("uuid")),
             "force=true makes a new filesystem (a new uuid)")
    listed = await t.call("vol.list_filesystems")
    t.expect("vol.list_filesystems", any(f.get("label") == label and f.get("device") == ext4["path"] for f in listed),
             f"vol.list_filesystems shows {ext4['path']} labelled {label}")
    target = await mount(t, f"UUID={forced.get('uuid')}", "ext4")
    if target is not None:
        mounted = next((f for f in await t.call("vol.list_filesystems") if f.get("label") == label), {})
        t.expect("vol.list_filesystems", target in mounted.get("mount_points", []),
                 f"vol.list_filesystems shows {label} mounted on {target}")
        await unmount(t, target)

    await filesystem(t, swap["path"], "swap")
    await filesystem(t, vfat["path"], "vfat", "XTVFAT")
    target = await mount(t, vfat["path"], "vfat", case="vfat")
    if target is not None:
        await unmount(t, target)
