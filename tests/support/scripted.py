"""A scripted HTTP server on a Unix socket, in-process, for unit tests of the proxy's client.

``answer(conn, n, body)`` is called for the n-th request (0-based) on connection number
``conn`` with the request body; it returns the raw bytes to send back (possibly nothing),
or ``CLOSE`` to hang up without answering, or ``HANG`` to never answer. The server
records every request and counts connections, open and at most concurrently open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

CLOSE = b"<close>"
HANG = b"<hang>"


def reply(payload: Any = None, *, status: str = "200 OK", raw: bytes | None = None,
          headers: str = "") -> bytes:
    """An HTTP/1.1 reply with Content-Length; JSON ``payload`` unless ``raw`` is given."""
    body = raw if raw is not None else json.dumps(payload).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def rpc_result(body: bytes, result: Any) -> bytes:
    """A JSON-RPC result reply to the request in ``body``."""
    return reply({"jsonrpc": "2.0", "result": result, "id": json.loads(body)["id"]})


class ScriptedServer:
    def __init__(self, path: str, answer: Callable[[int, int, bytes], bytes]) -> None:
        self.path = path
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.open = 0
        self.peak = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> "ScriptedServer":
        self._server = await asyncio.start_unix_server(self._handle, self.path)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.hang_up()
        await self._server.wait_closed()

    def hang_up(self) -> None:
        """Close every open connection from the server's side."""
        for writer in list(self._writers):
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        self.connections += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        self._writers.add(writer)
        try:
            n = 0
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                self.requests.append(body)
                out = self.answer(conn, n, body)
                n += 1
                if out == CLOSE:
                    return
                if out == HANG:
                    await asyncio.sleep(3600)
                writer.write(out)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()
