"""Daemon configuration: frozen dataclasses loaded once from TOML, then command-line overrides.

Precedence for every setting: command-line flag > environment (OSD_SOCKET only) > config
file > built-in default. An unknown section or key, or a value of the wrong type, is a
start-up error naming the file, the key and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_SOCKET = "~/hero/var/sockets/hero_db_root_os.sock"
DEFAULT_UPSTREAM_NET = "~/hero/var/sockets/hero_db_root_mosnet.sock"
DEFAULT_UPSTREAM_VOL = "~/hero/var/sockets/hero_db_root_storage.sock"


class ConfigError(Exception):
    """The configuration is unusable; the message names the file and the key."""


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("a positive integer")
    return value


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("a positive number")
    return float(value)


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string")
    return value


def _path(value: Any) -> str:
    return os.path.expanduser(_string(value))


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("an array of non-empty strings")
    return tuple(value)


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(" or ".join(repr(c) for c in choices))
        return value

    return check


def _field(default: Any, check: Callable[[Any], Any], doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    socket: str = _field(os.path.expanduser(DEFAULT_SOCKET), _path, "Unix socket path to listen on")
    group: str | None = _field(None, _string, "group given to the socket (mode 0660); default: the daemon's group")
    max_body_bytes: int = _field(1 << 20, _positive_int, "largest request body accepted (larger: HTTP 413)")
    max_batch: int = _field(100, _positive_int, "largest JSON-RPC batch accepted")
    state_dir: str = _field("/var/lib/osd", _path, "where managed objects are recorded")
    acl: str | None = _field(None, _path, "ACL file; absent: built-in policy (uid 0 admin, others read)")
    backend: str = _field("native", _one_of("native", "proxy"), "native or proxy")
    drain_timeout_s: float = _field(30.0, _positive_number, "on SIGTERM, how long in-flight calls may finish")


@dataclasses.dataclass(frozen=True)
class NetConfig:
    input_policy: str = _field("accept", _one_of("accept", "drop"),
                               "policy of the daemon's input chain: accept, or drop all but allowed ports")
    dhcp_timeout_s: float = _field(30.0, _positive_number,
                                   "net.lease.restart waits this long for a lease, then answers -32030")


@dataclasses.dataclass(frozen=True)
class VolConfig:
    label_prefix: str = _field("MOS", _string, "vol.list_filesystems shows filesystems whose label starts with it")
    protected_devices: tuple[str, ...] = _field((), _strings, "devices (paths or shell globs) never to touch")
    allowed_devices: tuple[str, ...] | None = _field(None, _strings,
                                                     "when set, the only devices destructive calls may touch")


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    upstream_net: str = _field(os.path.expanduser(DEFAULT_UPSTREAM_NET), _path, "socket of the networking daemon")
    upstream_vol: str = _field(os.path.expanduser(DEFAULT_UPSTREAM_VOL), _path, "socket of the storage daemon")
    deadline_s: float = _field(30.0, _positive_number, "a forwarded call taking longer answers -32030")
    connect_timeout_s: float = _field(1.0, _positive_number,
                                      "how long to wait for an upstream to accept; also bounds rpc.health's probe")


@dataclasses.dataclass(frozen=True)
class Config:
    server: ServerConfig = ServerConfig()
    net: NetConfig = NetConfig()
    vol: VolConfig = VolConfig()
    proxy: ProxyConfig = ProxyConfig()
    renames: Mapping[str, str] = dataclasses.field(default_factory=dict)
    verbose: bool = False


_SECTIONS = {"server": ServerConfig, "net": NetConfig, "vol": VolConfig, "proxy": ProxyConfig}


def _section(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{cls.__name__}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        field = fields.get(key)
        if field is None:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(fields)})")
        try:
            values[key] = field.metadata["check"](value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key} must be {exc}, not {value!r}") from None
    return cls(**values)


def load(path: str | os.PathLike[str] | None = None, *, overrides: Mapping[str, Mapping[str, Any]] | None = None,
         renames: Mapping[str, str] | None = None, verbose: bool = False) -> Config:
    """The Config from ``path`` (optional) with ``overrides`` ({section: {key: value}}) applied last."""
    doc: dict[str, Any] = {}
    if path is not None:
        try:
            doc = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"config {path}: cannot read: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config {path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(doc) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"config {path}: unknown section [{unknown[0]}] (allowed: {', '.join(_SECTIONS)})")
    env_socket = os.environ.get("OSD_SOCKET")
    if env_socket:
        doc.setdefault("server", {})["socket"] = env_socket
    for section, values in (overrides or {}).items():
        doc.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    sections = {
        name: _section(cls, doc.get(name, {}), f"config {path or '(command line)'} [{name}]")
        for name, cls in _SECTIONS.items()
    }
    for namespace, upstream in (renames or {}).items():
        if namespace not in ("net", "vol") or not upstream.isidentifier():
            raise ConfigError(f"--rename {namespace}={upstream}: NS must be net or vol and UP a plain name")
    return Config(**sections, renames=dict(renames or {}), verbose=verbose)


def documented() -> dict[str, list[tuple[str, Any, str]]]:
    """Every section's keys with defaults and descriptions (for docs and tests)."""
    return {
        name: [(f.name, f.default, f.metadata["doc"]) for f in dataclasses.fields(cls)]
        for name, cls in _SECTIONS.items()
    }
