"""The one error tree of osd; the only place JSON-RPC error codes live.

    OsdError                  every error a client may see (code, message, data)
    ├── ParseError            -32700  body is not JSON
    ├── InvalidRequest        -32600  not a JSON-RPC 2.0 request object
    ├── MethodNotFound        -32601
    ├── InvalidParams         -32602  data = {path, reason}
    ├── InternalError         -32603  data = {incident}; never carries exception text
    ├── UpstreamUnavailable   -32000  data = {namespace, socket, reason}
    ├── Unauthenticated       -32001  data = {reason}
    ├── Forbidden             -32002  data = {required, granted, identity}
    ├── NotFound              -32004  data = {kind, name}
    ├── Conflict              -32005  data = {kind, name, reason}
    ├── Refused               -32006  data = {device, reason}
    ├── NotSupported          -32010  data = {reason}
    ├── ToolFailed            -32020  data = {tool, argv, exit_code, stderr}
    ├── KernelError           -32021  data = {errno, strerror, op} (+ detail: the kernel's or
    │                                 library's own words, e.g. libnftables' error text)
    └── Timeout               -32030  data = {seconds}

Foreign exceptions (NetlinkError, OSError from a tool, aiohttp client errors) are
translated where they happen, with ``raise ... from exc``; ``rpc.py`` only ever
sees OsdError or a bug (which becomes InternalError with an incident id).

``UpstreamError`` is not raised by osd itself: it carries an upstream daemon's
JSON-RPC error object through the proxy unchanged.
"""

from __future__ import annotations

import os
from typing import Any


class OsdError(Exception):
    code: int = -32603
    message: str = "internal error"

    def __init__(self, message: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.message = message or type(self).message
        self.data = data
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(OsdError):
    code, message = -32700, "parse error"


class InvalidRequest(OsdError):
    code, message = -32600, "invalid request"


class MethodNotFound(OsdError):
    code, message = -32601, "method not found"


class InvalidParams(OsdError):
    code, message = -32602, "invalid params"

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"invalid params: {reason}", {"path": path, "reason": reason})


class InternalError(OsdError):
    code, message = -32603, "internal error"

    def __init__(self, incident: str) -> None:
        super().__init__(f"internal error (incident {incident})", {"incident": incident})


class UpstreamUnavailable(OsdError):
    code, message = -32000, "upstream unavailable"

    def __init__(self, namespace: str, socket: str, reason: str) -> None:
        super().__init__(
            f"upstream for {namespace}.* unavailable: {reason}",
            {"namespace": namespace, "socket": socket, "reason": reason},
        )


class Unauthenticated(OsdError):
    code, message = -32001, "unauthenticated"

    def __init__(self, reason: str) -> None:
        super().__init__(f"unauthenticated: {reason}", {"reason": reason})


class Forbidden(OsdError):
    code, message = -32002, "forbidden"

    def __init__(self, required: str, granted: str, identity: str) -> None:
        super().__init__(
            f"forbidden: {required} right required, {identity} has {granted}",
            {"required": required, "granted": granted, "identity": identity},
        )


class NotFound(OsdError):
    code, message = -32004, "not found"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found", {"kind": kind, "name": name})


class Conflict(OsdError):
    code, message = -32005, "conflict"

    def __init__(self, kind: str, name: str, reason: str) -> None:
        super().__init__(f"{kind} {name!r}: {reason}", {"kind": kind, "name": name, "reason": reason})


class Refused(OsdError):
    code, message = -32006, "refused"

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"refused to touch {device}: {reason}", {"device": device, "reason": reason})


class NotSupported(OsdError):
    code, message = -32010, "not supported"

    def __init__(self, reason: str) -> None:
        super().__init__(f"not supported: {reason}", {"reason": reason})


class ToolFailed(OsdError):
    code, message = -32020, "tool failed"

    def __init__(self, argv: list[str], exit_code: int, stderr: str) -> None:
        tool = os.path.basename(argv[0]) if argv else "?"
        last = stderr.strip().splitlines()[-1:] or [""]
        super().__init__(
            f"{tool} exited with {exit_code}: {last[0]}".rstrip(": "),
            {"tool": tool, "argv": list(argv), "exit_code": exit_code, "stderr": stderr},
        )


class KernelError(OsdError):
    code, message = -32021, "kernel error"

    def __init__(self, errno_: int, op: str, detail: str | None = None) -> None:
        strerror = os.strerror(errno_) if errno_ > 0 else "unknown error"
        data: dict[str, Any] = {"errno": errno_, "strerror": strerror, "op": op}
        if detail:
            data["detail"] = detail
        super().__init__(f"{op}: {strerror}", data)


class Timeout(OsdError):
    code, message = -32030, "timeout"

    def __init__(self, seconds: float, what: str = "operation") -> None:
        super().__init__(f"{what} exceeded its deadline of {seconds:g} s", {"seconds": seconds})


class UpstreamError(OsdError):
    """An upstream daemon's JSON-RPC error object, passed through unchanged."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.code = int(error.get("code", -32603))
        super().__init__(str(error.get("message", "upstream error")), error.get("data"))
        self._raw = error

    def to_json(self) -> dict[str, Any]:
        return dict(self._raw)
