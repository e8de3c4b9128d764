"""Built-in methods served by the daemon itself in every mode."""

from .types import BOOL, TEXT, method, nullable, obj

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
        namespaces={"type": "object", "additionalProperties": obj(
            status=TEXT, ok=BOOL, backend=TEXT,
            # proxy mode: the upstream daemon serving the namespace and how the last exchange went
            upstream=TEXT, socket=TEXT, reachable=BOOL, last_error=nullable(TEXT),
            checked_s_ago=nullable({"type": "number"}),
        )},
    ),
)

ALL = (DISCOVER, HEALTH)
