"""The vol.* methods: storage, as data (names, rights, tiers, params, results)."""

from .types import (
    BALANCE_FILTER, BOOL, BTRFS_PROFILE, BYTES, DEVICE, FS_TYPE, INT, LABEL, MOUNT_FS_TYPE, MOUNT_OPTIONS,
    MOUNT_SOURCE, PART_TYPE, PATH, TEXT, array, changed, method, nullable, obj,
)

DISK = obj(name=TEXT, path=TEXT, kind=TEXT, size_bytes=BYTES, model=nullable(TEXT), serial=nullable(TEXT),
           rotational=BOOL, removable=BOOL, partition_table=nullable(TEXT), in_use=BOOL)
PARTITION = obj(path=TEXT, disk=TEXT, number=INT, start_bytes=BYTES, size_bytes=BYTES, type=nullable(TEXT),
                part_label=nullable(TEXT), fs_type=nullable(TEXT), fs_label=nullable(TEXT), fs_uuid=nullable(TEXT))
FILESYSTEM = obj(device=TEXT, type=TEXT, label=TEXT, uuid=nullable(TEXT), mount_points=array(TEXT))
MOUNT_ENTRY = obj(target=TEXT, source=TEXT, fs_type=TEXT, options=TEXT, root=TEXT, mount_id=INT, parent_id=INT,
            managed=BOOL)
SUBVOLUME = obj(id=INT, path=TEXT, parent=nullable(INT), uuid=nullable(TEXT), readonly=BOOL,
                quota=nullable(obj(limit_bytes=nullable(BYTES), referenced_bytes=BYTES, exclusive_bytes=BYTES)))
EXTENT = obj(start_bytes=BYTES, size_bytes=BYTES)
MD_ARRAY = obj(device=TEXT, level=TEXT, state=TEXT, members=array(obj(device=TEXT, role=TEXT, state=TEXT)),
               sync=nullable(obj(action=TEXT, percent={"type": "number"})))
JOB = changed(path=TEXT, running=BOOL)
BTRFS_PATH = {"path": PATH}

# ---------------------------------------------------------------- read
LIST_DISKS = method("vol.list_disks", "read", "read",
                    "Whole block devices: name, path, size_bytes, model, serial, rotational, removable, "
                    "partition_table, in_use", result=array(DISK))
LIST_PARTITIONS = method("vol.list_partitions", "read", "read",
                         "Partitions with filesystem info: path, disk, number, start_bytes, size_bytes, type, "
                         "part_label, fs_type, fs_label, fs_uuid",
                         optional={"disk": DEVICE}, result=array(PARTITION))
LIST_FILESYSTEMS = method("vol.list_filesystems", "read", "read",
                          "Filesystems whose label carries the MOS prefix (configurable, default 'MOS'), with "
                          "device, type, uuid, mount points", result=array(FILESYSTEM))
LIST_MOUNTS = method("vol.list_mounts", "read", "read",
                     "Mount points from /proc/self/mountinfo, enriched: source, fs_type, options, root, mount_id, "
                     "parent_id, managed", result=array(MOUNT_ENTRY))
LIST_SUBVOLUMES = method("vol.list_subvolumes", "read", "read",
                         "Btrfs subvolumes under path (default: the mounted MOSDATA filesystem): id, path, parent, "
                         "uuid, readonly, quota", optional=BTRFS_PATH, result=array(SUBVOLUME))
LIST_FREE_SPACE = method("vol.list_free_space", "read", "read",
                         "Unpartitioned extents on a disk: [{start_bytes, size_bytes}]",
                         required={"disk": DEVICE}, result=array(EXTENT))
INVENTORY = method("vol.inventory", "read", "read",
                   "Full storage inventory snapshot: disks, partitions, filesystems, mounts, md arrays",
                   result=obj(disks=array(DISK), partitions=array(PARTITION), filesystems=array(FILESYSTEM),
                              mounts=array(MOUNT_ENTRY), md_arrays=array(MD_ARRAY)))
FEASIBLE_TOPOLOGIES = method("vol.feasible_topologies", "read", "read",
                             "Topology templates (single, btrfs-raid1, md-raid1, ...) with feasible, reason and "
                             "candidate disks",
                             result=array(obj(name=TEXT, feasible=BOOL, reason=TEXT, disks=array(TEXT))))
USAGE = method("vol.usage", "read", "read",
               "Filesystem usage of a mounted path: size, used, available bytes, inodes",
               required=BTRFS_PATH, result=obj(size_bytes=BYTES, used_bytes=BYTES, available_bytes=BYTES,
                                               inodes=INT, inodes_used=INT, inodes_free=INT))
DEVICE_STATS = method("vol.device_stats", "read", "read", "Btrfs per-device error counters",
                      required=BTRFS_PATH, result=array(obj(device=TEXT, devid=INT)))
SCRUB_STATUS = method("vol.scrub_status", "read", "read", "Btrfs scrub status",
                      required=BTRFS_PATH, result=obj(running=BOOL, status=TEXT))
FS_USAGE = method("vol.fs_usage", "read", "read",
                  "Detailed btrfs filesystem usage (allocation per profile and device)", required=BTRFS_PATH)
FS_DF = method("vol.fs_df", "read", "read", "Btrfs filesystem df: data/metadata/system totals and used, per profile",
               required=BTRFS_PATH,
               result=array(obj(type=TEXT, profile=TEXT, total_bytes=BYTES, used_bytes=BYTES)))
BALANCE_STATUS = method("vol.balance_status", "read", "read", "Btrfs balance status",
                        required=BTRFS_PATH, result=obj(running=BOOL, status=TEXT))
LIST_MD_ARRAYS = method("vol.list_md_arrays", "read", "read",
                        "Linux MD arrays from /proc/mdstat: device, level, state, members, sync progress",
                        result=array(MD_ARRAY))
MD_DETAIL = method("vol.md_detail", "read", "read", "Detailed MD array information (mdadm --detail)",
                   required={"device": DEVICE})

# ---------------------------------------------------------------- write
CREATE_PARTITION = method("vol.create_partition", "write", "destructive",
                          "Create a GPT partition in the first free extent (rest of it when size_bytes is absent); "
                          "returns {path, number}",
                          required={"disk": DEVICE},
                          optional={"size_bytes": {"type": "integer", "minimum": 1048576,
                                                   "description": "at least 1 MiB; rounded up to whole MiB"},
                                    "type": PART_TYPE, "label": {**LABEL, "maxLength": 36}},
                          result=changed(path=TEXT, number=INT, start_bytes=BYTES, size_bytes=BYTES))
CREATE_FILESYSTEM = method("vol.create_filesystem", "write", "destructive",
                           "Format a device: fs_type btrfs|ext4|vfat|swap|bcachefs; refuses a device that holds a "
                           "filesystem unless force",
                           required={"device": DEVICE, "fs_type": FS_TYPE},
                           optional={"label": LABEL, "force": BOOL},
                           result=changed(device=TEXT, fs_type=TEXT, uuid=nullable(TEXT)))
MOUNT = method("vol.mount", "write", "shared",
                "Mount a filesystem (source: device path, UUID=..., LABEL=...); persisted and restored on restart "
                "unless persist=false",
                required={"source": MOUNT_SOURCE, "target": PATH},
                optional={"fs_type": MOUNT_FS_TYPE, "options": MOUNT_OPTIONS, "persist": BOOL},
                result=changed(target=TEXT, source=TEXT, persist=BOOL))
UNMOUNT = method("vol.unmount", "write", "shared", "Unmount a path and forget it",
                 required={"target": PATH}, optional={"lazy": BOOL}, result=changed())
CREATE_SUBVOLUME = method("vol.create_subvolume", "write", "scratch", "Create a btrfs subvolume",
                          required=BTRFS_PATH, result=changed(path=TEXT, id=INT))
DELETE_SUBVOLUME = method("vol.delete_subvolume", "write", "scratch", "Delete a btrfs subvolume",
                          required=BTRFS_PATH, result=changed())
SNAPSHOT_SUBVOLUME = method("vol.snapshot_subvolume", "write", "scratch", "Snapshot a subvolume",
                            required={"source": PATH, "dest": PATH}, optional={"readonly": BOOL},
                            result=changed(path=TEXT, readonly=BOOL))
SET_QUOTA = method("vol.set_quota", "write", "shared",
                   "Set (or clear with null) a qgroup limit on a subvolume; enables quota on the filesystem when needed",
                   required={"path": PATH, "limit_bytes": nullable({"type": "integer", "minimum": 1})},
                   result=changed(limit_bytes=nullable(BYTES)))
SCRUB_START = method("vol.scrub_start", "write", "shared", "Start a btrfs scrub in the background",
                     required=BTRFS_PATH, result=JOB)
BALANCE_START = method("vol.balance_start", "write", "shared", "Start a btrfs balance in the background",
                       required=BTRFS_PATH,
                       optional={"filters": {"type": "object", "additionalProperties": False,
                                             "properties": {"data": BALANCE_FILTER, "metadata": BALANCE_FILTER,
                                                            "system": BALANCE_FILTER},
                                             "description": "btrfs balance filters per chunk type, e.g. "
                                                            "{\"data\": \"usage=50\"}"}},
                       result=JOB)
DEFRAG = method("vol.defrag", "write", "shared", "Defragment a file or directory",
                required=BTRFS_PATH, optional={"recursive": BOOL}, result=changed())
RESIZE_MAX = method("vol.resize_max", "write", "shared", "Grow a btrfs filesystem to the size of its device",
                    required=BTRFS_PATH, optional={"devid": {"type": "integer", "minimum": 1}},
                    result=changed(size_bytes=BYTES))

# ---------------------------------------------------------------- admin
_DEVICES = {"type": "array", "items": DEVICE, "minItems": 2, "maxItems": 32, "uniqueItems": True}
CREATE_MD_ARRAY = method("vol.create_md_array", "admin", "raid", "Create an MD RAID-1 array from devices; returns {device}",
                         required={"devices": _DEVICES},
                         optional={"level": {"type": "string", "enum": ["raid1"],
                                             "description": "the RAID level; only raid1 is offered"},
                                   "name": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,32}$"}},
                         result=changed(device=TEXT))
STOP_MD_ARRAY = method("vol.stop_md_array", "admin", "raid", "Stop an MD array",
                       required={"device": DEVICE}, result=changed())
CREATE_BTRFS_RAID = method("vol.create_btrfs_raid", "admin", "raid",
                           "Create a multi-device btrfs filesystem (raid1 by default)",
                           required={"devices": _DEVICES},
                           optional={"data_profile": BTRFS_PROFILE, "metadata_profile": BTRFS_PROFILE, "label": LABEL},
                           result=changed(uuid=nullable(TEXT), devices=array(TEXT)))

ALL = (
    LIST_DISKS, LIST_PARTITIONS, LIST_FILESYSTEMS, LIST_MOUNTS, LIST_SUBVOLUMES, LIST_FREE_SPACE, INVENTORY,
    FEASIBLE_TOPOLOGIES, USAGE, DEVICE_STATS, SCRUB_STATUS, FS_USAGE, FS_DF, BALANCE_STATUS, LIST_MD_ARRAYS,
    MD_DETAIL, CREATE_PARTITION, CREATE_FILESYSTEM, MOUNT, UNMOUNT, CREATE_SUBVOLUME, DELETE_SUBVOLUME,
    SNAPSHOT_SUBVOLUME, SET_QUOTA, SCRUB_START, BALANCE_START, DEFRAG, RESIZE_MAX, CREATE_MD_ARRAY, STOP_MD_ARRAY,
    CREATE_BTRFS_RAID,
)
