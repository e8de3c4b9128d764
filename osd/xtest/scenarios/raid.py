"""Multi-device storage over scratch disks 1 and 3: MD RAID-1 and btrfs RAID-1.

Members are new partitions (one on each disk), so both scenarios share the two disks.
A kernel without MD answers -32010 to every vol.*md* method; a profile that expects that
sees each method called once with a placeholder device.
"""

from __future__ import annotations

from ..engine import Scenarios, Trial
from .storage import mount, partition, unmount

scenario = Scenarios()


@scenario("MD RAID-1", methods=("vol.list_md_arrays", "vol.create_md_array", "vol.md_detail",
                                "vol.stop_md_array"))
async def md_raid(t: Trial) -> None:
    create, stop, detail = "vol.create_md_array", "vol.stop_md_array", "vol.md_detail"
    before = await t.call("vol.list_md_arrays", optional=True)
    name = t.name("md")
    members = [(await partition(t, t.disk(i), 64, f"xt-md{i}", "raid"))["path"] for i in (0, 2)]
    made = await t.call(create, {"devices": members, "level": "raid1", "name": name}, optional=True)
    if made is None:  # not supported, as the profile expects: the others must say so too
        placeholder = f"/dev/md/{name}"
        await t.call(detail, {"device": placeholder}, optional=True)
        await t.call(stop, {"device": placeholder}, optional=True)
        return
    device = made.get("device", "")
    t.undo(stop, {"device": device})
    t.expect_changed(create, made, True, f"creating an array of {members}")
    arrays = await t.call("vol.list_md_arrays")
    entry = next((a for a in arrays if a.get("device") == device), None)
    if t.expect(create, entry is not None, f"vol.list_md_arrays lists {device} (got {arrays!r:.300})"):
        shown = sorted(m.get("device") for m in entry.get("members", []))
        t.expect(create, entry.get("level") == "raid1" and shown == sorted(members),
                 f"{device} is raid1 over {members} (got {entry.get('level')}, {shown})")
    if before is not None:
        t.expect("vol.list_md_arrays", len(arrays) == len(before) + 1, "exactly one more array is listed")
    shown = await t.call(detail, {"device": device})
    t.expect(detail, "raid1" in str(shown).lower(), f"vol.md_detail({device}) says raid1")
    t.expect_changed(stop, await t.call(stop, {"device": device}), True, f"stopping {device}")
    t.expect(stop, all(a.get("device") != device for a in await t.call("vol.list_md_arrays")),
             f"vol.list_md_arrays no longer lists {device}")
    t.expect_changed(stop, await t.call(stop, {"device": device}), False, f"stopping {device} again")


@scenario("btrfs RAID-1", methods=("vol.create_btrfs_raid",))
async def btrfs_raid(t: Trial) -> None:
    create = "vol.create_btrfs_raid"
    members = [(await partition(t, t.disk(i), 160, f"xt-br{i}"))["path"] for i in (0, 2)]
    label = f"MOSXT{t.name('')[-4:]}R"
    made = await t.call(create, {"devices": members, "label": label})
    t.expect_changed(create, made, True, f"creating btrfs raid1 over {members}")
    t.expect(create, sorted(made.get("devices", [])) == sorted(members), f"the result names {members}")
    top = await mount(t, f"UUID={made.get('uuid')}", "btrfs")
    assert top is not None
    stats = await t.call("vol.device_stats", {"path": top})
    t.expect(create, sorted(s.get("device") for s in stats) == sorted(members),
             f"vol.device_stats shows both members (got {stats!r:.300})")
    df = await t.call("vol.fs_df", {"path": top})
    profiles = {str(x.get("type")).lower(): str(x.get("profile")).lower() for x in df}
    t.expect(create, profiles.get("data") == "raid1" and profiles.get("metadata") == "raid1",
             f"data and metadata are raid1 (got {profiles})")
    await unmount(t, top)
