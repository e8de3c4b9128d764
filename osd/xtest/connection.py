"""An asyncio JSON-RPC client for the runner: one keep-alive session on the daemon's Unix socket.

Asyncio (not the synchronous ``osd.client``) so that Ctrl-C and per-call deadlines cancel an
in-flight call at once instead of waiting for it in a thread.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import aiohttp

from ..client import RpcError
from .engine import Unreachable


class Connection:
    """``async with Connection(path) as conn: await conn.call(method, params)``."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> "Connection":
        connector = aiohttp.UnixConnector(path=self.socket_path)
        # No session deadline: the engine puts one on every call.
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """The result; raises RpcError for a JSON-RPC error, Unreachable when the daemon does not answer."""
        assert self._session is not None, "use Connection as an async context manager"
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params:
            request["params"] = params
        try:
            async with self._session.post("http://osd/", data=json.dumps(request).encode(),
                                          headers={"Content-Type": "application/json"}) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError) as exc:
            raise Unreachable(f"{self.socket_path}: {exc}") from exc
        if status != 200:
            raise Unreachable(f"{self.socket_path}: HTTP {status}: {body[:200].decode(errors='replace')}")
        try:
            reply = json.loads(body)
        except ValueError as exc:
            raise Unreachable(f"{self.socket_path}: reply is not JSON: {body[:200]!r}") from exc
        # id null is a valid answer to a request the daemon could not read (-32600, -32700)
        if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0" \
                or reply.get("id") not in ((request["id"], None) if "error" in reply else (request["id"],)):
            raise Unreachable(f"{self.socket_path}: not a reply to request {request['id']}: {reply!r:.200}")
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply.get("result")
