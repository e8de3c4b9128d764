"""One upstream daemon: JSON-RPC calls over its socket, and what the last exchange showed.

Every outcome is translated here, once: a result is returned, an upstream JSON-RPC error
object becomes ``UpstreamError`` (passed to the client unchanged), a connection that cannot
be made or breaks becomes ``UpstreamUnavailable`` (-32000) at once, an answer that is not a
JSON-RPC 2.0 reply becomes -32000 with the reason, and a reply later than the deadline
becomes ``Timeout`` (-32030). Nothing is cached between calls but the connections, so the
first call after an upstream comes back simply succeeds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Collection
from typing import Any

from ...errors import OsdError, Timeout, UpstreamError, UpstreamUnavailable
from ...rpc import RawJSON
from .http import HttpFailure, UnixHttpClient

log = logging.getLogger("osd.proxy")

# rpc.health asks an upstream itself only when nothing was heard from it for this long, so
# a health probe costs one upstream round trip per second at most, however often it is polled.
PROBE_AFTER_S = 1.0

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@dataclasses.dataclass
class Contact:
    """How the last exchange with an upstream went."""

    status: str = "unknown"  # ok | unreachable | timeout | bad-reply | unknown (not tried yet)
    reason: str | None = None  # why, when not ok
    at: float = float("-inf")  # time.monotonic() of that exchange

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Upstream:
    """Forwards calls for one namespace (``net``) to the daemon serving it as ``prefix`` (``mosnet``)."""

    def __init__(self, namespace: str, prefix: str, socket: str, *, deadline_s: float, connect_timeout_s: float,
                 expected: Collection[str] = ()) -> None:
        self.namespace = namespace
        self.prefix = prefix
        self.socket = socket
        self.deadline_s = deadline_s
        self.connect_timeout_s = connect_timeout_s
        self.expected = frozenset(expected)  # upstream method names it should serve
        self.http = UnixHttpClient(socket, connect_timeout=connect_timeout_s)
        self.contact = Contact()
        self.last_error: str | None = None
        self._next_id = 0
        self._probe: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ calls
    async def call(self, method: str, params: dict[str, Any], *, idempotent: bool = False,
                   deadline_s: float | None = None, raw: bool = False) -> Any:
        """The upstream's result for ``method``; with ``raw``, possibly as its RawJSON text.

        Raises UpstreamError (the upstream's own error object), UpstreamUnavailable or
        Timeout. A call that is not ``idempotent`` is sent at most once.
        """
        deadline = self.deadline_s if deadline_s is None else deadline_s
        self._next_id += 1
        request_id = self._next_id
        body = _dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode()
        try:
            async with asyncio.timeout(deadline):
                status, reply = await self.http.post(body, retry_unanswered=idempotent)
        except TimeoutError as exc:
            self._record("timeout", f"no reply within {deadline:g} s")
            raise Timeout(deadline, f"{method} on the {self.namespace} upstream") from exc
        except HttpFailure as exc:
            self._record("unreachable", exc.reason)
            raise UpstreamUnavailable(self.namespace, self.socket, exc.reason) from exc
        try:
            answer = _decode(status, reply, request_id, raw=raw)
        except ValueError as exc:
            self._record("bad-reply", str(exc))
            raise UpstreamUnavailable(self.namespace, self.socket, str(exc)) from exc
        self._record("ok")
        if "error" in answer:
            raise UpstreamError(answer["error"])
        return answer["result"]

    def _record(self, status: str, reason: str | None = None) -> None:
        previous = self.contact
        self.contact = Contact(status, reason, time.monotonic())
        if reason is not None:
            self.last_error = reason
        if status == previous.status:
            return
        where = f"{self.namespace}.* upstream ({self.prefix}.* at {self.socket})"
        if status == "ok":
            log.info("%s reachable", where)
            self._spawn(self._compare_methods())
        else:
            log.warning("%s %s: %s", where, status, reason)

    # ------------------------------------------------------------ health
    def stale(self) -> bool:
        """Nothing heard from the upstream for PROBE_AFTER_S: health() will ask it."""
        return time.monotonic() - self.contact.at >= PROBE_AFTER_S

    async def health(self) -> dict[str, Any]:
        """{ok, status, backend, upstream, socket, reachable, last_error, checked_s_ago}.

        Asks the upstream (rpc.health; any JSON-RPC answer proves it alive) only when it is
        stale(), waiting at most connect_timeout_s; concurrent callers share one probe.
        """
        if self.stale():
            if self._probe is None or self._probe.done():
                self._probe = self._spawn(self._ask())
            await asyncio.shield(self._probe)
        return self.report()

    def report(self) -> dict[str, Any]:
        """The health entry as of the last exchange, without asking the upstream."""
        contact = self.contact
        return {
            "ok": contact.ok,
            "status": contact.status,
            "backend": "proxy",
            "upstream": self.prefix,
            "socket": self.socket,
            "reachable": contact.status in ("ok", "bad-reply"),  # it answered, if not always well
            "last_error": self.last_error,
            "checked_s_ago": round(time.monotonic() - contact.at, 3) if contact.at > float("-inf") else None,
        }

    async def _ask(self) -> None:
        try:
            await self.call("rpc.health", {}, idempotent=True,
                            deadline_s=min(self.connect_timeout_s, self.deadline_s))
        except UpstreamError:
            pass  # it answered: alive, even if it has no rpc.health
        except (UpstreamUnavailable, Timeout):
            pass  # recorded by call()

    async def _compare_methods(self) -> None:
        """Log the methods the upstream's own rpc.discover lacks (checked whenever it becomes reachable)."""
        try:
            doc = await self.call("rpc.discover", {}, idempotent=True)
            served = {m.get("name") for m in doc.get("methods", ()) if isinstance(m, dict)}
        except (OsdError, AttributeError, TypeError) as exc:
            log.info("%s.* upstream: cannot compare its rpc.discover with the catalogue: %s", self.namespace, exc)
            return
        missing = sorted(self.expected - served)
        if missing:
            log.warning("%s.* upstream at %s lacks %d of %d methods: %s", self.namespace, self.socket,
                        len(missing), len(self.expected), ", ".join(missing))
        else:
            log.info("%s.* upstream at %s serves all %d methods", self.namespace, self.socket, len(self.expected))

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Probe the upstream in the background; start-up never waits for an upstream."""
        self._probe = self._spawn(self._ask())

    async def close(self) -> None:
        """Cancel background work and close every connection; idempotent."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.http.close()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _spliced_result(reply: bytes, request_id: int) -> RawJSON | None:
    """The result's own bytes when the reply is exactly ``{"jsonrpc":"2.0","result":R,"id":N}``.

    That is how osd writes a reply; other upstreams, or any doubt, take the full path.
    R is still parsed, strictly, so only valid JSON is ever passed on as is.
    """
    head, tail = b'{"jsonrpc":"2.0","result":', b',"id":%d}' % request_id
    if not (reply.startswith(head) and reply.endswith(tail)):
        return None
    result = reply[len(head):-len(tail)]
    try:
        json.loads(result, parse_constant=_reject_constant)  # also fails on '1,"error":{...}'
    except (ValueError, UnicodeDecodeError):
        return None
    return RawJSON(result)


def _decode(status: int, reply: bytes, request_id: int, *, raw: bool = False) -> dict[str, Any]:
    """The JSON-RPC 2.0 response in an HTTP reply; raises ValueError saying what is wrong with it.

    With ``raw``, a result in osd's own reply layout is returned as RawJSON, undecoded.
    """
    if status != 200:
        raise ValueError(f"HTTP {status} instead of a JSON-RPC reply: {reply[:200].decode(errors='replace')!r}")
    if raw:
        spliced = _spliced_result(reply, request_id)
        if spliced is not None:
            return {"result": spliced}
    try:
        answer = json.loads(reply, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"reply is not JSON: {reply[:200]!r}") from exc
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
        raise ValueError(f"reply is not a JSON-RPC 2.0 response: {reply[:200]!r}")
    if "error" in answer:
        error = answer["error"]
        if not (isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str)):
            raise ValueError(f"reply carries a malformed error object: {error!r:.200}")
        if answer.get("id") not in (request_id, None):  # id null: the upstream could not read our id
            raise ValueError(f"reply id {answer.get('id')!r} does not match request id {request_id}")
        return answer
    if "result" not in answer:
        raise ValueError(f"reply has neither result nor error: {reply[:200]!r}")
    if answer.get("id") != request_id:
        raise ValueError(f"reply id {answer.get('id')!r} does not match request id {request_id}")
    return answer
