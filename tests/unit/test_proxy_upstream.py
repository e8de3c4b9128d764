"""Upstream: what each kind of upstream answer becomes, and how health is tracked and probed."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from osd.backends.proxy import upstream as upstream_module
from osd.backends.proxy.upstream import Upstream
from osd.errors import Timeout, UpstreamError, UpstreamUnavailable
from osd.rpc import RawJSON
from support.scripted import HANG, ScriptedServer, reply, rpc_result


def make(path: str, **kw) -> Upstream:  # noqa: ANN003
    return Upstream("net", "mosnet", path, deadline_s=kw.pop("deadline_s", 2.0), connect_timeout_s=1.0, **kw)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "up.sock")


def test_result_and_request_shape(path: str) -> None:
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: rpc_result(body, {"got": json.loads(body)})) as server:
            up = make(path)
            first = await up.call("mosnet.bridge", {"name": "br0"})
            second = await up.call("mosnet.bridge", {})
            assert first["got"]["method"] == "mosnet.bridge" and first["got"]["params"] == {"name": "br0"}
            assert first["got"]["jsonrpc"] == "2.0" and second["got"]["id"] != first["got"]["id"]
            assert up.contact.status == "ok" and server.connections == 1
            await up.close()

    asyncio.run(main())


def test_upstream_error_object_passes_unchanged(path: str) -> None:
    error = {"code": -32004, "message": "bridge 'x' not found", "data": {"kind": "bridge", "name": "x"},
             "extra": [1, 2]}

    async def main() -> None:
        def answer(c: int, n: int, body: bytes) -> bytes:
            return reply({"jsonrpc": "2.0", "error": error, "id": json.loads(body)["id"]})

        async with ScriptedServer(path, answer):
            up = make(path)
            with pytest.raises(UpstreamError) as raised:
                await up.call("mosnet.bridge", {"name": "x"})
            assert raised.value.to_json() == error and raised.value.code == -32004
            assert up.contact.status == "ok"  # an error answer is still an answer
            await up.close()

    asyncio.run(main())


@pytest.mark.parametrize("answer, reason", [
    (lambda body: reply(raw=b"<html>oops</html>", status="500 Internal Server Error"), "HTTP 500"),
    (lambda body: reply(raw=b"not json"), "not JSON"),
    (lambda body: reply({"result": 1, "id": json.loads(body)["id"]}), "not a JSON-RPC 2.0 response"),
    (lambda body: reply({"jsonrpc": "2.0", "result": 1, "id": "other"}), "does not match request id"),
    (lambda body: reply({"jsonrpc": "2.0", "id": json.loads(body)["id"]}), "neither result nor error"),
    (lambda body: reply({"jsonrpc": "2.0", "error": {"code": "x"}, "id": 1}), "malformed error object"),
])
def test_answers_that_are_not_json_rpc_are_32000_with_the_reason(path: str, answer, reason: str) -> None:  # noqa: ANN001
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: answer(body)):
            up = make(path)
            with pytest.raises(UpstreamUnavailable) as raised:
                await up.call("mosnet.interfaces", {})
            data = raised.value.data
            assert raised.value.code == -32000 and reason in data["reason"]
            assert data["namespace"] == "net" and data["socket"] == path
            assert up.contact.status == "bad-reply"
            await up.close()

    asyncio.run(main())


def test_unreachable_is_immediate_and_recovers(path: str) -> None:
    async def main() -> None:
        up = make(path)
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as raised:
            await up.call("mosnet.interfaces", {})
        assert time.monotonic() - started < 0.5
        assert raised.value.data == {"namespace": "net", "socket": path, "reason": "no socket at the path (ENOENT)"}
        health = await up.health()
        assert health["ok"] is False and health["status"] == "unreachable" and "ENOENT" in health["last_error"]
        async with ScriptedServer(path, lambda c, n, body: rpc_result(body, [])):
            assert await up.call("mosnet.interfaces", {}) == []
            assert up.contact.status == "ok"
        await up.close()

    asyncio.run(main())


def test_deadline_is_32030(path: str) -> None:
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: HANG):
            up = make(path, deadline_s=0.2)
            started = time.monotonic()
            with pytest.raises(Timeout) as raised:
                await up.call("mosnet.interfaces", {})
            assert 0.2 <= time.monotonic() - started < 1.0
            assert raised.value.code == -32030 and raised.value.data == {"seconds": 0.2}
            assert up.contact.status == "timeout" and up.http.connections == 0
            await up.close()

    asyncio.run(main())


def test_health_probes_at_most_once_per_interval(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "PROBE_AFTER_S", 0.3)

    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: rpc_result(body, {"status": "ok"})) as server:
            up = make(path)
            reports = await asyncio.gather(*(up.health() for _ in range(5)))
            assert all(r["ok"] and r["socket"] == path and r["upstream"] == "mosnet" for r in reports)
            for _ in range(20):
                await up.health()
            health_probes = [b for b in server.requests if b'"rpc.health"' in b]
            assert len(health_probes) == 1
            await asyncio.sleep(0.35)
            await up.health()
            assert sum(b'"rpc.health"' in b for b in server.requests) == 2
            await up.close()

    asyncio.run(main())


def test_before_any_exchange_the_report_says_unknown(path: str) -> None:
    report = make(path).report()
    assert report["status"] == "unknown" and report["ok"] is False and report["checked_s_ago"] is None
    json.dumps(report, allow_nan=False)


def test_a_hung_upstream_does_not_hold_health_long(path: str) -> None:
    async def main() -> None:
        async with ScriptedServer(path, lambda c, n, body: HANG):
            up = Upstream("vol", "storage", path, deadline_s=30, connect_timeout_s=0.3)
            started = time.monotonic()
            health = await up.health()
            assert time.monotonic() - started < 1.0
            assert health["status"] == "timeout" and health["ok"] is False and health["reachable"] is False
            await up.close()

    asyncio.run(main())


def test_methods_the_upstream_lacks_are_logged(path: str, caplog: pytest.LogCaptureFixture) -> None:
    discover = {"openrpc": "1.3.2", "methods": [{"name": "mosnet.interfaces"}, {"name": "mosnet.extra"}]}

    def answer(c: int, n: int, body: bytes) -> bytes:
        method = json.loads(body)["method"]
        return rpc_result(body, discover if method == "rpc.discover" else {"status": "ok"})

    async def main() -> None:
        async with ScriptedServer(path, answer):
            up = make(path, expected=["mosnet.interfaces", "mosnet.routes", "mosnet.bridge"])
            up.start()
            for _ in range(100):
                if "lacks" in caplog.text:
                    break
                await asyncio.sleep(0.01)
            await up.close()

    with caplog.at_level(logging.INFO, logger="osd.proxy"):
        asyncio.run(main())
    assert "lacks 2 of 3 methods: mosnet.bridge, mosnet.routes" in caplog.text


def test_osd_layout_results_pass_as_raw_text_other_layouts_are_decoded(path: str) -> None:
    layouts = {
        "osd": lambda rid: b'{"jsonrpc":"2.0","result":[{"name":"lo","x":1.5}],"id":%d}' % rid,
        "id-first": lambda rid: b'{"id":%d,"jsonrpc":"2.0","result":[{"name":"lo","x":1.5}]}' % rid,
        "both": lambda rid: b'{"jsonrpc":"2.0","result":1,"error":{"code":-32004,"message":"m"},"id":%d}' % rid,
        "nan": lambda rid: b'{"jsonrpc":"2.0","result":NaN,"id":%d}' % rid,
    }

    def answer(c: int, n: int, body: bytes) -> bytes:
        request = json.loads(body)
        return reply(raw=layouts[request["params"]["layout"]](request["id"]))

    async def main() -> None:
        async with ScriptedServer(path, answer):
            up = make(path)
            osd = await up.call("mosnet.interfaces", {"layout": "osd"}, raw=True)
            assert isinstance(osd, RawJSON) and osd == b'[{"name":"lo","x":1.5}]'
            assert await up.call("mosnet.interfaces", {"layout": "osd"}) == [{"name": "lo", "x": 1.5}]
            other = await up.call("mosnet.interfaces", {"layout": "id-first"}, raw=True)
            assert other == [{"name": "lo", "x": 1.5}] and not isinstance(other, RawJSON)
            with pytest.raises(UpstreamError):  # not spliced: the full path sees the error member
                await up.call("mosnet.interfaces", {"layout": "both"}, raw=True)
            with pytest.raises(UpstreamUnavailable, match="not JSON"):
                await up.call("mosnet.interfaces", {"layout": "nan"}, raw=True)
            await up.close()

    asyncio.run(main())
