"""JSON Schema fragments for parameter and result types, and the builders of MethodSpecs."""

from __future__ import annotations

from typing import Any

from ..registry import MethodSpec, Right, Tier

Schema = dict[str, Any]

# ---------------------------------------------------------------- scalar types
BOOL: Schema = {"type": "boolean"}
TEXT: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
UINT32: Schema = {"type": "integer", "minimum": 0, "maximum": 4294967295}
COUNT: Schema = {"type": "integer", "minimum": 0}
BYTES: Schema = {"type": "integer", "minimum": 0, "description": "a size in bytes"}

# Linux: at most 15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace, not '.' or '..'.
IFNAME: Schema = {
    "type": "string",
    "pattern": r"^(?!\.{1,2}$)[^/:\s]{1,15}$",
    "description": "a Linux interface name (1-15 characters, no '/', ':' or whitespace)",
}
IP: Schema = {"type": "string", "format": "ip-address", "maxLength": 45, "description": "an IPv4 or IPv6 address"}
CIDR: Schema = {
    "type": "string",
    "format": "ip-network",
    "maxLength": 49,
    "description": "an IPv4 or IPv6 network in CIDR form (a bare address means /32 or /128)",
}
FAMILY: Schema = {"type": "string", "enum": ["inet", "inet6"], "description": "address family"}
TABLE: Schema = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 4294967295},
        {"type": "string", "enum": ["main", "local", "default"]},
    ],
    "description": "a routing table by number (1-4294967295) or name (main, local, default)",
}
PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
PORT_RANGE: Schema = {
    "anyOf": [
        PORT,
        {"type": "string", "pattern": r"^[0-9]{1,5}-[0-9]{1,5}$", "format": "port-range"},
    ],
    "description": "a port (1-65535) or an inclusive range 'low-high'",
}
PROTO: Schema = {"type": "string", "enum": ["tcp", "udp"]}
ZONE: Schema = {"type": "integer", "minimum": 0, "maximum": 65535, "description": "a conntrack zone"}
MAC: Schema = {
    "type": "string",
    "pattern": r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$",
    "description": "an Ethernet address, six colon-separated hex bytes",
}
MTU: Schema = {"type": "integer", "minimum": 68, "maximum": 65535}
COMMENT: Schema = {"type": "string", "maxLength": 128, "pattern": r"^[^\x00-\x1f\"\\]*$"}
RULE_ID: Schema = {"type": "string", "pattern": r"^[a-z]+-[0-9a-f]{8,32}$", "description": "an id returned by an add method"}

DEVICE: Schema = {
    "type": "string",
    "pattern": r"^/dev/[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*$",
    "maxLength": 255,
    "description": "a block device path under /dev",
}
PATH: Schema = {
    "type": "string",
    "pattern": r"^/[^\x00]*$",
    "maxLength": 4095,
    "description": "an absolute path",
}
MOUNT_SOURCE: Schema = {
    "anyOf": [
        DEVICE,
        {"type": "string", "pattern": r"^(UUID|LABEL|PARTUUID|PARTLABEL)=[^\x00-\x1f]{1,255}$"},
    ],
    "description": "a device path, or UUID=..., LABEL=..., PARTUUID=..., PARTLABEL=...",
}
FS_TYPE: Schema = {"type": "string", "enum": ["btrfs", "ext4", "vfat", "swap", "bcachefs"]}
MOUNT_FS_TYPE: Schema = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.]{0,31}$", "description": "a filesystem type known to the kernel"}
MOUNT_OPTIONS: Schema = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9_=.:/@+-]+(,[A-Za-z0-9_=.:/@+-]+)*$",
    "maxLength": 1024,
    "description": "comma-separated mount options",
}
LABEL: Schema = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[^\x00-\x1f/]*$"}
PART_TYPE: Schema = {
    "type": "string",
    "pattern": r"^(linux|swap|efi|raid|lvm|home|[0-9a-fA-F]{4}|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})$",
    "description": "linux, swap, efi, raid, lvm, home, an sgdisk type code (8300) or a GPT type GUID",
}
BTRFS_PROFILE: Schema = {
    "type": "string",
    "enum": ["single", "dup", "raid0", "raid1", "raid1c3", "raid1c4", "raid10", "raid5", "raid6"],
}
BALANCE_FILTER: Schema = {"type": "string", "pattern": r"^[a-z0-9_]+(=[0-9a-z.:_]+)?(,[a-z0-9_]+(=[0-9a-z.:_]+)?)*$"}

# ---------------------------------------------------------------- result types
def obj(**properties: Schema) -> Schema:
    """An open result object documenting the listed properties."""
    return {"type": "object", "properties": properties}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


ANY_OBJECT: Schema = {"type": "object"}
CHANGED: Schema = obj(changed=BOOL)


def changed(**properties: Schema) -> Schema:
    """A write result: always carries ``changed``."""
    return {"type": "object", "properties": {"changed": BOOL, **properties}, "required": ["changed"]}


# ---------------------------------------------------------------- spec builder
def method(
    name: str,
    right: str,
    tier: str,
    summary: str,
    *,
    required: dict[str, Schema] | None = None,
    optional: dict[str, Schema] | None = None,
    result: Schema = ANY_OBJECT,
    any_of: list[list[str]] | None = None,
    description: str = "",
) -> MethodSpec:
    """A MethodSpec with a closed params object built from required and optional params."""
    required = required or {}
    params: Schema = {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }
    if required:
        params["required"] = list(required)
    if any_of:
        params["anyOf"] = [{"required": names} for names in any_of]
    return MethodSpec(
        name=name,
        right=Right.parse(right),
        tier=Tier(tier),
        summary=summary,
        params=params,
        result=result,
        description=description,
    )
