"""The proxy's HTTP/1.1 client against scripted servers on real Unix sockets: framing, pooling, failures."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from osd.backends.proxy.http import HttpFailure, UnixHttpClient
from support.scripted import CLOSE, HANG, ScriptedServer, reply


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "up.sock")


def test_keep_alive_reuses_one_connection(path: str) -> None:
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: reply({"echo": body.decode(), "n": n})) as server:
            client = UnixHttpClient(path, connect_timeout=1)
            for i in range(3):
                status, body = await client.post(b'{"i":%d}' % i)
                assert status == 200 and body == b'{"echo": "{\\"i\\":%d}", "n": %d}' % (i, i)
            assert server.connections == 1 and client.connections == 1
            client.close()
            assert client.connections == 0

    run(main())


def test_chunked_reply_and_trailers(path: str) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\n{\"a\"\r\n5;ext=1\r\n: 12}\r\n0\r\nX-Trailer: t\r\n\r\n")

    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: chunked) as server:
            client = UnixHttpClient(path, connect_timeout=1)
            assert await client.post(b"{}") == (200, b'{"a": 12}')
            assert await client.post(b"{}") == (200, b'{"a": 12}')
            assert server.connections == 1
            client.close()

    run(main())


def test_connection_close_and_http10_replies_are_not_reused(path: str) -> None:
    answers = [reply({"n": 0}, headers="Connection: close\r\n"),
               b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"n": 1}', reply({"n": 2})]

    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: answers[c]) as server:
            client = UnixHttpClient(path, connect_timeout=1)
            assert await client.post(b"{}") == (200, b'{"n": 0}')
            assert client.connections == 0  # "Connection: close": dropped at once
            # the HTTP/1.0 reply has no length: it ends with the connection, which the server
            # keeps open until the client is done reading, so close it from the server side
            task = asyncio.ensure_future(client.post(b"{}"))
            await asyncio.sleep(0.05)
            server.hang_up()
            assert await task == (200, b'{"n": 1}')
            assert await client.post(b"{}") == (200, b'{"n": 2}')
            assert server.connections == 3
            client.close()

    run(main())


def test_a_connection_the_server_closed_while_idle_is_replaced(path: str) -> None:
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: reply({"conn": c})) as server:
            client = UnixHttpClient(path, connect_timeout=1)
            assert await client.post(b"{}") == (200, b'{"conn": 0}')
            server.hang_up()  # the server drops the idle connection
            await asyncio.sleep(0.05)
            assert await client.post(b"{}") == (200, b'{"conn": 1}')
            assert client.connections == 1
            client.close()

    run(main())


def test_unanswered_reused_connection_is_retried_only_when_allowed(path: str) -> None:
    # connection 0 answers its first request and hangs up on the second without a byte
    def answer(conn: int, n: int, body: bytes) -> bytes:
        return CLOSE if (conn in (0, 2) and n == 1) else reply({"conn": conn, "n": n})

    async def main() -> None:
        async with ScriptedServer(path, answer) as server:
            client = UnixHttpClient(path, connect_timeout=1)
            await client.post(b"{}")
            assert await client.post(b"{}", retry_unanswered=True) == (200, b'{"conn": 1, "n": 0}')
            client.close()
            await client.post(b"{}")  # connection 2
            with pytest.raises(HttpFailure) as failure:
                await client.post(b"{}")
            assert failure.value.unanswered and "closed by the upstream" in failure.value.reason
            assert len(server.requests) == 5
            client.close()

    run(main())


def test_connect_failures_are_named(path: str, tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(HttpFailure, match="ENOENT"):
            await UnixHttpClient(str(tmp_path / "absent.sock"), connect_timeout=1).post(b"{}")
        with socket.socket(socket.AF_UNIX) as bound:  # bound, never listening: a dead daemon's socket
            bound.bind(path)
            with pytest.raises(HttpFailure, match="ECONNREFUSED"):
                await UnixHttpClient(path, connect_timeout=1).post(b"{}")

    run(main())


def test_a_cancelled_exchange_never_returns_its_connection_to_the_pool(path: str) -> None:
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: HANG if c == 0 else reply({"conn": c})):
            client = UnixHttpClient(path, connect_timeout=1)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await client.post(b"{}")
            assert client.connections == 0
            assert await client.post(b"{}") == (200, b'{"conn": 1}')  # a late reply cannot be mistaken
            client.close()

    run(main())


@pytest.mark.parametrize("raw", [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n"])
def test_malformed_replies_fail_cleanly(path: str, raw: bytes) -> None:
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: raw):
            client = UnixHttpClient(path, connect_timeout=1)
            with pytest.raises(HttpFailure, match="malformed HTTP reply"):
                await client.post(b"{}")
            assert client.connections == 0

    run(main())


def test_at_most_limit_connections(path: str) -> None:
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: reply({"c": c})) as server:
            client = UnixHttpClient(path, connect_timeout=1, limit=2)
            results = await asyncio.gather(*(client.post(b"{}") for _ in range(20)))
            assert all(status == 200 for status, _ in results)
            assert server.peak <= 2 and server.connections <= 2 and client.connections <= 2
            client.close()

    run(main())
