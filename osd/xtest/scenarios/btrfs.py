"""Btrfs on a whole scratch disk (disk 2): subvolumes, snapshots, quota, scrub, balance,
defrag, resize, and the read methods that show them.

With --spawn the disk is a loop device the lab grows by 64 MiB before vol.resize_max, which
must then report a larger filesystem; on a live daemon's fixed disk it must report
changed: false.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..engine import Scenarios, Trial
from .storage import filesystem, mount, unmount

scenario = Scenarios()
MiB = 1 << 20
JOB_TIMEOUT_S = 120.0


async def wait_idle(t: Trial, status: str, path: str) -> dict[str, Any]:
    """Poll a scrub or balance status until it no longer runs; the last status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOB_TIMEOUT_S
    while True:
        shown = await t.call(status, {"path": path})
        if not shown.get("running") or loop.time() > deadline:
            t.expect(status, not shown.get("running"), f"the job on {path} ends within {JOB_TIMEOUT_S:g} s")
            return shown
        await asyncio.sleep(0.2)


def _subvolume(listed: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    name = path.rsplit("/", 1)[-1]
    return next((s for s in listed if s.get("path") in (path, name) or str(s.get("path")).endswith("/" + name)), None)


@scenario("btrfs", methods=("vol.list_subvolumes", "vol.create_subvolume", "vol.snapshot_subvolume",
                            "vol.delete_subvolume", "vol.set_quota", "vol.scrub_start", "vol.scrub_status",
                            "vol.balance_start", "vol.balance_status", "vol.defrag", "vol.resize_max",
                            "vol.fs_usage", "vol.fs_df", "vol.device_stats"))
async def btrfs(t: Trial) -> None:
    disk = t.disk(1)
    made = await filesystem(t, disk, "btrfs", f"MOSXT{t.name('')[-4:]}B")
    top = await mount(t, f"UUID={made.get('uuid')}", "btrfs")
    assert top is not None  # only a case may come back unmounted

    df = await t.call("vol.fs_df", {"path": top})
    t.expect("vol.fs_df", {"Data", "Metadata", "System"} <= {str(x.get("type")).capitalize() for x in df},
             f"vol.fs_df lists Data, Metadata and System (got {[x.get('type') for x in df]})")
    await t.call("vol.fs_usage", {"path": top})
    stats = await t.call("vol.device_stats", {"path": top})
    t.expect("vol.device_stats", [s.get("device") for s in stats] == [disk],
             f"vol.device_stats has one entry, for {disk} (got {stats!r:.200})")

    create, delete, snapshot = "vol.create_subvolume", "vol.delete_subvolume", "vol.snapshot_subvolume"
    sub, snap = f"{top}/{t.name('sv')}", f"{top}/{t.name('snap')}"
    created = await t.call(create, {"path": sub}, undo=(delete, {"path": sub}))
    t.expect_changed(create, created, True, f"creating {sub}")
    t.expect(create, created.get("id", 0) >= 256, f"a subvolume id is 256 or more (got {created.get('id')})")
    t.expect_changed(create, await t.call(create, {"path": sub}), False, f"creating {sub} again")
    listed = await t.call("vol.list_subvolumes", {"path": top})
    t.expect(create, _subvolume(listed, sub) is not None, f"vol.list_subvolumes lists {sub} (got {listed!r:.300})")
    taken = await t.call(snapshot, {"source": sub, "dest": snap, "readonly": True}, undo=(delete, {"path": snap}))
    t.expect(snapshot, taken.get("changed") is True and taken.get("readonly") is True,
             f"a read-only snapshot {snap} (got {taken})")
    entry = _subvolume(await t.call("vol.list_subvolumes", {"path": top}), snap)
    t.expect(snapshot, entry is not None and entry.get("readonly") is True, f"vol.list_subvolumes shows {snap} read-only")

    quota = "vol.set_quota"
    t.expect_changed(quota, await t.call(quota, {"path": sub, "limit_bytes": 64 * MiB}), True, "setting a 64 MiB limit")
    entry = _subvolume(await t.call("vol.list_subvolumes", {"path": top}), sub) or {}
    t.expect(quota, (entry.get("quota") or {}).get("limit_bytes") == 64 * MiB,
             f"vol.list_subvolumes shows the 64 MiB limit on {sub} (got {entry.get('quota')})")
    t.expect_changed(quota, await t.call(quota, {"path": sub, "limit_bytes": 64 * MiB}), False, "setting it again")
    t.expect_changed(quota, await t.call(quota, {"path": sub, "limit_bytes": None}), True, "clearing the limit")
    entry = _subvolume(await t.call("vol.list_subvolumes", {"path": top}), sub) or {}
    t.expect(quota, (entry.get("quota") or {}).get("limit_bytes") is None, f"the limit on {sub} is cleared")

    await t.call("vol.defrag", {"path": sub, "recursive": True})
    started = await t.call("vol.scrub_start", {"path": top})
    t.expect("vol.scrub_start", started.get("path") == top, f"the scrub is of {top}")
    done = await wait_idle(t, "vol.scrub_status", top)
    t.expect("vol.scrub_start", "error" not in str(done.get("status", "")).lower() or "0 error" in
             str(done.get("status", "")).lower() or "no errors" in str(done.get("status", "")).lower(),
             f"the scrub finished without errors (status {done.get('status')!r})")
    await t.call("vol.balance_start", {"path": top, "filters": {"data": "usage=90", "metadata": "usage=90"}},
                 timeout=JOB_TIMEOUT_S)
    await wait_idle(t, "vol.balance_status", top)

    before = (await t.call("vol.usage", {"path": top})).get("size_bytes", 0)
    grown = await t.lab.grow(disk, 64)
    resized = await t.call("vol.resize_max", {"path": top})
    after = (await t.call("vol.usage", {"path": top})).get("size_bytes", 0)
    if grown:
        t.expect("vol.resize_max", resized.get("changed") is True and after >= before + 60 * MiB,
                 f"after the disk grew by 64 MiB the filesystem grew with it ({before} -> {after} bytes; {resized})")
    else:
        t.expect_changed("vol.resize_max", resized, False, "growing a filesystem that already fills its disk")

    for path in (snap, sub):
        t.expect_changed(delete, await t.call(delete, {"path": path}), True, f"deleting {path}")
        t.expect(delete, _subvolume(await t.call("vol.list_subvolumes", {"path": top}), path) is None,
                 f"vol.list_subvolumes no longer lists {path}")
        t.expect_changed(delete, await t.call(delete, {"path": path}), False, f"deleting {path} again")
    await unmount(t, top)
