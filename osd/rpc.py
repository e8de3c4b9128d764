"""Pure JSON-RPC 2.0: parse, batch, notifications, authorization, validation, replies.

No I/O framework here: ``Dispatcher.handle`` takes the raw body and the caller and returns
the raw reply (or None when there is nothing to send back, e.g. only notifications).

Order of checks for each request: well-formed request (-32600), method exists (-32601),
a presented credential is valid (-32001), the caller's right suffices (-32002, before any
param is examined), params match the schema (-32602), then the call. Batch items are
independent and run one after another, in order; replies keep request order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import Forbidden, InternalError, InvalidParams, InvalidRequest, OsdError, ParseError, Unauthenticated
from .registry import MethodSpec, Registry, Right

log = logging.getLogger("osd.call")

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class RawJSON(bytes):
    """A result that is already valid JSON text (the proxy's upstream answers): sent as is.

    Re-encoding a result costs about 13 us per KiB here; a 35 KiB net.interfaces answer
    passed through the proxy spent 0.45 ms on it. Whoever returns one vouches for its validity.
    """


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling: the principals proven for this HTTP request and the right they hold."""

    identity: str  # the strongest principal, shown in logs and in -32002 data
    principals: frozenset[str]
    right: Right
    auth_error: str | None = None  # set when a presented key or token was invalid

    def __post_init__(self) -> None:
        if self.auth_error is not None and self.right is not Right.NONE:
            raise ValueError("a caller with an invalid credential holds no right")


Invoke = Callable[[MethodSpec, dict[str, Any], Caller], Awaitable[Any]]
# Observes every call once it is answered: (identity, method, milliseconds, error code or 0).
OnCall = Callable[[str, str, float, int], None]


def log_call(identity: str, method: str, ms: float, code: int) -> None:
    """The default call observer: one line per call through the ``osd.call`` logger."""
    if code:
        log.info("identity=%s method=%s ms=%.2f outcome=error code=%d", identity, method, ms, code)
    else:
        log.info("identity=%s method=%s ms=%.2f outcome=ok", identity, method, ms)

_NO_ID = object()  # marks a notification (no "id" member at all)


def _reply(request_id: Any, *, result: Any = None, error: OsdError | None = None) -> dict[str, Any]:
    if error is not None:
        return {"jsonrpc": "2.0", "error": error.to_json(), "id": request_id}
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


class Dispatcher:
    """Turns request bodies into reply bodies, calling ``invoke`` for each method call."""

    def __init__(self, registry: Registry, invoke: Invoke, *, max_batch: int = 100, on_call: OnCall = log_call) -> None:
        self.registry = registry
        self._invoke = invoke
        self.max_batch = max_batch
        self.on_call = on_call

    async def handle(self, body: bytes, caller: Caller) -> bytes | None:
        """The reply body for ``body``, or None when no reply is due (notifications only)."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            error = ParseError(f"parse error: {exc}")
            self.on_call(caller.identity, "-", 0.0, error.code)
            return self._encode(_reply(None, error=error))
        if not isinstance(payload, list):
            reply = await self._one(payload, caller)
            return None if reply is None else self._encode(reply)
        if not payload:
            return self._encode(_reply(None, error=InvalidRequest("invalid request: empty batch")))
        if len(payload) > self.max_batch:
            error = InvalidRequest(f"invalid request: batch of {len(payload)} exceeds the cap of {self.max_batch}")
            return self._encode(_reply(None, error=error))
        parts = []
        for item in payload:
            reply = await self._one(item, caller)
            if reply is not None:
                parts.append(self._encode(reply))
        return b"[" + b",".join(parts) + b"]" if parts else None

    async def _one(self, item: Any, caller: Caller) -> dict[str, Any] | None:
        """Run one request; the reply object, or None for a notification."""
        started = time.perf_counter()
        if not isinstance(item, dict):
            return _reply(None, error=InvalidRequest("invalid request: not an object"))
        request_id = item.get("id", _NO_ID)
        method = item.get("method")
        problem = None
        if item.get("jsonrpc") != "2.0":
            problem = 'member "jsonrpc" must be exactly "2.0"'
        elif not isinstance(method, str):
            problem = 'member "method" must be a string'
        elif request_id is not _NO_ID and not _valid_id(request_id):
            problem = 'member "id" must be a string, a number or null'
        elif not isinstance(item.get("params", {}), (dict, list)):
            problem = 'member "params" must be an object'
        if problem:
            self.on_call(caller.identity, "-", 0.0, InvalidRequest.code)
            return _reply(None, error=InvalidRequest(f"invalid request: {problem}"))
        notification = request_id is _NO_ID
        try:
            result = await self._call(method, item.get("params"), caller)
        except OsdError as error:
            self._done(caller, method, started, error.code)
            return None if notification else _reply(request_id, error=error)
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("incident=%s identity=%s method=%s: unexpected failure", incident, caller.identity, method)
            self._done(caller, method, started, InternalError.code)
            return None if notification else _reply(request_id, error=InternalError(incident))
        self._done(caller, method, started, 0)
        return None if notification else _reply(request_id, result=result)

    async def _call(self, method: str, params: Any, caller: Caller) -> Any:
        spec = self.registry.get(method)
        if caller.auth_error is not None:
            raise Unauthenticated(caller.auth_error)
        if caller.right < spec.right:
            raise Forbidden(str(spec.right), str(caller.right), caller.identity)
        if params is not None and not isinstance(params, dict):
            raise InvalidParams("params must be an object: osd takes parameters by name", "")
        return await self._invoke(spec, self.registry.validate(spec, params), caller)

    def _encode(self, reply: dict[str, Any]) -> bytes:
        result = reply.get("result")
        if isinstance(result, RawJSON):
            return b'{"jsonrpc":"2.0","result":' + result + b',"id":' + _dumps(reply["id"]).encode() + b"}"
        try:
            return _dumps(reply).encode()
        except (TypeError, ValueError):
            incident = uuid.uuid4().hex[:12]
            log.exception("incident=%s: result of request id=%r is not JSON-serialisable", incident, reply.get("id"))
            return _dumps(_reply(reply.get("id"), error=InternalError(incident))).encode()

    def _done(self, caller: Caller, method: str, started: float, code: int) -> None:
        self.on_call(caller.identity, method, (time.perf_counter() - started) * 1000, code)
