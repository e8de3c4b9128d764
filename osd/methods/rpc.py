"""Built-in methods served by the daemon itself in every mode."""

from .types import BOOL, TEXT, method, obj

DISCOVER = method(
    "rpc.discover", "read", "read",
    "OpenRPC 1.3.2 document of every method (valid against the official meta-schema)",
    result={"type": "object", "required": ["openrpc", "info", "methods"]},
)
HEALTH = method(
    "rpc.health", "read", "read",
    "Liveness: {status: 'ok'} plus backend status per namespace",
    result=obj(
        status={"type": "string", "enum": ["ok", "degraded"]},
        mode={"type": "string", "enum": ["native", "proxy"]},
        namespaces={"type": "object", "additionalProperties": obj(status=TEXT, ok=BOOL, backend=TEXT)},
    ),
)

ALL = (DISCOVER, HEALTH)
